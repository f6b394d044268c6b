"""The anomalous-diffusion exponent predicted from the spectrum (docs/theory.md §14.6), float64.

Replaces the loose ``0.05 < gamma < 0.9`` check: the exponent of the exact MSD curve and of SGD
chains is compared with ``gamma = 1 + 1/p - q``. The curve at d = 4000 comes from the closed form
of commuting A and C, checked against ``momentum.msd_curve`` at d = 1000 (``msd_curve`` itself
diagonalises the Hessian: about 20 s at d = 4000; it gives 0.525 at p = 2 as well).
"""

import numpy as np
import pytest
import torch
from bayesdepth.inference import SGD, SGDProblem, momentum
from bayesdepth.inference import anomalous as an
from bayesdepth.inference.samplers import SGDState
from bayesdepth.inference.statistics import diffusion_exponent, empirical_msd

F64 = torch.float64
LAGS = np.unique(np.logspace(0, 3.5, 40).astype(int))
WINDOW = (10, 1000)


def commuting_msd(dim, p, q, lr, lags):
    """The exact MSD when A = diag(a) and C = diag(c) commute (plain SGD, B = 1), O(d) per lag.

    Every mode is an AR(1) process with variance s_i = lr c_i / (a_i (2 - lr a_i)) and
    autocorrelation (1 - lr a_i)^tau (docs/theory.md §1.2, §2.6).
    """
    a = torch.arange(1, dim + 1, dtype=F64) ** -p
    s = lr * a**q / (a * (2 - lr * a))
    tau = torch.as_tensor(np.asarray(lags), dtype=F64)[:, None]
    return (2 * s * (1 - (1 - lr * a) ** tau)).sum(-1)


def exact_exponent(dim, p, q, lr=0.2):
    return diffusion_exponent(LAGS, commuting_msd(dim, p, q, lr, LAGS), WINDOW)


def test_relaxation_time_of_a_mode():
    a = torch.tensor([1e-4, 0.5, 3.0], dtype=F64)
    torch.testing.assert_close(an.relaxation_time(a, 0.2), -1 / torch.log(1 - 0.2 * a))
    slow, fast = an.relaxation_time(a[[0, 2]], 0.2, 0.9)
    assert float(slow) == pytest.approx((1 - 0.9) / (0.2 * 1e-4), rel=5e-3)  # O(eta a / (1-b)^2)
    assert float(fast) == pytest.approx(-2 / np.log(0.9))  # underdamped: modulus sqrt(beta)
    with pytest.raises(ValueError, match="unstable"):
        an.relaxation_time(a, 1.0)


def test_commuting_msd_is_the_exact_curve():
    problem = an.power_law_problem(1000, 2.0, 0.8, lr=0.2)
    torch.testing.assert_close(momentum.msd_curve(problem, LAGS.tolist()),
                               commuting_msd(1000, 2.0, 0.8, 0.2, LAGS), rtol=1e-10, atol=0)


def test_predicted_exponent_and_where_it_does_not_hold():
    assert an.predicted_msd_exponent(1.5, 1.0) == pytest.approx(2 / 3)
    assert an.predicted_msd_exponent(2.0, 1.0) == pytest.approx(0.5)
    assert an.predicted_msd_exponent(3.0, 0.5) == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match=r"p q = 0.8 <= 1.*close to\s+linear"):
        an.predicted_msd_exponent(2.0, 0.4)
    with pytest.raises(ValueError, match=r"1 \+ p \(1 - q\) = -0.2 <= 0.*plateau"):
        an.predicted_msd_exponent(2.0, 1.6)
    with pytest.raises(ValueError, match="p must be a finite number > 0"):
        an.predicted_msd_exponent(-1.0, 1.0)
    with pytest.raises(ValueError, match="q must be a finite number"):
        an.predicted_msd_exponent(2.0, float("nan"))


