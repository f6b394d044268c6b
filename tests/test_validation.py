"""Argument checks, seeds and the thread guard: every mistake is a clear error naming it."""

import contextlib
import subprocess
import sys
import threading

import pytest
import torch

import bayesdepth as bd
from bayesdepth import _validation
from bayesdepth._validation import (
    check_positive,
    check_positive_int,
    check_rows,
    check_rows_once,
    check_seed,
)
from bayesdepth.seeding import seeded
from bayesdepth.threads import pyro_exclusive


@pytest.mark.parametrize("value", [True, False, "0.1", None, [0.1], float("nan"), -1.0, 0.0])
def test_check_positive_refuses_what_is_not_a_positive_number(value):
    with pytest.raises((TypeError, ValueError), match="lr must be"):
        check_positive("lr", value)


def test_check_positive_accepts_numbers():
    assert check_positive("lr", 1) == 1.0
    assert check_positive("lr", torch.tensor(0.5)) == 0.5
    assert check_positive("lr", 0.0, allow_zero=True) == 0.0


@pytest.mark.parametrize("value", [True, 0, -3, 2.5, "2"])
def test_check_positive_int(value):
    with pytest.raises((TypeError, ValueError), match="steps must be an integer >= 1"):
        check_positive_int("steps", value)


def test_check_rows_names_the_first_bad_row():
    with pytest.raises(ValueError, match="x has no rows"):
        check_rows("x", torch.zeros(0, 3))
    x = torch.zeros(5, 2)
    x[3, 1] = float("inf")
    with pytest.raises(ValueError, match="x has a NaN or infinite value in row 3"):
        check_rows("x", x)


def test_check_rows_once_checks_a_tensor_again_only_when_it_changed(monkeypatch):
    calls = []
    monkeypatch.setattr(_validation, "check_rows",
                        lambda name, value: calls.append(name) or check_rows(name, value))
    x = torch.zeros(6, 3)
    for _ in range(3):
        assert check_rows_once("x", x) is x
    assert calls == ["x"]  # the whole-data check ran once for three calls
    check_rows_once("x", x.clone())  # another tensor with the same values is checked
    assert calls == ["x", "x"]
    x[4, 2] = float("nan")  # written in place: its version counter moved
    with pytest.raises(ValueError, match="x has a NaN or infinite value in row 4"):
        check_rows_once("x", x)
    with torch.inference_mode():  # no version counter: checked every time
        y = torch.ones(2, 2)
    check_rows_once("y", y)
    check_rows_once("y", y)
    assert calls.count("y") == 2


def test_a_model_sees_a_nan_written_into_its_data_between_steps():
    clf = bd.SDEBNNClassifier(4, 3, width=4, steps=2, seed=0)
    x, y = torch.randn(10, 4), torch.arange(10) % 3
    bd.fit(clf.model, clf.guide, x, y, num_steps=1, batch_size=5, progress=False)
    x[7, 0] = float("inf")
    with pytest.raises(ValueError, match="x has a NaN or infinite value in row 7"):
        bd.fit(clf.model, clf.guide, x, y, num_steps=1, batch_size=5, progress=False)


@pytest.mark.parametrize(("seed", "exc"), [(-1, ValueError), (2**63, ValueError),
                                           ("a", TypeError), (1.5, TypeError),
                                           (True, TypeError)])
def test_seeds_are_ints_in_range(seed, exc):
    with pytest.raises(exc, match=r"seed must be an int in \[0, 2\*\*63\)"):
        check_seed(seed)
    with pytest.raises(exc, match="seed must be"):
        bd.fit(lambda: None, lambda: None, seed=seed, progress=False)


def test_seeded_restores_the_global_state():
    torch.manual_seed(3)
    expected = torch.rand(2)
    torch.manual_seed(3)
    with seeded(11):
        inside = torch.rand(2)
    with seeded(11):
        assert torch.equal(torch.rand(2), inside)
    assert torch.equal(torch.rand(2), expected)  # as if the block had not run


SCRIPT = """
import torch, bayesdepth as bd
torch.set_num_threads(1)
d = bd.data.toy_regression_1d(num_points=20)
m = bd.SDEBNNRegressor(1, width=4, steps=3, seed=5)
h = bd.fit(m.model, m.guide, d.x, d.y, num_steps=15, seed=2, progress=False)
p = m.predict(d.x_test[:7], num_samples=4, seed=1)
print(repr(h.loss[-1]), p.mean.tolist())
"""


def test_two_processes_with_the_same_seeds_agree_bit_for_bit():
    """Model seed + fit seed + predict seed fix everything, whatever ran before in a process."""
    runs = [subprocess.run([sys.executable, "-c", prelude + SCRIPT], capture_output=True,
                           text=True, timeout=300)
            for prelude in ("", "import torch; torch.rand(1000)\n")]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert runs[0].stdout == runs[1].stdout


@contextlib.contextmanager
def _pyro_held_by_another_thread():
    """A block during which a second thread holds the Pyro guard."""
    started, release = threading.Event(), threading.Event()

    def hold():
        with pyro_exclusive("the first thread"):
            started.set()
            release.wait(30)

    first = threading.Thread(target=hold)
    first.start()
    assert started.wait(30)
    try:
        yield
    finally:
        release.set()
        first.join()


def test_pyro_entry_points_refuse_a_second_thread():
    model = bd.BayesianMLP(1, hidden=(4,), seed=0)
    x = torch.randn(8, 1)
    errors = []
    with _pyro_held_by_another_thread():
        for call in (lambda: model.predict(x, num_samples=2),
                     lambda: model.model(x),
                     lambda: bd.fit(model.model, model.guide, x, x[:, 0], num_steps=1,
                                    progress=False)):
            with pytest.raises(RuntimeError, match="another thread is running Pyro code"):
                call()
            errors.append(True)
    assert len(errors) == 3
    model.predict(x, num_samples=2)  # once the other thread is done, it works again


def test_sampling_a_pyro_potential_refuses_a_second_thread():
    from bayesdepth.inference import SGLD, pyro_potential, sample

    model = bd.BayesianMLP(1, hidden=(3,), seed=0)
    x = torch.randn(6, 1)
    potential = pyro_potential(model.model, x, x[:, 0], vectorize=False)
    with _pyro_held_by_another_thread(), pytest.raises(
            RuntimeError, match="another thread is running Pyro code"):
        sample(potential, SGLD(1e-4), num_chains=2, num_draws=2, seed=0)
