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


def test_warm_start_with_a_frozen_adapted_preconditioner():
    """Adapt pSGLD's preconditioner in a first run, freeze it (adapt=False) and continue from
    that state with sample(state=...): each chain's variances follow its own frozen G_i,
    sigma_i^2 = 1 / (p_i (1 - eps g_i p_i / 4)), within 4 standard errors."""
    from bayesdepth.inference import Potential, sample

    class Gaussian(Potential):
        def __init__(self):
            self.shapes = {"theta": torch.Size([3])}

        def init(self, num_chains, generator):
            return {"theta": torch.randn(num_chains, 3, generator=generator, dtype=torch.float64)}

        def __call__(self, params, batch=None):
            return 0.5 * (PRECISION * params["theta"] ** 2).sum(-1), None

    eps, num_chains = 0.05, 2000
    adapted = sample(Gaussian(), PSGLD(eps), num_chains=num_chains, num_draws=1000, seed=0)
    frozen = PSGLD(eps, adapt=False)
    g = frozen.preconditioner(adapted.state)["theta"]
    chains = sample(Gaussian(), frozen, num_chains=num_chains, num_draws=1500, warmup=500,
                    seed=1, state=adapted.state)
    assert torch.equal(chains.state.square_avg["theta"], adapted.state.square_avg["theta"])
    exact = 1 / (PRECISION * (1 - eps * g * PRECISION / 4))
    second = (chains.draws["theta"] ** 2).mean(1)  # (chains, 3)
    ratio = second / exact  # mean 1 under each chain's own frozen G
    mean, se = ratio.mean(0), ratio.std(0) / num_chains**0.5
    assert (se < 0.02).all()
    assert ((mean - 1).abs() < 4 * se).all(), (mean, se)
    naive = second * PRECISION  # the law without the discretisation correction: mean 1 too?
    z = (naive.mean(0) - 1) / (naive.std(0) / num_chains**0.5)
    assert z[2] > 8, z  # no: the correction (4% for the stiffest coordinate) is resolved
