"""SGDProblem: validation at construction, the one minibatch-noise factor, linear regression."""

import math

import pytest
import torch
from bayesdepth.inference import SGDProblem
from bayesdepth.inference.problem import linear_regression_optimum, minibatch_noise_factor

from bayesdepth.data import linear_regression

F64 = torch.float64
A = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=F64)
C = torch.tensor([[2.0, -0.4], [-0.4, 0.3]], dtype=F64)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"hessian": torch.ones(2, 3, dtype=F64)}, ValueError, r"hessian must be a square"),
        ({"hessian": A + torch.tensor([[0, 0.1], [0, 0]], dtype=F64)}, ValueError,
         r"hessian must be symmetric: max \|M - M\^T\| = 0.1"),
        ({"noise_cov": torch.diag(torch.tensor([1.0, -1.0], dtype=F64))}, ValueError,
         r"noise_cov must be positive semi-definite: smallest eigenvalue -1"),
        ({"noise_cov": torch.eye(3, dtype=F64)}, ValueError, r"noise_cov must have shape \(2, 2\)"),
        ({"hessian": torch.eye(2, dtype=torch.long)}, TypeError, "hessian must have a floating"),
        ({"lr": 0.0}, ValueError, r"lr must be a finite number > 0, got 0.0"),
        ({"lr": "fast"}, TypeError, r"lr must be a real number, got 'fast'"),
        ({"batch_size": 0}, ValueError, r"batch_size must be an integer >= 1, got 0"),
        ({"batch_size": 2.5}, TypeError, r"batch_size must be an integer >= 1, got 2.5"),
        ({"momentum": 1.0}, ValueError, r"momentum must lie in \[0, 1\), got 1.0"),
        ({"momentum": -0.1}, ValueError, r"momentum must be a finite number >= 0, got -0.1"),
        ({"weight_decay": -1.0}, ValueError, r"weight_decay must be a finite number >= 0"),
        ({"num_data": 0}, ValueError, r"num_data must be an integer >= 1, got 0"),
        ({"replacement": False}, ValueError, r"replacement=False needs num_data"),
        ({"replacement": "no"}, TypeError, r"replacement must be True or False, got 'no'"),
        ({"replacement": False, "num_data": 8, "batch_size": 10}, ValueError,
         r"batch_size = 10 exceeds num_data = 8"),
        ({"preconditioner": torch.tensor([1.0, -2.0], dtype=F64)}, ValueError,
         r"diagonal preconditioner must have 2 positive entries, got shape \(2,\) with minimum -2"),
        ({"preconditioner": torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64)}, ValueError,
         r"preconditioner must be positive definite: smallest eigenvalue -1"),
        ({"preconditioner": torch.ones(2, dtype=F64), "momentum": 0.9}, ValueError,
         r"preconditioner is supported only without momentum \(momentum=0\), got momentum=0.9"),
    ],
)
def test_validation_names_argument_value_and_what_is_allowed(changes, error, match):
    args = {"hessian": A, "noise_cov": C, "lr": 0.1, **changes}
    with pytest.raises(error, match=match):
        SGDProblem(**args)


def test_fields_are_normalised_frozen_and_replace_revalidates():
    p = SGDProblem(A, C, lr=1, batch_size=4, momentum=0, num_data=20)
    assert isinstance(p.lr, float) and isinstance(p.momentum, float) and p.dim == 2
    with pytest.raises(AttributeError):
        p.lr = 0.2
    q = p.replace(lr=0.3)
    assert q.lr == 0.3 and p.lr == 1.0 and q.hessian is p.hessian
    with pytest.raises(ValueError, match="momentum must lie in"):
        p.replace(momentum=1.5)
    torch.testing.assert_close(
        SGDProblem(A, C, lr=0.1, weight_decay=0.2).regularised_hessian, A + 0.2 * torch.eye(2))
    assert SGDProblem(A, C, lr=0.1, momentum=0.5).relaxation_time == pytest.approx(
        0.5 / (0.1 * float(torch.linalg.eigvalsh(A)[0])))
    with pytest.raises(ValueError, match="smallest eigenvalue"):
        _ = SGDProblem(-A, C, lr=0.1).relaxation_time
    torch.testing.assert_close(
        SGDProblem(A, C, lr=0.1, preconditioner=torch.tensor([2.0, 3.0], dtype=F64))
        .preconditioner_matrix, torch.diag(torch.tensor([2.0, 3.0], dtype=F64)))


