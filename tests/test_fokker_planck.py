"""1-D Fokker–Planck (basin masses, spectral gap) and Eyring–Kramers in d dimensions (§13.3).

The tilted double well L(x) = (x^2 - 1)^2 (1 + tanh(x) / 2) has minima at -1 and 1 with L = 0
and curvatures 4.954 (flat) and 11.046 (sharp), and a barrier of 1.0295 at x = 0.1151.
"""

import math

import numpy as np
import pytest
import torch
from bayesdepth.inference import escape, fokker_planck, heavy_tails
from scipy import integrate

F64 = torch.float64
INTERVAL = (-2.2, 2.0)
LIMIT = math.sqrt(11.046376 / 4.953623)  # sqrt(L''(1) / L''(-1)) = 1.4933


def HESSIAN(fn):
    return torch.func.jacrev(torch.func.jacrev(fn))  # torch.func.hessian's jacfwd warns in 2.13


def tilted(x):
    return (x**2 - 1) ** 2 * (1 + torch.tanh(x) / 2)


def tilted_float(x):  # plain floats for the nested scipy quadratures (fast)
    return (x * x - 1) ** 2 * (1 + math.tanh(x) / 2)


def tilted_slope(x):
    t = math.tanh(x)
    return 4 * x * (x * x - 1) * (1 + t / 2) + (x * x - 1) ** 2 * (1 - t * t) / 2


def diffusion(x):  # floats or tensors
    return 0.1 * (1 + 0.5 * x * x)


def _curvature(x):
    return float(HESSIAN(tilted)(torch.tensor(x, dtype=F64)))


def _kramers_rates(temperature, saddle):
    barrier = float(tilted(torch.tensor(saddle, dtype=F64)))
    return sum(escape.eyring_kramers_rate(_curvature(m), _curvature(saddle), barrier, temperature)
               for m in (-1.0, 1.0))


def test_critical_points_and_the_low_temperature_mass_ratio():
    ratios = []
    for temperature, expected in ((0.2, 1.4649), (0.1, 1.4813), (0.05, 1.4876)):
        out = fokker_planck.basin_masses(tilted, temperature, INTERVAL)
        np.testing.assert_allclose(out.minima, [-1.0, 1.0], atol=1e-12)
        assert out.boundaries[0] == pytest.approx(0.115125, abs=1e-6)
        assert out.masses.sum() == pytest.approx(1.0, abs=1e-12)
        ratio = out.masses[0] / out.masses[1]
        assert ratio == pytest.approx(expected, abs=5e-5)
        # against an independent quadrature of exp(-L / T) on either side of the saddle
        cut = out.boundaries[0]

        def f(x, t=temperature):
            return math.exp(-tilted_float(x) / t)

        quad = [integrate.quad(f, a, b, epsabs=0, epsrel=1e-12, limit=200)[0]
                for a, b in ((INTERVAL[0], cut), (cut, INTERVAL[1]))]
        assert ratio == pytest.approx(quad[0] / quad[1], rel=1e-9)
        ratios.append(ratio)
    assert _curvature(-1.0) == pytest.approx(4.9536, abs=1e-4)
    assert _curvature(1.0) == pytest.approx(11.0464, abs=1e-4)
    assert LIMIT == pytest.approx(1.4933, abs=1e-4)
    assert ratios[0] < ratios[1] < ratios[2] < LIMIT  # the flat minimum wins, ever more so
    assert LIMIT - ratios[2] < 0.5 * (LIMIT - ratios[1]) < 0.25 * (LIMIT - ratios[0]) * 1.1


def test_masses_depend_on_lr_and_batch_size_only_through_the_temperature():
    def noise_var(x):  # a state-dependent gradient-noise variance
        return 2.0 * (1 + 0.5 * x * x)

    def masses(lr, batch, c):
        d = fokker_planck.sgd_diffusion(lr, batch, c)
        return fokker_planck.basin_masses(tilted, d, INTERVAL).masses

    for c in (2.0, noise_var):
        base = masses(0.1, 10, c)  # T = eta c / (2 B) = 0.005 c
        for lr, batch in ((0.2, 20), (0.05, 5), (0.4, 40)):
            np.testing.assert_allclose(masses(lr, batch, c), base, rtol=1e-12)
        assert abs(masses(2.0, 10, c)[0] - base[0]) > 1e-3  # T twenty times higher
    np.testing.assert_allclose(masses(0.1, 10, 2.0),
                               fokker_planck.basin_masses(tilted, 0.005 * 2.0, INTERVAL).masses)
    # the state-dependent diffusion changes the answer (Phi' = L'/D, p = e^-Phi / D)
    assert abs(masses(0.1, 10, noise_var)[0] - masses(0.1, 10, 2.0)[0]) > 1e-3


