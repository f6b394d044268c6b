"""pSGLD: frozen-preconditioner stationary variances, the RMSprop update (docs/theory.md §5.4)."""

import pytest
import torch
from bayesdepth.inference import PSGLD

PRECISION = torch.tensor([1.0, 4.0, 10.0], dtype=torch.float64)


def grad_fn(theta, generator):
    return PRECISION * theta, 0.5 * (PRECISION * theta**2).sum(-1)


def test_frozen_preconditioner_stationary_variance():
    eps, temperature = 0.2, 1.0
    g_diag = torch.tensor([2.0, 0.5, 0.3], dtype=torch.float64)  # eps g p / 4 = 0.1, 0.1, 0.15
    sampler = PSGLD(eps, temperature=temperature, adapt=False)
    num_chains = 4000
    state = sampler.init(torch.zeros(num_chains, 3, dtype=torch.float64))
    root_v = 1 / g_diag - sampler.eps
    state = state.replace(square_avg=(root_v**2).expand(num_chains, 3).clone())
    torch.testing.assert_close(sampler.preconditioner(state)[0], g_diag)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        state, _ = sampler.step(state, grad_fn, gen)
    acc = torch.zeros(num_chains, 3, dtype=torch.float64)
    for _ in range(600):
        state, _ = sampler.step(state, grad_fn, gen)
        acc += state.params**2
    acc /= 600
    var, se = acc.mean(0), acc.std(0) / num_chains**0.5
    exact = temperature / (PRECISION * (1 - eps * g_diag * PRECISION / 4))
    assert (se / exact).max() < 0.01
    assert ((var - exact).abs() / exact).max() < 0.03
    assert ((exact - 1 / PRECISION) * PRECISION).min() > 0.1  # the discrete correction is resolved


def test_rmsprop_preconditioner_update():
    sampler = PSGLD(0.01, alpha=0.9, eps=1e-3, temperature=0.0)
    theta = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    state = sampler.init(theta)
    state, _ = sampler.step(state, grad_fn, None)
    grad = PRECISION * theta
    v = 0.1 * grad**2
    torch.testing.assert_close(state.square_avg, v)
    precond = 1 / (1e-3 + v.sqrt())
    torch.testing.assert_close(state.params, theta - 0.005 * precond * grad)


def test_psgld_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        PSGLD(0.1, alpha=1.0)
    with pytest.raises(ValueError, match="eps"):
        PSGLD(0.1, eps=0.0)
    with pytest.raises(ValueError, match="lr"):
        PSGLD(0.0)
