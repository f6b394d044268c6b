"""Comparison helpers and figures (chains vs predictions)."""

import math

import numpy as np
import pytest
import torch
from bayesdepth.inference import compare, langevin, momentum

from bayesdepth.data import linear_regression

F64 = torch.float64


def test_chain_covariance_standard_error_is_calibrated():
    gen = torch.Generator().manual_seed(0)
    cov = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=F64)
    chol = torch.linalg.cholesky(cov)
    zs = []
    for _ in range(400):
        x = torch.randn(50, 200, 2, generator=gen, dtype=F64) @ chol.T
        emp, se = compare.chain_covariance(x)
        zs.append(((emp - cov) / se)[[0, 0, 1], [0, 1, 1]])
    z = torch.stack(zs)  # (400 replicates, 3 entries); replicates are independent
    # a ratio of estimates: Student-like with 49 degrees of freedom and chi-square skew -> sd ~1.05
    assert torch.all((z.std(0) - 1).abs() < 0.2)
    assert torch.all(z.mean(0).abs() < 3 / math.sqrt(400))
    with pytest.raises(ValueError, match="chains, draws, d"):
        compare.chain_covariance(torch.zeros(3))


def test_relative_error_and_diffusion_exponent():
    a = torch.eye(2, dtype=F64)
    assert compare.relative_frobenius_error(1.1 * a, a) == pytest.approx(0.1)
    lags = np.arange(1, 200)
    assert compare.diffusion_exponent(lags, 3 * lags**0.4) == pytest.approx(0.4)
    assert compare.diffusion_exponent(lags, lags**0.4 + (lags > 100) * 1e3, window=(1, 100)) == (
        pytest.approx(0.4))


def test_msd_exponent_of_power_law_spectrum_is_anomalous():
    d = 400
    a = torch.logspace(-4, 0, d, dtype=F64)  # power-law spectrum, C proportional to A
    lags = np.unique(np.logspace(0, 4, 30).astype(int))
    msd = momentum.msd_curve(torch.diag(a), torch.diag(a), 0.5, 1, lags.tolist())
    gamma = compare.diffusion_exponent(lags, msd, window=(10, 1000))
    assert 0.05 < gamma < 0.9  # sub-diffusive, not the ballistic 2 nor the Brownian 1
    flat = momentum.msd_curve(torch.eye(3, dtype=F64), torch.eye(3, dtype=F64), 0.01, 1, [1, 2, 4])
    assert compare.diffusion_exponent([1, 2, 4], flat) == pytest.approx(1.0, abs=0.02)


def test_empirical_msd_matches_closed_form_on_ar1():
    gen = torch.Generator().manual_seed(1)
    lr, a, c = 0.2, 1.0, 1.0
    x = torch.empty(400, 600, 1, dtype=F64)
    s = math.sqrt(lr * c / (a * (2 - lr * a)))
    state = s * torch.randn(400, 1, generator=gen, dtype=F64)
    for t in range(600):
        state = (1 - lr * a) * state + lr * math.sqrt(c) * torch.randn(400, 1, generator=gen,
                                                                        dtype=F64)
        x[:, t] = state
    per = torch.stack([compare.empirical_msd(x[k:k + 1], [1, 5, 20]) for k in range(400)])
    pred = momentum.msd_curve(torch.eye(1, dtype=F64) * a, torch.eye(1, dtype=F64) * c, lr, 1,
                              [1, 5, 20])
    z = (per.mean(0) - pred) / (per.std(0) / math.sqrt(400))
    assert float(z.abs().max()) < 4


@pytest.mark.parametrize(("beta", "wd"), [(0.0, 0.0), (0.5, 0.0), (0.5, 0.3)])
def test_sgd_vs_prediction_on_linear_regression(tmp_path, beta, wd):
    data = linear_regression()
    res = compare.sgd_vs_prediction(data, lr=0.05, batch_size=5, momentum=beta, num_chains=100,
                                    num_draws=1000, seed=0, out=tmp_path, weight_decay=wd)
    z = (res.empirical - res.predicted) / res.standard_error
    assert float(z.abs().max()) < 4
    # the chains' mean is the stationary mean (posterior mean shrunk by the weight decay)
    se_mean = res.draws.mean(1).std(0) / math.sqrt(res.draws.shape[0])
    assert float(((res.draws.mean((0, 1)) - res.mean) / se_mean).abs().max()) < 4
    if wd:
        assert float((res.mean - data.posterior_mean).abs().max()) > 0.05
        return
    torch.testing.assert_close(res.mean, data.posterior_mean)
    torch.testing.assert_close(res.posterior, data.posterior_cov)
    assert res.figure is not None and res.figure.stat().st_size > 5000
    # the additive-noise closed form misses: SGD noise on regression is multiplicative
    _, exact, additive, _ = compare.linear_regression_moments(
        data.x, data.y, data.prior_scale, data.noise_scale, 0.05, 5, beta)
    torch.testing.assert_close(exact, res.predicted)
    assert float(((res.empirical - additive) / res.standard_error).abs().max()) > 8