def test_stationary_density_with_state_dependent_diffusion_against_quadrature():
    out = fokker_planck.stationary_density(tilted, diffusion, INTERVAL, num_points=2001)

    def phi(y):
        return integrate.quad(lambda s: tilted_slope(s) / diffusion(s), 0.0, y,
                              epsrel=1e-12)[0]

    def exact(points):
        total = integrate.quad(lambda x: math.exp(-phi(x)) / diffusion(x), *INTERVAL, epsrel=1e-11,
                               limit=200)[0]
        return np.array([math.exp(-phi(x)) / diffusion(x) for x in points]) / total

    nodes = [200, 560, 800, 1100, 1500, 1700, 1900]  # grid points from -1.78 to 1.79
    np.testing.assert_allclose(out.density[nodes], exact(out.x[nodes]), rtol=1e-6)
    assert float(np.abs(out.x[1::100] - 0.1).min()) > 1e-3  # nodes: interpolation not needed
    fine = fokker_planck.stationary_density(tilted, diffusion, INTERVAL, num_points=8001)
    np.testing.assert_allclose(fine.density[[4 * i for i in nodes]], exact(out.x[nodes]),
                               rtol=1e-8)


def test_spectral_gap_tends_to_the_sum_of_eyring_kramers_rates():
    ratios = []
    for temperature, expected in ((0.2, 0.91066), (0.1, 0.95677), (0.05, 0.97945)):
        gap = fokker_planck.spectral_gap(tilted, temperature, INTERVAL)
        ratios.append(gap / _kramers_rates(temperature, 0.115125079))
        assert ratios[-1] == pytest.approx(expected, abs=2e-5)
        if temperature <= 0.1:  # the gap is the sum of the inverse exact mean transition times
            there = escape.mean_first_passage_time(tilted_float, -1.0, 1.0, temperature,
                                                   lower=INTERVAL[0])
            back = escape.mean_first_passage_time(lambda x: tilted_float(-x), -1.0, 1.0,
                                                  temperature, lower=-INTERVAL[1])
            assert gap == pytest.approx(1 / there + 1 / back, rel=2e-4)
    assert ratios[0] < ratios[1] < ratios[2] < 1
    # grid convergence: the finite-difference gap is second order in the spacing
    coarse = fokker_planck.spectral_gap(tilted, 0.1, INTERVAL, num_points=1001)
    fine = fokker_planck.spectral_gap(tilted, 0.1, INTERVAL, num_points=4001)
    assert coarse == pytest.approx(fine, rel=1e-7)


def test_spectral_gap_with_state_dependent_diffusion():
    gap = fokker_planck.spectral_gap(tilted, diffusion, INTERVAL)
    there = escape.mean_first_passage_time(tilted_float, -1.0, 1.0, diffusion,
                                           grad_loss=tilted_slope, lower=INTERVAL[0])
    back = escape.mean_first_passage_time(lambda x: tilted_float(-x), -1.0, 1.0,
                                          diffusion, grad_loss=lambda x: -tilted_slope(-x),
                                          lower=-INTERVAL[1])
    assert gap == pytest.approx(1 / there + 1 / back, rel=1e-3)


def test_fokker_planck_bad_inputs():
    with pytest.raises(ValueError, match=r"interval must be finite with lo < hi, got \(1, 0\)"):
        fokker_planck.stationary_density(tilted, 0.1, (1, 0))
    with pytest.raises(ValueError, match="diffusion must be finite and > 0"):
        fokker_planck.spectral_gap(tilted, lambda x: x, INTERVAL)
    with pytest.raises(ValueError, match=r"basins need minima separated by maxima"):
        fokker_planck.basin_masses(tilted, 0.1, (-0.5, 0.5))
    with pytest.raises(TypeError, match="loss must be callable"):
        fokker_planck.stationary_density(1.0, 0.1, INTERVAL)


