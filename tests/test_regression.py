"""Exact stationary moments of SGD on Bayesian linear regression (docs/theory.md §1.6)."""

import pytest
import torch
from bayesdepth.inference import SGDProblem
from bayesdepth.inference.regression import linear_regression_moments

from bayesdepth.data import conjugate_linear_regression, linear_regression

F64 = torch.float64


def _moments(data, discrete=True, **settings):
    problem = SGDProblem.from_linear_regression(data, **settings)
    return problem, linear_regression_moments(data, problem, discrete=discrete)


def test_moments_reduce_to_lyapunov_without_multiplicative_noise():
    # x_n = +-1 in 1-D: x_n x_n^T is constant, so K_n = 0 and the exact law is the additive one
    x = torch.tensor([[1.0], [-1.0], [1.0], [-1.0], [1.0]], dtype=F64)
    y = torch.tensor([0.3, -0.1, 0.5, 0.2, -0.4], dtype=F64)
    problem, m = _moments(conjugate_linear_regression(x, y, 1.0, 0.5), lr=0.1, batch_size=2)
    torch.testing.assert_close(m.covariance, m.additive)
    assert float(problem.hessian) == pytest.approx(1 / 0.25 + 1 / 5)
    x2 = torch.tensor([[1.0], [-2.0], [0.5], [-1.0], [1.5]], dtype=F64)
    _, m2 = _moments(conjugate_linear_regression(x2, y, 1.0, 0.5), lr=0.1, batch_size=2)
    assert float(m2.covariance) > 1.01 * float(m2.additive)


def test_one_dimensional_closure_by_hand():
    # d = 1: S = (1 - lr a)^2 S + lr^2 f (c + k S), k = (1/N) sum_n K_n^2
    x = torch.tensor([[1.0], [-2.0], [0.5], [-1.0], [1.5]], dtype=F64)
    y = torch.tensor([0.3, -0.1, 0.5, 0.2, -0.4], dtype=F64)
    data = conjugate_linear_regression(x, y, 1.0, 0.5)
    lr, b = 0.05, 2
    problem, m = _moments(data, lr=lr, batch_size=b)
    a, c = float(problem.hessian), float(problem.noise_cov)
    kn = x[:, 0] ** 2 / 0.25 - (x[:, 0] ** 2).mean() / 0.25
    k = float((kn**2).mean())
    s = lr**2 * c / b / (1 - (1 - lr * a) ** 2 - lr**2 * k / b)
    assert float(m.covariance) == pytest.approx(s, rel=1e-12)
    # without replacement from N = 5 the factor (N - B) / (B (N - 1)) replaces 1 / B
    _, wor = _moments(data, lr=lr, batch_size=b, replacement=False)
    f = 3 / (2 * 4)
    assert float(wor.covariance) == pytest.approx(
        lr**2 * c * f / (1 - (1 - lr * a) ** 2 - lr**2 * k * f), rel=1e-12)


def test_sde_moments_solve_their_equation():
    data = linear_regression(num_points=30, dim=3)
    lr, b = 0.02, 2
    problem, m = _moments(data, discrete=False, lr=lr, batch_size=b)
    x, s2, s, a = data.x, data.noise_scale**2, m.covariance, problem.hessian
    k = torch.einsum("ni,nj->nij", x, x) / s2 - x.T @ x / (30 * s2)
    extra = torch.einsum("nij,jk,nkl->il", k, s, k) / 30
    lhs = a @ s + s @ a - lr / b * extra
    torch.testing.assert_close(lhs, lr / b * problem.noise_cov)
    # the scaling rule leaves the SDE law unchanged
    _, m4 = _moments(data, discrete=False, lr=4 * lr, batch_size=4 * b)
    torch.testing.assert_close(m4.covariance, s)
    assert float(torch.trace(s)) > float(torch.trace(m.additive))
    with pytest.raises(ValueError, match="momentum = 0 only"):
        _moments(data, discrete=False, lr=lr, batch_size=b, momentum=0.5)


def test_moments_refuse_mean_square_unstable_rates_and_foreign_problems():
    data = linear_regression()
    a = torch.linalg.inv(data.posterior_cov) / data.x.shape[0]
    lr_max = 2 / float(torch.linalg.eigvalsh(a)[-1])
    with pytest.raises(ValueError, match="mean-square unstable"):
        # below the deterministic bound lr * lambda_max < 2, yet the second moment diverges
        _moments(data, lr=0.9 * lr_max, batch_size=1)
    other = linear_regression(seed=1)
    problem = SGDProblem.from_linear_regression(other, lr=0.05, batch_size=5)
    with pytest.raises(ValueError, match="problem does not belong to data"):
        linear_regression_moments(data, problem)
