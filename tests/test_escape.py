"""Escape times (docs/theory.md §6): quadrature against exact cases, Kramers and simulation."""

import math

import pytest
import torch
from bayesdepth.inference import escape, heavy_tails

F64 = torch.float64


def double_well(x):
    return (x * x - 1) ** 2 / 4  # minima +-1 (curvature 2), saddle 0 (curvature -1), height 1/4


def test_free_diffusion_with_reflecting_wall_is_exact():
    # L = 0, D constant, reflecting at 0: tau = (c^2 - x0^2) / (2 D)
    tau = escape.mean_first_passage_time(lambda x: 0.0, 0.3, 1.0, 0.5, lower=0.0)
    assert tau == pytest.approx((1 - 0.09) / (2 * 0.5), rel=1e-8)
    # OU to a barrier, state-dependent path: D callable equal to the constant gives the same value
    tau_c = escape.mean_first_passage_time(lambda x: x * x / 2, 0.0, 1.0, 0.3)
    tau_f = escape.mean_first_passage_time(lambda x: x * x / 2, 0.0, 1.0, lambda x: 0.3,
                                           grad_loss=lambda x: x)
    assert tau_f == pytest.approx(tau_c, rel=1e-7)


def test_kramers_is_the_low_temperature_limit():
    ratios = []
    for temp in (0.1, 0.05, 0.025):
        tau = escape.mean_first_passage_time(double_well, -1.0, 0.6, temp)
        ratios.append(tau / escape.kramers_escape_time(2.0, -1.0, 0.25, temp))
    assert abs(ratios[-1] - 1) < 0.05
    assert abs(ratios[0] - 1) > abs(ratios[1] - 1) > abs(ratios[2] - 1)
    # passage to the saddle itself takes half the Kramers time
    half = escape.mean_first_passage_time(double_well, -1.0, 0.0, 0.025)
    assert half / escape.kramers_escape_time(2.0, -1.0, 0.25, 0.025) == pytest.approx(0.5, rel=0.05)


