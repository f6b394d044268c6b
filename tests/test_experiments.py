"""SGD chains from the runner against the exact laws: linear regression and the quadratic."""

import math

import pytest
import torch
from bayesdepth.inference import (
    SGDProblem,
    langevin,
    quadratic_vs_prediction,
    sgd_vs_prediction,
)
from bayesdepth.inference.regression import linear_regression_moments
from quadratic import rotation

from bayesdepth.data import linear_regression

F64 = torch.float64


@pytest.mark.parametrize(("beta", "wd"), [(0.0, 0.0), (0.5, 0.0), (0.5, 0.3)])
def test_sgd_vs_prediction_on_linear_regression(tmp_path, beta, wd):
    data = linear_regression()
    res = sgd_vs_prediction(data, lr=0.05, batch_size=5, momentum=beta, num_chains=100,
                            num_draws=1000, seed=0, out=tmp_path, weight_decay=wd)
    z = (res.empirical - res.predicted) / res.standard_error
    assert float(z.abs().max()) < 4
    # the chains' mean is the stationary mean (posterior mean shrunk by the weight decay)
    se_mean = res.draws.mean(1).std(0) / math.sqrt(res.draws.shape[0])
    assert float(((res.draws.mean((0, 1)) - res.mean) / se_mean).abs().max()) < 4
    assert res.draws.shape == (100, 1000, 5)
    if wd:
        assert float((res.mean - data.posterior_mean).abs().max()) > 0.05
        return
    torch.testing.assert_close(res.mean, data.posterior_mean)
    torch.testing.assert_close(res.posterior, data.posterior_cov)
    assert res.figure is not None and res.figure.stat().st_size > 5000
    # the additive-noise closed form misses: SGD noise on regression is multiplicative
    problem = SGDProblem.from_linear_regression(data, lr=0.05, batch_size=5, momentum=beta)
    moments = linear_regression_moments(data, problem)
    torch.testing.assert_close(moments.covariance, res.predicted)
    assert float(((res.empirical - moments.additive) / res.standard_error).abs().max()) > 8


def test_quadratic_vs_prediction_with_momentum_and_weight_decay(tmp_path):
    r = rotation(0.5)
    hessian = torch.diag(torch.tensor([0.3, 2.0], dtype=F64))
    noise_cov = r @ torch.diag(torch.tensor([2.0, 0.2], dtype=F64)) @ r.T
    problem = SGDProblem(hessian, noise_cov, lr=0.2, batch_size=2, momentum=0.8,
                         weight_decay=0.05, num_data=100)
    res = quadratic_vs_prediction(problem, num_chains=400, num_draws=600, out=tmp_path)
    assert float(((res.empirical - res.predicted) / res.standard_error).abs().max()) < 4
    assert res.kl_to_laplace > 0 and res.figure.exists()
    torch.testing.assert_close(res.posterior, torch.linalg.inv(100 * hessian))
    shortcut = langevin.stationary_covariance(
        problem.replace(lr=0.2 / 0.2, momentum=0.0), discrete=False)
    assert float(((res.empirical - shortcut) / res.standard_error).abs().max()) > 6


def test_quadratic_vs_prediction_without_replacement_and_bad_input():
    hessian = torch.diag(torch.tensor([0.5, 1.5], dtype=F64))
    noise_cov = torch.tensor([[1.0, 0.4], [0.4, 0.6]], dtype=F64)
    problem = SGDProblem(hessian, noise_cov, lr=0.3, batch_size=4, num_data=6,
                         replacement=False)
    res = quadratic_vs_prediction(problem, num_chains=200, num_draws=400, seed=1)
    assert res.posterior is not None
    assert float(((res.empirical - res.predicted) / res.standard_error).abs().max()) < 4
    iid = langevin.stationary_covariance(problem.replace(replacement=True))
    assert float(((res.empirical - iid) / res.standard_error).abs().max()) > 10
    with pytest.raises(ValueError, match="no preconditioner"):
        quadratic_vs_prediction(problem.replace(preconditioner=torch.ones(2, dtype=F64)))
    with pytest.raises(TypeError, match="SGDProblem"):
        quadratic_vs_prediction(hessian)
    with pytest.raises(ValueError, match="num_chains"):
        sgd_vs_prediction(num_chains=0)