# ------------------------------------------------------------------ Eyring–Kramers in d dims
def test_eyring_kramers_reduces_to_kramers_and_factorises():
    assert escape.eyring_kramers_rate(2.0, -1.0, 0.25, 0.05) == pytest.approx(
        1 / escape.kramers_escape_time(2.0, -1.0, 0.25, 0.05), rel=1e-12)
    # separable: transverse modes multiply the 1-D rate by sqrt(prod k_min / prod k_saddle)
    h_min = torch.diag(torch.tensor([2.0, 3.0, 5.0], dtype=F64))
    h_sad = torch.diag(torch.tensor([-1.0, 1.5, 4.0], dtype=F64))
    one_d = escape.eyring_kramers_rate(2.0, -1.0, 0.25, 0.05)
    rate = escape.eyring_kramers_rate(h_min, h_sad, 0.25, 0.05)
    assert rate == pytest.approx(one_d * math.sqrt(15 / 6), rel=1e-12)
    q = torch.linalg.qr(torch.randn(3, 3, dtype=F64, generator=torch.Generator().manual_seed(0)))
    rotated = escape.eyring_kramers_rate(q.Q @ h_min @ q.Q.T, q.Q @ h_sad @ q.Q.T, 0.25, 0.05)
    assert rotated == pytest.approx(rate, rel=1e-10)
    with pytest.raises(ValueError, match="exactly one negative eigenvalue"):
        escape.eyring_kramers_rate(h_min, -h_min, 0.25, 0.05)
    with pytest.raises(ValueError, match="hess_min must be positive definite"):
        escape.eyring_kramers_rate(h_sad, h_sad, 0.25, 0.05)
    with pytest.raises(ValueError, match=r"hess_saddle must have shape \(3, 3\)"):
        escape.eyring_kramers_rate(h_min, -1.0, 0.25, 0.05)


K, C0 = 4.0, 0.5  # transverse stiffness and the bend of the valley


def sheared_double_well(z):
    """V(x) + k (y - c x^2)^2 / 2, V = (x^2 - 1)^2 (1 + x^2): non-diagonal Hessians at the
    minima (eigenvalues 3.06 and 20.9), diag(-2, 4) at the saddle; barrier 1."""
    x, y = z[..., 0], z[..., 1]
    s = x * x
    return (s - 1) ** 2 * (1 + s) + 0.5 * K * (y - C0 * s) ** 2


def _sheared_gradient(z):
    x, y = z[..., 0], z[..., 1]
    s, w = x * x, z[..., 1] - C0 * x * x
    del y
    return torch.stack([2 * x * (s - 1) * (3 * s + 1) - 2 * C0 * K * x * w, K * w], -1)


def test_sheared_double_well_gradient():
    z = torch.randn(7, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    auto = torch.func.vmap(torch.func.grad(sheared_double_well))(z)
    torch.testing.assert_close(_sheared_gradient(z), auto)


@pytest.mark.slow
def test_two_dimensional_mean_exit_time_against_eyring_kramers():
    # overdamped Langevin at T = 0.2 (barrier / T = 5) from the left minimum until x >= 1 (the
    # right minimum): 20,000 chains for 0.15 of the mean exit time, the exponential tail fitted
    # after t = 5 (the chains first spread over the basin); EM step 0.004 (0.08 / lambda_max)
    temperature, dt = 0.2, 0.004
    left, saddle = torch.tensor([-1.0, C0], dtype=F64), torch.zeros(2, dtype=F64)
    hess = HESSIAN(sheared_double_well)
    h_min, h_sad = hess(left), hess(saddle)
    assert abs(float(h_min[0, 1])) > 1 and float(torch.linalg.eigvalsh(h_sad)[0]) == -2.0
    rate = escape.eyring_kramers_rate(h_min, h_sad, 1.0, temperature)
    steps = int(0.15 / rate / dt)
    out = heavy_tails.simulate_levy_sde(
        lambda z: -_sheared_gradient(z), left.repeat(20_000, 1), 2.0, math.sqrt(temperature),
        dt, steps, generator=torch.Generator().manual_seed(1), inside=lambda z: z[:, 0] < 1.0)
    est = escape.censored_mean_exit_time(out.exit_time, steps * dt, tail_from=5.0)
    ratio, se = est.mean * rate, est.standard_error * rate
    assert se < 0.025
    assert abs(ratio - 1) < 0.10, (ratio, se)  # measured 1.042 +- 0.022
    # Kramers' 1-D law with the curvature along x (h_xx = 20, not det / h_yy = 16) is 12% off
    one_d = escape.eyring_kramers_rate(float(h_min[0, 0]), -2.0, 1.0, temperature)
    assert abs(est.mean * one_d - 1) > 0.1
