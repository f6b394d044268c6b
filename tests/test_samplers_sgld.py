"""SGLD against the closed forms of docs/theory.md §5.2 (conjugate Bayesian linear regression)."""

import pytest
import torch
from bayesdepth.inference import SGLD, CyclicalCosine

from bayesdepth.data import linear_regression

N, B = 50, 10


@pytest.fixture(scope="module")
def problem():
    d = linear_regression(num_points=N, dim=3, seed=0)
    precision = torch.linalg.inv(d.posterior_cov)
    return d, precision


def _grad_fn(d, batch_size=None):
    x, y, s0, s = d.x, d.y, d.prior_scale, d.noise_scale

    def grad_fn(theta, generator):
        if batch_size is None:
            xb, yb, scale = x.expand(theta.shape[0], N, 3), y.expand(theta.shape[0], N), 1.0
        else:
            idx = torch.randint(N, (theta.shape[0], batch_size), generator=generator)
            xb, yb, scale = x[idx], y[idx], N / batch_size
        r = (xb @ theta.unsqueeze(-1)).squeeze(-1) - yb
        grad = theta / s0**2 + scale * (xb * r.unsqueeze(-1)).sum(1) / s**2
        pot = 0.5 * (theta**2).sum(-1) / s0**2 + 0.5 * scale * (r**2).sum(-1) / s**2
        return grad, pot

    return grad_fn


def _moments(sampler, grad_fn, mean, num_chains, burn, steps, seed=0):
    """Per-chain time averages of z = theta - mean and z z^T; returns means and standard errors."""
    g = torch.Generator().manual_seed(seed)
    state = sampler.init(mean.expand(num_chains, -1).clone())
    for _ in range(burn):
        state, _ = sampler.step(state, grad_fn, g)
    dim = mean.shape[0]
    m = torch.zeros(num_chains, dim, dtype=mean.dtype)
    s = torch.zeros(num_chains, dim, dim, dtype=mean.dtype)
    for _ in range(steps):
        state, _ = sampler.step(state, grad_fn, g)
        z = state.params - mean
        m += z
        s += z.unsqueeze(-1) * z.unsqueeze(-2)
    m, s = m / steps, s / steps
    k = num_chains**0.5
    return m.mean(0), m.std(0) / k, s.mean(0), s.std(0) / k


def _rel(a, b):
    return (torch.linalg.norm(a - b) / torch.linalg.norm(b)).item()


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_full_batch_sgld_matches_discrete_stationary_law(problem, temperature):
    d, precision = problem
    lam = torch.linalg.eigvalsh(precision)
    eps = 0.8 / lam[-1].item()  # eps * p_max / 4 = 0.2: the discrete correction is 25%
    relax = int(2 / (eps * lam[0].item())) + 1
    mean, se_mean, cov, se_cov = _moments(
        SGLD(eps, temperature=temperature),
        _grad_fn(d),
        d.posterior_mean,
        2000,
        10 * relax,
        60 * relax,
    )
    eye = torch.eye(3, dtype=torch.float64)
    exact = temperature * d.posterior_cov @ torch.linalg.inv(eye - eps * precision / 4)
    assert (mean / se_mean).abs().max() < 4
    assert (se_cov.diagonal() / exact.diagonal()).max() < 0.01  # the check below is resolved
    assert _rel(cov, exact) < 0.03
    assert _rel(temperature * d.posterior_cov, exact) > 0.1  # the discrete form is what is tested


@pytest.mark.slow
def test_minibatch_sgld_mean_exact_and_step_extrapolation(problem):
    d, precision = problem
    lam_min = torch.linalg.eigvalsh(precision)[0].item()
    grad_fn = _grad_fn(d, batch_size=B)
    covs, ses = [], []
    for eps in (1e-3, 5e-4):
        relax = int(2 / (eps * lam_min)) + 1
        mean, se_mean, cov, se_cov = _moments(
            SGLD(eps), grad_fn, d.posterior_mean, 2000, 10 * relax, 60 * relax, seed=1
        )
        assert (mean / se_mean).abs().max() < 4
        covs.append(cov)
        ses.append(se_cov)
    extrapolated = 2 * covs[1] - covs[0]
    se = (4 * ses[1] ** 2 + ses[0] ** 2).sqrt()
    assert (se.diagonal() / d.posterior_cov.diagonal()).max() < 0.015
    assert _rel(extrapolated, d.posterior_cov) < 0.05
    assert _rel(covs[0], d.posterior_cov) > 0.15  # minibatch noise is visible before extrapolating


def test_sgld_update_equation_and_dict_params():
    torch.manual_seed(0)
    params = {"a": torch.randn(4, 2, dtype=torch.float64), "b": torch.randn(4, dtype=torch.float64)}

    def grad_fn(p, gen):
        return {"a": 2 * p["a"], "b": p["b"]}, (p["a"] ** 2).sum(-1) + 0.5 * p["b"] ** 2

    sampler = SGLD(0.1, temperature=0.3)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    state, info = sampler.step(sampler.init(params), grad_fn, g1)
    z = torch.randn(4, 3, generator=g2, dtype=torch.float64)  # one draw, chain by chain
    za, zb = z[:, :2], z[:, 2]
    scale = (0.1 * 0.3) ** 0.5
    torch.testing.assert_close(state.params["a"], params["a"] - 0.05 * 2 * params["a"] + scale * za)
    torch.testing.assert_close(state.params["b"], params["b"] - 0.05 * params["b"] + scale * zb)
    assert state.step == 1 and info["lr"] == 0.1 and info["temperature"] == 0.3
    assert info["grad_norm"].shape == (4,)


def test_sgld_exploration_phase_has_no_noise():
    schedule = CyclicalCosine(0.1, num_steps=100, num_cycles=2, explore_fraction=0.5)
    sampler = SGLD(schedule)
    theta = torch.ones(3, 2, dtype=torch.float64)

    def grad_fn(p, gen):
        return p, 0.5 * (p**2).sum(-1)

    state = sampler.init(theta)
    out = [sampler.step(state, grad_fn, torch.Generator().manual_seed(s))[0] for s in (0, 1)]
    torch.testing.assert_close(out[0].params, out[1].params)  # step 0 explores: deterministic
    late = state.replace(step=40)  # sampling phase: noise differs with the generator
    out = [sampler.step(late, grad_fn, torch.Generator().manual_seed(s))[0] for s in (0, 1)]
    assert not torch.allclose(out[0].params, out[1].params)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"lr": 0.0}, "lr"), ({"lr": -1.0}, "lr"), ({"lr": 0.1, "temperature": -1.0}, "temperature")],
)
def test_sgld_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SGLD(**kwargs)


def test_bad_params_shapes():
    sampler = SGLD(0.1)
    with pytest.raises(ValueError, match="chain"):
        sampler.init(torch.tensor(1.0))
    with pytest.raises(ValueError, match="chains"):
        sampler.init({"a": torch.zeros(3, 2), "b": torch.zeros(4)})
    with pytest.raises(TypeError, match="floating"):
        sampler.init(torch.zeros(3, 2, dtype=torch.long))
