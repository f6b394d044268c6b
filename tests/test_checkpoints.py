"""Checkpoints bound to their run: fingerprints, checksums, refusals, and a killed run resumed."""

import signal
import subprocess
import sys
import time

import pytest
import torch
from bayesdepth.inference import SGLD, pyro_potential, sample
from bayesdepth.inference.checkpoints import checkpoint_file
from bayesdepth.inference.fingerprint import digest

from bayesdepth import data

SCRIPT = """
import sys, torch, pyro, pyro.distributions as dist
from bayesdepth import data
from bayesdepth.inference import SGLD, pyro_potential, sample
torch.set_num_threads(1)
d = data.linear_regression(num_points=200, dim=3, seed=0)

def model(x, y, subsample_size=None):
    w = pyro.sample("w", dist.Normal(torch.zeros(3, dtype=x.dtype), 1.0).to_event(1))
    with pyro.plate("data", x.shape[0], subsample_size=subsample_size) as idx:
        pyro.sample("y", dist.Normal(x[idx] @ w, 0.5), obs=y[idx])

chains = sample(pyro_potential(model, d.x, d.y, subsample_size=10), SGLD(lr=1e-4),
                num_chains=4, num_draws=int(sys.argv[2]), warmup=20, seed=5,
                checkpoint=sys.argv[1] if sys.argv[1] != "-" else None, checkpoint_every=10)
torch.save(chains.draws, sys.argv[3])
"""


def _run(folder, draws, out, **kw):
    return subprocess.run([sys.executable, "-c", SCRIPT, str(folder), str(draws), str(out)],
                          capture_output=True, text=True, timeout=300, **kw)


def test_a_killed_run_resumes_to_the_draws_of_an_uninterrupted_one(tmp_path):
    whole = _run("-", 600, tmp_path / "whole.pt")
    assert whole.returncode == 0, whole.stderr
    folder = tmp_path / "ckpt"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(folder), "600",
                             str(tmp_path / "killed.pt")])
    path = checkpoint_file(folder)
    deadline = time.time() + 120
    while not path.exists() and time.time() < deadline:
        time.sleep(0.01)
    first = path.stat().st_mtime_ns
    while path.stat().st_mtime_ns == first and time.time() < deadline:
        time.sleep(0.01)  # the second checkpoint is written: kill, without any warning
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and path.exists()
    assert not (tmp_path / "killed.pt").exists()
    resumed = _run(folder, 600, tmp_path / "resumed.pt")
    assert resumed.returncode == 0, resumed.stderr
    expected = torch.load(tmp_path / "whole.pt", weights_only=True)
    got = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert torch.equal(got["w"], expected["w"])


def _small_run(folder, **kw):
    d = data.linear_regression(num_points=40, dim=2, seed=0)
    import pyro
    import pyro.distributions as dist

    def model(x, y, subsample_size=None):
        w = pyro.sample("w", dist.Normal(torch.zeros(2, dtype=x.dtype), 1.0).to_event(1))
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size) as idx:
            pyro.sample("y", dist.Normal(x[idx] @ w, 0.5), obs=y[idx])

    settings = dict(num_chains=2, num_draws=8, seed=1, checkpoint=folder, checkpoint_every=4)
    settings.update(kw)
    return sample(pyro_potential(model, d.x, d.y, subsample_size=5), SGLD(lr=1e-4), **settings)


def test_a_changed_byte_a_truncated_file_or_a_foreign_file_is_one_clear_error(tmp_path):
    _small_run(tmp_path)
    path = checkpoint_file(tmp_path)
    good = path.read_bytes()
    for position in range(len(good) // 3, len(good) - 100, max(1, len(good) // 9)):
        damaged = bytearray(good)
        damaged[position] ^= 0xFF
        path.write_bytes(bytes(damaged))
        with pytest.raises(ValueError, match=r"checkpoint .* cannot be used"):
            _small_run(tmp_path)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        _small_run(tmp_path)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a bayesdepth chain checkpoint"):
        _small_run(tmp_path)
    path.write_bytes(good)
    assert _small_run(tmp_path).num_draws == 8  # intact again: the finished run comes back


def test_a_checkpoint_of_another_run_is_refused_naming_what_differs(tmp_path):
    first = _small_run(tmp_path)
    for change, needle in (({"seed": 2}, "randomness"), ({"num_chains": 3}, "num_chains"),
                           ({"warmup": 1}, "warmup"), ({"thin": 2}, "thin")):
        with pytest.raises(ValueError, match=f"belongs to another run .*{needle}"):
            _small_run(tmp_path, **change)
    with pytest.raises(ValueError, match="holds 8 draws, but this run asks for num_draws=5"):
        _small_run(tmp_path, num_draws=5)
    with pytest.raises(ValueError, match="pass extend=True"):
        _small_run(tmp_path, num_draws=12)
    longer = _small_run(tmp_path, num_draws=12, extend=True)
    assert torch.equal(longer.draws["w"][:, :8], first.draws["w"])
    assert torch.equal(longer.draws["w"], _small_run(None, num_draws=12).draws["w"])
    with pytest.raises(ValueError, match="pass resume=True"):
        _small_run(tmp_path, num_draws=12, resume=False)
    assert _small_run(tmp_path, num_draws=3, overwrite=True).num_draws == 3


def test_digests_follow_content_not_identity():
    a, b = torch.arange(6.0), torch.arange(6.0)
    assert digest({"x": a, "f": [1, 2.5]}) == digest({"x": b, "f": [1, 2.5]})
    assert digest(a) != digest(a.double()) and digest(a) != digest(a.reshape(2, 3))
    b[3] = 0
    assert digest(a) != digest(b)
    assert digest(SGLD(1e-3)) != digest(SGLD(2e-3))
    net = torch.nn.Linear(2, 1)
    before = digest(net)
    with torch.no_grad():
        net.weight.add_(1.0)
    assert digest(net) != before

    def outer(scale):
        def model():
            return scale

        return model

    assert digest(outer(1.0)) != digest(outer(2.0))  # closures are part of the function


def test_a_closure_over_a_module_does_not_digest_the_module_state():
    import types

    library = types.ModuleType("library")  # as after `import pyro` inside a function
    library.calls = 0

    def model():
        return library.calls

    before = digest(model)
    library.calls = 1  # global state of the library, not part of the model
    assert digest(model) == before


def test_a_digest_is_the_same_on_every_call_and_ignores_caches():
    from torch.distributions import biject_to, constraints

    # nested plain objects make temporaries whose ids Python reuses within one call
    transform = biject_to(constraints.positive)
    digests = {digest(transform) for _ in range(5)}
    transform(torch.randn(3))
    digests.add(digest(transform))
    assert len(digests) == 1
    cached = torch.distributions.ExpTransform(cache_size=1)
    before = digest(cached)
    cached(torch.randn(3))  # fills _cached_x_y
    assert digest(cached) == before