def _simulate_passage(grad, diff, x0, barrier, dt, chains, steps, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.full((chains,), x0, dtype=F64)
    hit = torch.full((chains,), math.inf, dtype=F64)
    alive = torch.ones(chains, dtype=torch.bool)
    for k in range(steps):
        z = torch.randn(chains, generator=gen, dtype=F64)
        x = torch.where(alive, x - grad(x) * dt + torch.sqrt(2 * diff(x) * dt) * z, x)
        new = alive & (x >= barrier)
        hit = torch.where(new, torch.full_like(hit, (k + 1) * dt), hit)
        alive &= ~new
        if k % 200 == 0 and not bool(alive.any()):
            break
    assert not bool(alive.any())
    return hit


@pytest.mark.slow
def test_first_passage_time_against_simulation_with_state_dependent_diffusion():
    # Xie et al.: SGD's diffusion follows the Hessian, D = eta H / (2B); here D grows with |x|.
    def diff(x):
        return 0.2 * (1 + 0.5 * x * x)

    def grad(x):
        return x**3 - x

    exact = escape.mean_first_passage_time(
        lambda x: (x**2 - 1) ** 2 / 4, -1.0, 0.5, diff, grad_loss=lambda x: x**3 - x
    )
    hit = _simulate_passage(grad, diff, -1.0, 0.5, 2e-3, 2000, 60_000, seed=0)
    se = float(hit.std()) / math.sqrt(hit.numel())
    # Euler with discrete monitoring overshoots by O(sqrt(dt)); allow 2% on top of 3 SE
    assert abs(float(hit.mean()) - exact) < 3 * se + 0.02 * exact
    constant = escape.mean_first_passage_time(double_well, -1.0, 0.5, 0.2)
    assert abs(constant - exact) > 10 * se


@pytest.mark.slow
def test_levy_exit_time_law():
    alpha = 1.5
    means = []
    for eps, dt in ((0.1, 0.02), (0.05, 0.05)):
        gen = torch.Generator().manual_seed(1)
        out = heavy_tails.simulate_levy_sde(lambda x: -x, torch.zeros(1000, dtype=F64), alpha,
                                            eps, dt, 20_000, generator=gen, interval=(-1.0, 1.0))
        mean, se = escape.censored_mean_exit_time(out.exit_time, 20_000 * dt)
        means.append(mean)
        law = escape.levy_exit_time(alpha, eps, 1.0, 1.0)
        # asymptotic in eps -> 0: the leading term is within ~10% at eps = 0.1
        assert abs(mean - law) < 3 * se + 0.06 * law
    # polynomial in 1/eps with exponent alpha (not exponential as for Gaussian noise)
    assert math.log(means[1] / means[0]) / math.log(2) == pytest.approx(alpha, abs=0.2)


def test_levy_law_shape_and_bad_inputs():
    assert escape.levy_exit_time(1.5, 0.1, 2.0, 2.0) == pytest.approx(
        2**1.5 * escape.levy_exit_time(1.5, 0.1, 1.0, 1.0))
    assert escape.levy_exit_time(1.0, 0.2, 1.0, 1.0) == pytest.approx(1 / (0.2 / math.pi * 2))
    with pytest.raises(ValueError, match="lower <= x0 < barrier"):
        escape.mean_first_passage_time(double_well, 1.0, 0.5)
    with pytest.raises(ValueError, match="grad_loss"):
        escape.mean_first_passage_time(double_well, -1.0, 0.5, lambda x: 1.0)
    with pytest.raises(ValueError, match="alpha must lie in"):
        escape.levy_exit_time(2.0, 0.1, 1.0, 1.0)


def test_censored_mean_exit_time_on_exponential_times():
    gen = torch.Generator().manual_seed(2)
    mean, horizon, n = 3.0, 4.0, 20_000
    t = -mean * torch.log1p(-torch.rand(n, generator=gen, dtype=F64))
    censored = torch.where(t > horizon, torch.full_like(t, math.inf), t)
    assert float(torch.isinf(censored).float().mean()) > 0.2  # censoring matters here
    est = escape.censored_mean_exit_time(censored, horizon)
    assert abs(est.mean - mean) < 3 * est.standard_error
    naive = float(censored[torch.isfinite(censored)].mean())  # ignoring the censored chains
    assert abs(naive - mean) > 10 * est.standard_error
    with pytest.raises(ValueError, match=r"no chain exited before horizon 1\.0"):
        escape.censored_mean_exit_time(torch.full((3,), math.inf), 1.0)



def test_censored_mean_with_an_exponential_tail_after_a_lag():
    # exits after a lag: t = 2 + Exp(mean 10); a horizon of 5 sees few of them
    gen = torch.Generator().manual_seed(3)
    n, lag, mean, horizon = 200_000, 2.0, 10.0, 5.0
    t = lag - mean * torch.log1p(-torch.rand(n, generator=gen, dtype=F64))
    censored = torch.where(t > horizon, torch.full_like(t, math.inf), t)
    est = escape.censored_mean_exit_time(censored, horizon, tail_from=2.5)
    assert abs(est.mean - (lag + mean)) < 3 * est.standard_error
    naive = escape.censored_mean_exit_time(censored, horizon)  # exponential from t = 0
    assert abs(naive.mean - (lag + mean)) > 10 * naive.standard_error
    with pytest.raises(ValueError, match=r"tail_from = 6 must be below the horizon 5"):
        escape.censored_mean_exit_time(censored, horizon, tail_from=6)


def test_levy_exit_time_law_in_d_dimensions_with_a_preconditioner():
    one = escape.levy_exit_time(1.5, 0.1, 1.0, 2.0)
    # a coordinate whose box is far away adds no exits; equal coordinates halve the time
    assert escape.levy_exit_time(1.5, 0.1, [1.0, 1e9], [2.0, 1e9]) == pytest.approx(one)
    assert escape.levy_exit_time(1.5, 0.1, [1.0, 1.0], [2.0, 2.0]) == pytest.approx(one / 2)
    # Q = q I multiplies the exit time by q^alpha (Zhou et al. 2020)
    for q in (0.5, 2.0, 7.0):
        assert escape.levy_exit_time(1.5, 0.1, [1.0, 1.0], [2.0, 2.0], q) == pytest.approx(
            q**1.5 * one / 2)
    c = math.gamma(2.5) * math.sin(0.75 * math.pi) / math.pi
    assert escape.levy_exit_time(1.5, 0.1, [1.0, 3.0], [1.0, 1.0], [1.0, 3.0]) == pytest.approx(
        1.5 / (0.1**1.5 * c * (2 + 3**-1.5 * (3**-1.5 + 1))), rel=1e-12)
    with pytest.raises(ValueError, match=r"one entry per coordinate .* \{'right': 2, 'left': 3\}"):
        escape.levy_exit_time(1.5, 0.1, [1.0, 1.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"preconditioner\[1\] must be a finite number > 0"):
        escape.levy_exit_time(1.5, 0.1, 1.0, 1.0, [1.0, 0.0])


@pytest.mark.slow
def test_levy_exit_time_with_a_frozen_preconditioner_against_simulation():
    # dX = -Q^{-1} h X dt + eps Q^{-1} dL^alpha on the box (-1, 1) x (-1.5, 0.5): Adam-like
    # diagonal preconditioners q stretch the exit time by q^alpha (measured: 0.98, 1.01 and
    # 0.98 of the law for q = (1, 1), (2, 2), (1, 3); 2000 chains each, +-2.8%)
    alpha, eps, dt, chains = 1.5, 0.05, 0.05, 2000
    h = torch.tensor([1.0, 2.0], dtype=F64)
    lo, hi = torch.tensor([-1.0, -1.5], dtype=F64), torch.tensor([1.0, 0.5], dtype=F64)
    means = {}
    for q in ((1.0, 1.0), (2.0, 2.0), (1.0, 3.0)):
        law = escape.levy_exit_time(alpha, eps, hi.tolist(), (-lo).tolist(), q)
        steps = int(law / dt)
        out = heavy_tails.simulate_levy_sde(
            lambda x: -h * x, torch.zeros(chains, 2, dtype=F64), alpha, eps, dt, steps,
            generator=torch.Generator().manual_seed(0), preconditioner=torch.tensor(q, dtype=F64),
            inside=lambda x: ((x > lo) & (x < hi)).all(-1))
        est = escape.censored_mean_exit_time(out.exit_time, steps * dt)
        assert abs(est.mean - law) < 3 * est.standard_error + 0.05 * law, (q, est, law)
        means[q] = est
    ratio = means[(2.0, 2.0)].mean / means[(1.0, 1.0)].mean
    se = ratio * math.hypot(*(means[q].standard_error / means[q].mean
                              for q in ((2.0, 2.0), (1.0, 1.0))))
    assert abs(ratio - 2**alpha) < 3 * se + 0.1
    assert abs(ratio - 2) > 3 * se  # not the linear slow-down of the drift