def test_fit_recovers_the_exponents_of_a_rotated_spectrum():
    d, p, q = 60, 1.7, 0.8
    gen = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=F64))
    a = torch.arange(1, d + 1, dtype=F64) ** -p
    fit = an.fit_power_law_spectrum(u @ torch.diag(a) @ u.T, u @ torch.diag(3 * a**q) @ u.T)
    assert fit.p == pytest.approx(p, rel=1e-8) and fit.q == pytest.approx(q, rel=1e-8)
    assert fit.ranks == (1, d)
    assert fit.msd_exponent() == pytest.approx(1 + 1 / p - q, rel=1e-8)
    # from the eigenvalues and the variances along them, on a window of ranks
    half = an.fit_power_law_spectrum(a.flip(0), (3 * a**q).flip(0), ranks=(5, 40))
    assert half.p == pytest.approx(p, rel=1e-10) and half.ranks == (5, 40)
    lo, hi = half.lag_window(lr=0.1, momentum=0.5)
    torch.testing.assert_close(torch.tensor([lo, hi], dtype=F64),
                               an.relaxation_time(a[[4, 39]], 0.1, 0.5))
    # negative eigenvalues are dropped before ranking
    shifted = an.fit_power_law_spectrum(torch.cat([a, -a[:3]]), torch.cat([a, a[:3]]))
    assert shifted.eigenvalues.shape == (d,) and shifted.p == pytest.approx(p)
    with pytest.raises(ValueError, match=r"1 <= lo < hi <= 60"):
        an.fit_power_law_spectrum(a, a, ranks=(3, 61))
    with pytest.raises(ValueError, match="square of one size"):
        an.fit_power_law_spectrum(torch.eye(3, dtype=F64), torch.eye(4, dtype=F64))


def test_exact_msd_exponents_at_d_1000_follow_the_prediction():
    # q != 1 separates 1 + 1/p - q from formulas in p alone
    for p, q, measured in [(2.0, 0.8, 0.694), (3.0, 0.5, 0.819)]:
        gamma = exact_exponent(1000, p, q)
        assert gamma == pytest.approx(measured, abs=2e-3)
        assert abs(gamma - an.predicted_msd_exponent(p, q)) < 0.03
    # where the function refuses, the MSD is indeed not tau^(1 + 1/p - q)
    assert exact_exponent(1000, 2.0, 0.4) > 0.93  # close to linear, not 1.1
    assert exact_exponent(1000, 2.0, 1.6) < 0.25  # near a plateau, not -0.1
    eye = torch.eye(3, dtype=F64)
    flat = momentum.msd_curve(SGDProblem(eye, eye, lr=0.01), [1, 2, 4])
    assert diffusion_exponent([1, 2, 4], flat) == pytest.approx(1.0, abs=0.02)  # one time scale


@pytest.mark.parametrize("p, measured", [(1.5, 0.668), (2.0, 0.525)])
def test_exact_msd_exponent_at_d_4000(p, measured):
    """d = 4000, lags 10-1000, lr 0.2: 0.668 at p = 1.5 (predicted 0.667), 0.525 at p = 2 (0.5)."""
    gamma = exact_exponent(4000, p, 1.0)
    assert gamma == pytest.approx(measured, abs=2e-3)
    assert abs(gamma - an.predicted_msd_exponent(p, 1.0)) < 0.03


@pytest.mark.parametrize("p", [1.5, 2.0])
def test_sgd_chains_have_the_predicted_exponent(p):
    d, lr, chains, steps = 1000, 0.2, 4, 4000
    a = torch.arange(1, d + 1, dtype=F64) ** -p  # C = A (q = 1)
    gen = torch.Generator().manual_seed(int(10 * p))

    def grad_fn(params, generator):  # per-example gradients a_i theta_i - sqrt(a_i) z_i
        z = torch.randn(params.shape, generator=generator, dtype=F64)
        return params * a - a.sqrt() * z, params.sum(-1)

    # the slowest modes relax over ~1e6 steps: start in the exact stationary law of each mode,
    # variance lr c_i / (a_i (2 - lr a_i)) (docs/theory.md §1.2)
    start = torch.randn(chains, d, generator=gen, dtype=F64) * (lr / (2 - lr * a)).sqrt()
    sampler = SGD(lr)
    state = SGDState(params=start, step=1)
    draws = torch.empty(chains, steps, d, dtype=F64)
    for k in range(steps):
        state, _ = sampler.step(state, grad_fn, gen)
        draws[:, k] = state.params
    lags = LAGS[(LAGS >= 10) & (LAGS <= 1000)]
    gamma = diffusion_exponent(lags, empirical_msd(draws, lags.tolist()))
    assert abs(gamma - an.predicted_msd_exponent(p, 1.0)) < 0.05
