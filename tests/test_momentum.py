"""Phase-space laws of SGD with momentum and weight decay (docs/theory.md §2), float64."""

import math

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from bayesdepth.inference import SGD, SGDProblem, langevin, momentum
from bayesdepth.inference.statistics import (
    chain_covariance,
    empirical_msd,
    relative_frobenius_error,
)
from quadratic import (
    batch_grad_fn,
    max_z,
    plane_problem,
    random_problem,
    rotation,
    run_chains,
)

F64 = torch.float64
ZERO = torch.zeros(2, dtype=F64)


def test_phase_space_covariance_matches_scipy():
    d = 5
    A, C = random_problem(d)
    lr, B, beta, lam = 0.3, 4, 0.8, 0.1
    a = A.numpy()
    at = a + lam * np.eye(d)
    eye = np.eye(d)
    mz = np.block([[eye - lr * at, -lr * beta * eye], [at, beta * eye]])
    gz = np.vstack([-lr * eye, eye])
    problem = SGDProblem(A, C, lr=lr, batch_size=B, momentum=beta, weight_decay=lam)
    np.testing.assert_allclose(
        momentum.phase_space_covariance(problem).numpy(),
        sl.solve_discrete_lyapunov(mz, gz @ C.numpy() @ gz.T / B), rtol=1e-9, atol=1e-12,
    )
    # beta = 0: the theta block is the plain discrete law
    plain = problem.replace(momentum=0.0)
    torch.testing.assert_close(momentum.phase_space_covariance(plain)[:d, :d],
                               langevin.stationary_covariance(plain), rtol=1e-10, atol=1e-14)


def test_commuting_momentum_formulas():
    a = torch.tensor([0.3, 1.0, 2.5], dtype=F64)
    c = torch.tensor([1.0, 0.5, 2.0], dtype=F64)
    eta, beta, B = 0.2, 0.7, 2
    problem = SGDProblem(torch.diag(a), torch.diag(c), lr=eta, batch_size=B, momentum=beta)
    s = langevin.stationary_covariance(problem)
    var = eta * c * (1 + beta) / (B * a * (1 - beta) * (2 * (1 + beta) - eta * a))
    torch.testing.assert_close(torch.diagonal(s), var, rtol=1e-10, atol=0)
    step = momentum.msd_curve(problem, [1])
    expect = (2 * eta**2 * c / (B * (1 - beta) * (2 * (1 + beta) - eta * a))).sum()
    assert float(step[0]) == pytest.approx(float(expect), rel=1e-10)


# torch.func.hessian (jacfwd) calls torch.jit.script internally in torch 2.13
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_modified_loss_is_exact_for_isotropic_noise_only():
    A, C, _ = plane_problem()
    A = rotation(0.3) @ A @ rotation(0.3).T
    eta, beta, lam, B, c = 0.3, 0.6, 0.1, 2, 0.7
    mod = momentum.modified_loss(lambda t: 0.5 * t @ A @ t, eta, momentum=beta, weight_decay=lam)
    hess = torch.func.hessian(mod)(torch.zeros(2, dtype=F64))
    iso = SGDProblem(A, c * torch.eye(2, dtype=F64), lr=eta, batch_size=B, momentum=beta,
                     weight_decay=lam)
    temp = momentum.isotropic_temperature(iso)
    assert temp == pytest.approx(eta * c / (2 * B * (1 - beta)))
    s = langevin.stationary_covariance(iso)
    torch.testing.assert_close(temp * torch.linalg.inv(hess), s, rtol=1e-10, atol=1e-14)
    aniso = iso.replace(noise_cov=C)
    with pytest.raises(ValueError, match="needs isotropic noise noise_cov = c I"):
        momentum.isotropic_temperature(aniso)
    temp_aniso = momentum.isotropic_temperature(
        iso.replace(noise_cov=float(torch.trace(C)) / 2 * torch.eye(2, dtype=F64)))
    s_aniso = langevin.stationary_covariance(aniso)
    assert relative_frobenius_error(temp_aniso * torch.linalg.inv(hess), s_aniso) > 0.05


def test_underdamped_continuum_approaches_discrete_law():
    A, C, _ = plane_problem()
    errs = []
    for lr in (0.08, 0.04, 0.02):
        problem = SGDProblem(A, C, lr=lr, momentum=0.5)
        p = momentum.underdamped_covariance(problem)
        errs.append(relative_frobenius_error(p[:2, :2], langevin.stationary_covariance(problem)))
    assert errs[0] > errs[1] > errs[2]
    assert errs[0] / errs[1] == pytest.approx(2, rel=0.15)