def test_linear_regression_moments_reduce_to_lyapunov_without_multiplicative_noise():
    # x_n = +-1 in 1-D: x_n x_n^T is constant, so K_n = 0 and the exact law is the additive one
    x = torch.tensor([[1.0], [-1.0], [1.0], [-1.0], [1.0]], dtype=F64)
    y = torch.tensor([0.3, -0.1, 0.5, 0.2, -0.4], dtype=F64)
    _, exact, additive, a = compare.linear_regression_moments(x, y, 1.0, 0.5, 0.1, 2)
    torch.testing.assert_close(exact, additive)
    assert float(a) == pytest.approx(1 / 0.25 + 1 / 5)
    x2 = torch.tensor([[1.0], [-2.0], [0.5], [-1.0], [1.5]], dtype=F64)
    _, exact2, additive2, _ = compare.linear_regression_moments(x2, y, 1.0, 0.5, 0.1, 2)
    assert float(exact2) > 1.01 * float(additive2)


def test_figures_are_written(tmp_path):
    lags = np.arange(1, 50)
    p1 = compare.plot_msd(lags, lags**0.5, tmp_path / "msd.png", predicted=lags**0.5)
    p2 = compare.plot_svag_gap([1, 2, 4, 8], [0.4, 0.2, 0.1, 0.05], tmp_path / "svag.png")
    p3 = compare.plot_noise_to_signal(np.arange(10), np.linspace(1, 0.1, 10), tmp_path / "gn.png")
    draws = torch.randn(4, 100, 3, dtype=F64)
    p4 = compare.plot_covariance_ellipses(draws, torch.eye(3, dtype=F64), tmp_path / "e.png",
                                          dims=(0, 2))
    for p in (p1, p2, p3, p4):
        assert p.exists() and p.stat().st_size > 5000


def test_linear_regression_sde_moments_solve_their_equation():
    data = linear_regression(num_points=30, dim=3)
    lr, b = 0.02, 2
    _, s, additive, a = compare.linear_regression_moments(
        data.x, data.y, data.prior_scale, data.noise_scale, lr, b, discrete=False)
    x, s2 = data.x, data.noise_scale**2
    k = torch.einsum("ni,nj->nij", x, x) / s2 - x.T @ x / (30 * s2)
    extra = torch.einsum("nij,jk,nkl->il", k, s, k) / 30
    lhs = a @ s + s @ a - lr / b * extra
    c = (a @ additive + additive @ a) * b / lr  # C_* recovered from the additive law
    torch.testing.assert_close(lhs, lr / b * c)
    # the scaling rule leaves the SDE law unchanged
    _, s4, _, _ = compare.linear_regression_moments(
        data.x, data.y, data.prior_scale, data.noise_scale, 4 * lr, 4 * b, discrete=False)
    torch.testing.assert_close(s4, s)
    assert float(torch.trace(s)) > float(torch.trace(additive))


def test_linear_regression_moments_refuse_mean_square_unstable_rates():
    data = linear_regression()
    a = torch.linalg.inv(data.posterior_cov) / data.x.shape[0]
    lr_max = 2 / float(torch.linalg.eigvalsh(a)[-1])
    with pytest.raises(ValueError, match="mean-square unstable"):
        # below the deterministic bound lr * lambda_max < 2, yet the second moment diverges
        compare.linear_regression_moments(data.x, data.y, data.prior_scale, data.noise_scale,
                                          0.9 * lr_max, 1)


def test_quadratic_vs_prediction_with_momentum_and_weight_decay(tmp_path):
    c, s = math.cos(0.5), math.sin(0.5)
    r = torch.tensor([[c, -s], [s, c]], dtype=F64)
    hessian = torch.diag(torch.tensor([0.3, 2.0], dtype=F64))
    noise_cov = r @ torch.diag(torch.tensor([2.0, 0.2], dtype=F64)) @ r.T
    res = compare.quadratic_vs_prediction(hessian, noise_cov, lr=0.2, batch_size=2, momentum=0.8,
                                          weight_decay=0.05, num_data=100, num_chains=400,
                                          num_draws=600, out=tmp_path)
    assert float(((res.empirical - res.predicted) / res.standard_error).abs().max()) < 4
    assert res.kl_to_laplace > 0 and res.figure.exists()
    shortcut = langevin.stationary_covariance(hessian, noise_cov, 0.2 / 0.2, 2, weight_decay=0.05,
                                              discrete=False)
    assert float(((res.empirical - shortcut) / res.standard_error).abs().max()) > 6


def test_draws_from_runner_chains_and_dicts():
    from bayesdepth.inference import Chains

    gen = torch.Generator().manual_seed(4)
    w = torch.randn(3, 50, 2, generator=gen, dtype=F64)
    b = torch.randn(3, 50, generator=gen, dtype=F64)
    chains = Chains(draws={"w": w, "b": b}, stats={})
    cov, _ = compare.chain_covariance(chains)
    ref, _ = compare.chain_covariance(torch.cat([w, b[..., None]], -1))
    torch.testing.assert_close(cov, ref)
    assert compare.empirical_msd({"w": w}, [1]).shape == (1,)