def test_noise_factor_values():
    assert minibatch_noise_factor(4) == 0.25
    assert minibatch_noise_factor(4, 10) == 0.25  # the data size alone means iid batches
    assert minibatch_noise_factor(4, 10, replacement=False) == pytest.approx(6 / (4 * 9))
    assert minibatch_noise_factor(10, 10, replacement=False) == 0.0  # the full batch
    assert minibatch_noise_factor(1, 10, replacement=False) == 1.0  # one point: no correction
    p = SGDProblem(A, C, lr=0.1, batch_size=4, num_data=10, replacement=False)
    assert p.noise_factor == pytest.approx(6 / 36)
    torch.testing.assert_close(p.minibatch_noise_cov, C * 6 / 36)
    with pytest.raises(ValueError, match=r"num_data must be >= 2"):
        minibatch_noise_factor(1, 1, replacement=False)


@pytest.mark.parametrize("replacement", [True, False])
def test_noise_factor_against_the_per_example_definition(replacement):
    """Cov of the mean of B per-example gradients (drawn as the problem says) = factor * C."""
    gen = torch.Generator().manual_seed(0)
    n, b, reps = 12, 5, 200_000
    g = torch.randn(n, 2, generator=gen, dtype=F64) @ torch.tensor([[1.0, 0.4], [0.0, 0.7]],
                                                                   dtype=F64)
    centred = g - g.mean(0)
    c = centred.T @ centred / n  # population normalisation
    if replacement:
        idx = torch.randint(n, (reps, b), generator=gen)
    else:
        idx = torch.rand(reps, n, generator=gen).argsort(-1)[:, :b]
    gb = g[idx].mean(1) - g.mean(0)
    prod = gb[:, :, None] * gb[:, None, :]
    emp, se = prod.mean(0), prod.std(0) / math.sqrt(reps)
    problem = SGDProblem(torch.eye(2, dtype=F64), c, lr=0.1, batch_size=b, num_data=n,
                         replacement=replacement)
    assert float(((emp - problem.minibatch_noise_cov) / se).abs().max()) < 4
    other = problem.replace(replacement=not replacement)
    assert float(((emp - other.minibatch_noise_cov) / se).abs().max()) > 10


def test_from_linear_regression_is_the_optimum_of_the_mean_loss():
    data = linear_regression(num_points=40, dim=3)
    n = 40
    p = SGDProblem.from_linear_regression(data, lr=0.05, batch_size=5, weight_decay=0.1)
    assert (p.num_data, p.batch_size, p.weight_decay) == (40, 5, 0.1)
    # A = posterior precision / N (the prior is folded into the mean loss)
    torch.testing.assert_close(p.hessian, torch.linalg.inv(data.posterior_cov) / n)
    opt = linear_regression_optimum(data, 0.1)
    # the optimum of L + lambda |w|^2 / 2: its gradient vanishes there
    s2, p2 = data.noise_scale**2, data.prior_scale**2
    grads = data.x * ((data.x @ opt.mean - data.y) / s2)[:, None] + opt.mean / (n * p2)
    torch.testing.assert_close(grads.mean(0) + 0.1 * opt.mean, torch.zeros(3, dtype=F64),
                               atol=1e-12, rtol=0)
    centred = grads - grads.mean(0)
    torch.testing.assert_close(p.noise_cov, centred.T @ centred / n)
    torch.testing.assert_close(linear_regression_optimum(data).mean, data.posterior_mean)
