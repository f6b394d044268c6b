"""Schedules: constant, cyclical cosine (Zhang et al. 2020) phases, validation."""

import math

import pytest
import torch
from bayesdepth.inference import SGD, SGLD, Constant, CyclicalCosine, Potential, sample
from bayesdepth.inference.samplers.schedules import as_schedule


class GaussianPotential(Potential):
    def __init__(self):
        self.shapes = {"theta": torch.Size([2])}

    def init(self, num_chains, generator):
        return {"theta": torch.zeros(num_chains, 2, dtype=torch.float64)}

    def __call__(self, params, batch=None):
        return 0.5 * (params["theta"] ** 2).sum(-1), None


def test_constant():
    s = Constant(0.3)
    assert s(0) == s(10**6) == 0.3 and s.sampling(5) and not s.exploring(5)
    with pytest.raises(ValueError, match="lr"):
        as_schedule(0.0, "lr")
    with pytest.raises(ValueError, match="temperature"):
        as_schedule(-1.0, "temperature", allow_zero=True)
    assert as_schedule(0.0, "temperature", allow_zero=True)(3) == 0.0


def test_cyclical_cosine_matches_paper_formula():
    lr0, total, cycles, beta = 0.5, 100, 3, 0.3
    s = CyclicalCosine(lr0, total, cycles, explore_fraction=beta)
    length = math.ceil(total / cycles)
    for k in range(1, 2 * total):  # the paper counts k from 1
        frac = ((k - 1) % length) / length
        assert s(k - 1) == pytest.approx(lr0 / 2 * (math.cos(math.pi * frac) + 1), rel=1e-14)
        assert s.exploring(k - 1) == (frac < beta)
        assert s.sampling(k - 1) == (frac >= beta)
    assert s(0) == lr0 and s(length) == lr0  # restarts at every cycle


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": 0.0, "num_steps": 10, "num_cycles": 2}, "lr"),
        ({"lr": 0.1, "num_steps": 0, "num_cycles": 2}, "num_steps"),
        ({"lr": 0.1, "num_steps": 10, "num_cycles": 0}, "num_cycles"),
        ({"lr": 0.1, "num_steps": 10, "num_cycles": 2, "explore_fraction": 1.0}, "explore"),
    ],
)
def test_cyclical_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CyclicalCosine(**kwargs)


def test_callable_schedule_is_checked_each_step():
    sampler = SGD(lambda k: 0.1 if k < 2 else -1.0)
    state = sampler.init(torch.zeros(2, 1))

    def grad_fn(p, g):
        return p, p.sum(-1)

    state, _ = sampler.step(state, grad_fn, None)
    state, _ = sampler.step(state, grad_fn, None)
    with pytest.raises(ValueError, match="lr at step 2"):
        sampler.step(state, grad_fn, None)


def test_runner_keeps_draws_only_in_sampling_phases():
    schedule = CyclicalCosine(0.05, num_steps=40, num_cycles=4, explore_fraction=0.5)
    chains = sample(GaussianPotential(), SGLD(schedule), num_chains=2, num_draws=30, seed=0)
    lrs = chains.stats["lr"][0]
    sampling_lrs = {schedule(k) for k in range(40) if schedule.sampling(k)}
    assert all(float(v) in sampling_lrs for v in lrs)
    assert chains.stats["temperature"].min() == 1.0  # never an exploration (noise-free) step
    assert chains.steps == 60  # 30 draws, 5 sampling steps out of every 10


@pytest.mark.parametrize(
    ("kwargs", "length"),
    [
        ({"num_steps": 10, "num_cycles": 20}, 1),  # more cycles than steps: cycles of 1 step
        ({"num_steps": 40, "num_cycles": 10, "explore_fraction": 0.8}, 4),  # 0.8 of 4 steps
        ({"num_steps": 10, "num_cycles": 5, "explore_fraction": 0.6}, 2),
    ],
)
def test_cyclical_without_a_sampling_step_is_refused_when_built(kwargs, length):
    """The cases that made sample() loop forever: now an error naming the arguments."""
    with pytest.raises(ValueError, match=rf"cycles of {length} step\(s\) with no sampling step"):
        CyclicalCosine(0.1, **kwargs)
    CyclicalCosine(0.1, **{**kwargs, "explore_fraction": 0.0})  # all-sampling cycles are fine


class NeverSampling(Constant):
    """A user schedule whose period has no sampling step."""

    period = 3

    def sampling(self, step):
        return False


def test_sample_refuses_a_schedule_that_never_keeps_a_draw():
    with pytest.raises(ValueError, match=r"num_draws=5, thin=2.*can never keep a draw"):
        sample(GaussianPotential(), SGLD(NeverSampling(0.1)), num_chains=2, num_draws=5, thin=2)


@pytest.mark.parametrize(("warmup", "draws", "thin"), [(0, 30, 1), (7, 11, 3), (13, 1, 5)])
def test_steps_for_counts_the_steps_a_run_takes(warmup, draws, thin):
    schedule = CyclicalCosine(0.05, num_steps=40, num_cycles=4, explore_fraction=0.5)
    chains = sample(GaussianPotential(), SGLD(schedule), num_chains=1, num_draws=draws,
                    warmup=warmup, thin=thin, seed=0)
    assert chains.steps == warmup + schedule.steps_for(draws * thin, start=warmup)
    assert Constant(0.1).steps_for(7, start=3) == 7


def test_a_schedule_of_unknown_period_still_runs():
    """A user schedule that overrides sampling() without a period: no plan, no error."""

    class EveryOther(Constant):
        def sampling(self, step):
            return step % 2 == 1

    assert EveryOther(0.1).steps_for(3) is None
    chains = sample(GaussianPotential(), SGLD(EveryOther(0.1)), num_chains=1, num_draws=3,
                    seed=0, progress=True)
    assert chains.steps == 6
