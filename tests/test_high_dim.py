"""High-dimensional limits of online SGD at the critical step size (docs/theory.md §14.5).

Two exact instances with the numbers of issue 16: online linear regression (N = 500,
sigma^2 = 0.25, R_0 = 1, t = 2) and the spiked-covariance Oja rule (N = 400, lambda = 1).
"""

import math

import numpy as np
import pytest
import torch
from bayesdepth.inference.high_dim import EffectiveDynamics
from bayesdepth.inference.online_sgd import OnlineRegression, SpikedCovariance
from scipy.integrate import cumulative_trapezoid

F64 = torch.float64
N_REG, S2 = 500, 0.25


def r_at(dynamics, t=2.0, r0=1.0):
    return float(dynamics.solve([r0], [0.0, t])[-1, 0])


def test_regression_drift_is_n_times_the_exact_one_step_change():
    reg = OnlineRegression(N_REG, S2)
    for c in (1.0, 1.9):
        dyn = reg.dynamics(c)
        for r in (0.3, 1.0, 4.0):
            one_step = N_REG * float(reg.exact_risk(c, r, 1)[1] - r)
            assert float(dyn.drift(torch.tensor([r], dtype=F64))) == pytest.approx(one_step,
                                                                                   rel=1e-11)
        # the critical-scaling correction changes the fixed point: drift zero at the exact one
        exact_fp = c * S2 / (2 - c * (N_REG + 2) / N_REG)
        assert float(dyn.fixed_point([1.0])) == pytest.approx(exact_fp, rel=1e-8)
        torch.testing.assert_close(dyn.diffusion(torch.tensor([0.7], dtype=F64)),
                                   reg.limit(c).diffusion(torch.tensor([0.7], dtype=F64)))


def test_regression_exact_limit_and_gradient_flow_at_t_2():
    reg = OnlineRegression(N_REG, S2)
    exact = float(reg.exact_risk(1.0, 1.0, 2 * N_REG)[-1])
    assert exact == pytest.approx(0.3530, abs=1e-4)
    limit = r_at(reg.limit(1.0))
    assert limit == pytest.approx(0.25 + 0.75 * math.exp(-2), rel=1e-8)  # 0.3515
    assert abs(limit - exact) < 2 / N_REG
    assert abs(r_at(reg.dynamics(1.0)) - exact) < 0.5 / N_REG  # same one-step drift as exact
    gradient_flow = r_at(reg.dynamics(1.0, correction=False))
    assert gradient_flow == pytest.approx(math.exp(-4), rel=1e-7)  # R_0 e^{-2ct} = 0.018
    assert float(reg.exact_risk(1.9, 1.0, 2 * N_REG)[-1]) == pytest.approx(2.2262, abs=1e-4)
    assert reg.limit_fixed_point(1.0) == pytest.approx(0.25)
    assert float(reg.limit(1.9).fixed_point([1.0])) == pytest.approx(4.75)


@pytest.mark.slow
def test_regression_simulation_matches_the_exact_recursion():
    reg = OnlineRegression(N_REG, S2)
    for c, seed in ((1.0, 0), (1.9, 1)):
        r = reg.simulate(c, 1.0, 2 * N_REG, num_runs=200, seed=seed, record_every=2 * N_REG)
        assert r.shape == (2, 200)
        mean, se = float(r[-1].mean()), float(r[-1].std()) / math.sqrt(200)
        exact = float(reg.exact_risk(c, 1.0, 2 * N_REG)[-1])
        assert abs(mean - exact) < 3 * se
        assert abs(mean - r_at(reg.dynamics(c, correction=False))) > 30 * se


def test_regression_diverges_beyond_c_2():
    reg = OnlineRegression(N_REG, S2)
    with pytest.raises(ValueError, match="no fixed point"):
        reg.limit_fixed_point(2.2)
    growth = 2.2**2 - 2 * 2.2
    assert r_at(reg.limit(2.2), t=5.0) > math.exp(growth * 5)
    assert float(reg.exact_risk(2.2, 1.0, 5 * N_REG)[-1]) > math.exp(growth * 5)
    sim = reg.simulate(2.2, 1.0, 5 * N_REG, num_runs=20, seed=2, record_every=N_REG)
    assert bool((sim[1:].mean(1) > sim[:-1].mean(1)).all())  # R keeps growing


def test_oja_fixed_points_and_no_recovery():
    oja = SpikedCovariance(400, 1.0)
    for c in (0.2, 1.0):
        star = oja.limit_fixed_point(c)
        assert star == pytest.approx((2 - c) / (2 + c))
        assert float(oja.limit(c).fixed_point([0.9])) ** 2 == pytest.approx(star, rel=1e-10)
        late = oja.limit(c).solve([0.5], [0.0, 60.0])[-1, 0]
        assert float(late) ** 2 == pytest.approx(star, abs=1e-6)  # ballistic recovery
    m = torch.linspace(0.01, 1.0, 50, dtype=F64).unsqueeze(-1)
    for c in (2.0, 2.5):
        assert oja.limit_fixed_point(c) == 0.0
        assert bool((oja.limit(c).drift(m) < 0).all())  # no recovery for c >= 2 lambda
    assert float(oja.limit(2.5).solve([0.5], [0.0, 30.0])[-1, 0]) < 1e-3
    # gradient flow drops the correction and wrongly predicts full recovery
    naive = oja.dynamics(2.5, correction=False).solve([0.5], [0.0, 30.0])[-1, 0]
    assert float(naive) == pytest.approx(1.0, abs=1e-4)


