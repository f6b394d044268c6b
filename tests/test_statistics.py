"""Chain statistics: calibrated between-chain standard errors, MSD, diffusion exponent."""

import math

import numpy as np
import pytest
import torch
from bayesdepth.inference import Chains, SGDProblem, momentum
from bayesdepth.inference.statistics import (
    as_draws,
    chain_covariance,
    diffusion_exponent,
    empirical_msd,
    relative_frobenius_error,
)

F64 = torch.float64


def test_chain_covariance_standard_error_is_calibrated():
    gen = torch.Generator().manual_seed(0)
    cov = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=F64)
    chol = torch.linalg.cholesky(cov)
    zs = []
    for _ in range(400):
        x = torch.randn(50, 200, 2, generator=gen, dtype=F64) @ chol.T
        emp, se = chain_covariance(x)
        zs.append(((emp - cov) / se)[[0, 0, 1], [0, 1, 1]])
    z = torch.stack(zs)  # (400 replicates, 3 entries); replicates are independent
    # a ratio of estimates: Student-like with 49 degrees of freedom and chi-square skew -> sd ~1.05
    assert torch.all((z.std(0) - 1).abs() < 0.2)
    assert torch.all(z.mean(0).abs() < 3 / math.sqrt(400))
    with pytest.raises(ValueError, match="chains, draws, d"):
        chain_covariance(torch.zeros(3))
    _, single = chain_covariance(torch.zeros(1, 5, 2, dtype=F64))
    assert bool(torch.isnan(single).all())


def test_relative_error_and_diffusion_exponent():
    a = torch.eye(2, dtype=F64)
    assert relative_frobenius_error(1.1 * a, a) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="shapes differ"):
        relative_frobenius_error(a, torch.eye(3, dtype=F64))
    lags = np.arange(1, 200)
    assert diffusion_exponent(lags, 3 * lags**0.4) == pytest.approx(0.4)
    assert diffusion_exponent(lags, lags**0.4 + (lags > 100) * 1e3, window=(1, 100)) == (
        pytest.approx(0.4))
    with pytest.raises(ValueError, match="at least two positive points"):
        diffusion_exponent([1, 2], [1.0, 2.0], window=(5, 10))


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
    per = torch.stack([empirical_msd(x[k:k + 1], [1, 5, 20]) for k in range(400)])
    problem = SGDProblem(torch.eye(1, dtype=F64) * a, torch.eye(1, dtype=F64) * c, lr=lr)
    pred = momentum.msd_curve(problem, [1, 5, 20])
    z = (per.mean(0) - pred) / (per.std(0) / math.sqrt(400))
    assert float(z.abs().max()) < 4
    with pytest.raises(ValueError, match=r"lag 600 must lie in \[0, 600\)"):
        empirical_msd(x, [600])


def test_draws_from_runner_chains_dicts_and_arrays():
    gen = torch.Generator().manual_seed(4)
    w = torch.randn(3, 50, 2, generator=gen, dtype=F64)
    b = torch.randn(3, 50, generator=gen, dtype=F64)
    chains = Chains(draws={"w": w, "b": b}, stats={})
    cov, _ = chain_covariance(chains)
    ref, _ = chain_covariance(torch.cat([w, b[..., None]], -1))
    torch.testing.assert_close(cov, ref)
    assert empirical_msd({"w": w}, [1]).shape == (1,)
    one = as_draws(w[0].numpy())  # (draws, d) is one chain
    assert one.shape == (1, 50, 2) and one.dtype == F64


def test_chain_mean_and_loglog_slope():
    from bayesdepth.inference.statistics import chain_mean, loglog_slope

    values = torch.tensor([[1.0, 3.0], [5.0, 7.0]], dtype=F64)
    mean, se = chain_mean(values)
    assert mean == pytest.approx(4.0) and se == pytest.approx(2.0)  # sd(2, 6) / sqrt(2)
    assert math.isnan(chain_mean(values[:1])[1])
    with pytest.raises(ValueError, match=r"\(chains, draws\)"):
        chain_mean(torch.ones(3))
    x = np.arange(1, 50)
    assert loglog_slope(x, 2.0 * x**-1.7) == pytest.approx(-1.7)
    with pytest.raises(ValueError, match="1-D of one length"):
        loglog_slope(x, x[:-1])
