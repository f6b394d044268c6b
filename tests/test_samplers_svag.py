"""SVAG on problem Q: the exact discrete law and the approach to the SDE (docs/theory.md §3)."""

import math

import pytest
import scipy.linalg
import torch
from bayesdepth.inference import SGD, SVAG
from quadratic import batch_grad_fn, quadratic_problem, stationary_cov


def _svag_exact(a, c, eta, batch, l):
    m = torch.eye(3, dtype=torch.float64) - (eta / l) * a
    q = (eta**2 / l) * c / batch  # (eta / l)^2 * l C / B
    return torch.as_tensor(scipy.linalg.solve_discrete_lyapunov(m.numpy(), q.numpy()))


def _rel(x, y):
    return (torch.linalg.norm(x - y) / torch.linalg.norm(y)).item()


@pytest.mark.parametrize("l", [1.0, 4.0])
def test_svag_matches_discrete_lyapunov(l):
    a, b, c = quadratic_problem()
    eta, batch = 1.0, 4
    exact = _svag_exact(a, c, eta, batch, l)
    relax = int(l / (eta * torch.linalg.eigvalsh(a)[0].item())) + 1
    cov, se = stationary_cov(
        SVAG(eta, l=l), batch_grad_fn(a, b, batch), 3, 3000, 10 * relax, 60 * relax
    )
    assert (se.diagonal() / exact.diagonal()).max() < 0.01
    assert _rel(cov, exact) < 0.03
    sde = torch.as_tensor(
        scipy.linalg.solve_continuous_lyapunov(a.numpy(), (eta * c / batch).numpy())
    )
    if l == 1.0:
        assert _rel(sde, exact) > 0.1


def test_svag_gap_to_sde_halves_per_doubling():
    a, _, c = quadratic_problem()
    sde = scipy.linalg.solve_continuous_lyapunov(a.numpy(), (c / 4).numpy())
    gaps = [_rel(_svag_exact(a, c, 1.0, 4, l), torch.as_tensor(sde)) for l in (8, 16, 32)]
    assert 1.8 < gaps[0] / gaps[1] < 2.2 and 1.8 < gaps[1] / gaps[2] < 2.2


def test_svag_update_and_l1_is_sgd():
    torch.manual_seed(0)
    theta = torch.randn(6, 3, dtype=torch.float64)
    draws = []

    def grad_fn(p, gen):
        g = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        draws.append(g)
        return p + g, p.sum(-1)

    l = 3.0
    state, info = SVAG(0.2, l=l).step(SVAG(0.2, l=l).init(theta), grad_fn, torch.Generator())
    r = math.sqrt(2 * l - 1)
    expected = theta - (0.2 / l) * (
        (1 + r) / 2 * (theta + draws[0]) + (1 - r) / 2 * (theta + draws[1])
    )
    torch.testing.assert_close(state.params, expected)
    torch.testing.assert_close(info["grad_noise"], (draws[0] - draws[1]).pow(2).sum(-1) / 2)
    g = torch.Generator().manual_seed(3)
    svag1, _ = SVAG(0.2, l=1).step(SVAG(0.2, l=1).init(theta), grad_fn, g)
    g = torch.Generator().manual_seed(3)
    sgd, _ = SGD(0.2).step(SGD(0.2).init(theta), grad_fn, g)
    torch.testing.assert_close(svag1.params, sgd.params)


def test_svag_amplifies_covariance_not_mean():
    a, b, c = quadratic_problem()
    theta = torch.full((40000, 3), 0.3, dtype=torch.float64)
    l = 5.0
    sampler = SVAG(1.0, l=l)
    state, _ = sampler.step(
        sampler.init(theta), batch_grad_fn(a, b, 4), torch.Generator().manual_seed(0)
    )
    step = (theta - state.params) * l  # = effective gradient
    mean_err = step.mean(0) - theta[0] @ a
    se = step.std(0) / step.shape[0] ** 0.5
    assert (mean_err.abs() / se).max() < 4
    var = step.var(0)
    expected = l * c.diagonal() / 4
    assert ((var - expected).abs() / expected).max() < 3 * (2 / step.shape[0]) ** 0.5 + 0.01


def test_svag_bad_l():
    with pytest.raises(ValueError, match="l must be >= 1"):
        SVAG(0.1, l=0.5)
    with pytest.raises(ValueError, match="lr"):
        SVAG(-0.1, l=2)