def test_oja_autograd_drift_converges_to_the_limit_like_one_over_n():
    m = torch.tensor([0.3], dtype=F64)
    for c in (1.0, 2.5):
        err = []
        for n in (400, 1600):
            oja = SpikedCovariance(n, 1.0)
            err.append(abs(float(oja.dynamics(c).drift(m) - oja.limit(c).drift(m))))
            torch.testing.assert_close(oja.dynamics(c).diffusion(m), oja.limit(c).diffusion(m))
        assert 3.5 < err[0] / err[1] < 4.5  # O(1/N)
        assert err[0] < 0.02


def test_oja_ornstein_uhlenbeck_fluctuations_and_unstable_origin():
    oja = SpikedCovariance(400, 1.0)
    c = 2.5  # d m = c (lambda - c/2) m dt + sqrt(2 c^2 / N) dW near 0: variance c / (N (c/2 - 1))
    cov = oja.limit(c).stationary_covariance([0.0])
    assert float(cov) == pytest.approx(c / (400 * (c / 2 - 1)), rel=1e-10)
    assert float(oja.limit(c).jacobian([0.0])) == pytest.approx(c * (1 - c / 2))
    with pytest.raises(ValueError, match="unstable"):
        oja.limit(1.0).stationary_covariance([0.0])
    with pytest.raises(ValueError, match="not a fixed point"):
        oja.limit(c).stationary_covariance([0.5])
    with pytest.raises(ValueError, match="diffusion=None"):
        oja.limit(c, fluctuations=False).sample([0.0], [0.0, 1.0], num_paths=2, dt=0.1)


def stationary_second_moment(dynamics, lo=-0.999, hi=0.999):
    """E m^2 of the zero-flux stationary density p ∝ exp(int 2 b / s) / s of a 1-D SDE."""
    m = np.linspace(lo, hi, 200_001)
    u = torch.as_tensor(m).unsqueeze(-1)
    b = dynamics.drift(u)[:, 0].numpy()
    s = dynamics.diffusion(u)[:, 0, 0].numpy()
    phi = cumulative_trapezoid(2 * b / s, m, initial=0)
    p = np.exp(phi - phi.max()) / s
    return float(np.trapezoid(m * m * p, m) / np.trapezoid(p, m))


@pytest.mark.slow
def test_oja_simulation_and_the_sde_near_the_fixed_points():
    """<m^2> at N = 400, lambda = 1: about 0.81, 0.33, 0.02 for c = 0.2, 1, 2.5 (issue 16)."""
    n = 400
    oja = SpikedCovariance(n, 1.0)
    for c, seed in ((0.2, 0), (1.0, 1), (2.5, 2)):
        m = oja.simulate(c, 0.9, 30 * n, num_runs=32, seed=seed, record_every=10)
        per_run = (m[len(m) // 3:] ** 2).mean(0)  # t in [10, 30]: past the transient
        mean, se = float(per_run.mean()), float(per_run.std()) / math.sqrt(32)
        if c < 2:
            assert abs(mean - oja.limit_fixed_point(c)) < 3 * se, (c, mean, se)
        else:  # no recovery: only the O(1/N) fluctuations around m = 0 remain
            assert mean < 0.03
            # the SDE with the limit coefficients (torchsde) against its own stationary law
            paths = oja.limit(c).sample([0.0], torch.linspace(0, 30, 61), num_paths=512,
                                        dt=0.05, seed=3)
            sde = (paths[20:, :, 0] ** 2).mean(0)
            sde_mean, sde_se = float(sde.mean()), float(sde.std()) / math.sqrt(512)
            exact = stationary_second_moment(oja.limit(c))
            assert abs(sde_mean - exact) < 3 * sde_se
            # finite-N gap of the diffusion approximation: 5% at N = 400 (0.0177 vs 0.0186)
            assert abs(mean - exact) < 0.1 * exact
            # the linearised (Ornstein-Uhlenbeck) limit overestimates it at this N
            assert float(oja.limit(c).stationary_covariance([0.0])) > 1.2 * mean


def test_effective_dynamics_validation():
    dyn = EffectiveDynamics(lambda u: -u)
    with pytest.raises(ValueError, match="increasing times"):
        dyn.solve([1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="needs a diffusion"):
        dyn.stationary_covariance([0.0])
    reg = OnlineRegression(10, 0.1)
    with pytest.raises(ValueError, match="step_scale must be"):
        reg.dynamics(0.0)
    with pytest.raises(ValueError, match=r"m0 must lie in \[-1, 1\]"):
        SpikedCovariance(10, 1.0).simulate(1.0, 1.5, 10, num_runs=2)