def test_momentum_weight_decay_torch_optim_sgd_and_shortcut_misses():
    A, C, b = plane_problem(a=(0.2, 2.0))
    lr, beta, lam, B, chains = 0.2, 0.9, 0.05, 1, 2000
    p = torch.nn.Parameter(torch.zeros(chains, 2, dtype=F64))
    opt = torch.optim.SGD([p], lr=lr, momentum=beta, weight_decay=lam)
    gen = torch.Generator().manual_seed(3)
    grad_fn = batch_grad_fn(A, b, B)
    draws = torch.empty(chains, 1500, 2, dtype=F64)
    for k in range(300 + 1500):
        p.grad = grad_fn(p.detach(), gen)[0]
        opt.step()
        if k >= 300:
            draws[:, k - 300] = p.detach()
    emp, se = chain_covariance(draws, mean=ZERO)
    problem = SGDProblem(A, C, lr=lr, batch_size=B, momentum=beta, weight_decay=lam)
    exact = langevin.stationary_covariance(problem)
    assert max_z(emp, se, exact) < 4
    # the overdamped "effective rate lr / (1 - beta)" shortcut
    shortcut = langevin.stationary_covariance(
        problem.replace(lr=lr / (1 - beta), momentum=0.0), discrete=False)
    assert relative_frobenius_error(shortcut, emp) > 0.12
    assert max_z(emp, se, shortcut) > 10
    # the SGD sampler is the same chain
    sampler = SGD(lr, momentum=beta, weight_decay=lam)
    draws2 = run_chains(sampler, grad_fn, burn=300, steps=800, seed=4)
    emp2, se2 = chain_covariance(draws2, mean=ZERO)
    assert max_z(emp2, se2, exact) < 4


def test_probability_current_and_msd_against_sgd():
    A, C, b = plane_problem()
    problem = SGDProblem(A, C, lr=0.4)
    draws = run_chains(SGD(problem.lr), batch_grad_fn(A, b, 1), steps=800)
    lag = torch.einsum("ktd,kte->kde", draws[:, 1:], draws[:, :-1]) / (draws.shape[1] - 1)
    cur = lag - lag.transpose(1, 2)
    pred = momentum.probability_current(problem)
    s = langevin.stationary_covariance(problem)
    torch.testing.assert_close(pred, -problem.lr * (A @ s - s @ A))
    z = (cur.mean(0)[0, 1] - pred[0, 1]) / (cur[:, 0, 1].std() / math.sqrt(cur.shape[0]))
    assert abs(float(z)) < 3 and abs(float(pred[0, 1])) > 0.05
    # commuting A and C: detailed balance, no current
    commuting = SGDProblem(A, torch.diag(torch.tensor([1.0, 2.0], dtype=F64)), lr=0.4,
                           momentum=0.3)
    torch.testing.assert_close(momentum.probability_current(commuting), torch.zeros(2, 2,
                               dtype=F64), atol=1e-14, rtol=0)
    lags = [1, 2, 5, 20]
    per_chain = torch.stack([empirical_msd(draws[k:k + 1], lags)
                             for k in range(0, draws.shape[0], 4)])
    pm = momentum.msd_curve(problem, lags)
    zz = (per_chain.mean(0) - pm) / (per_chain.std(0) / math.sqrt(per_chain.shape[0]))
    assert float(zz.abs().max()) < 4


def test_phase_space_laws_refuse_a_preconditioner_and_unstable_rates():
    A, C, _ = plane_problem()
    with_h = SGDProblem(A, C, lr=0.1, preconditioner=torch.ones(2, dtype=F64))
    for fn in (momentum.phase_space_covariance, momentum.underdamped_covariance,
               momentum.probability_current, momentum.msd_curve):
        with pytest.raises(ValueError, match=r"has no preconditioner"):
            fn(with_h)
    with pytest.raises(ValueError, match=r"lr \* lambda_max = 3.1 \* 2 = 6.2 >= 2 \(1 \+ momentum"):
        momentum.msd_curve(SGDProblem(A, C, lr=3.1, momentum=0.5))
    with pytest.raises(ValueError, match=r"lags must be integers >= 0"):
        momentum.msd_curve(SGDProblem(A, C, lr=0.1), [-1])
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\)"):
        momentum.modified_loss(lambda t: t.sum(), 0.1, momentum=1.0)
