"""Closed forms of docs/theory.md §1 and §3 against scipy and simulated SGD chains (float64)."""

import math

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from bayesdepth.inference import SGD, SVAG, SGDProblem, langevin, momentum
from bayesdepth.inference.statistics import chain_covariance, relative_frobenius_error
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


# ------------------------------------------------------------------ deterministic checks
def test_closed_forms_match_scipy_lyapunov_solvers():
    d = 5
    A, C = random_problem(d)
    g = torch.Generator().manual_seed(2)
    lr, B = 0.3, 4
    problem = SGDProblem(A, C, lr=lr, batch_size=B)
    M = np.eye(d) - lr * A.numpy()
    ref = sl.solve_discrete_lyapunov(M, lr**2 * C.numpy() / B)
    np.testing.assert_allclose(langevin.stationary_covariance(problem).numpy(), ref,
                               rtol=1e-10, atol=1e-12)
    cont = sl.solve_continuous_lyapunov(A.numpy(), lr * C.numpy() / B)
    np.testing.assert_allclose(
        langevin.stationary_covariance(problem, discrete=False).numpy(), cont, rtol=1e-10
    )
    h = torch.rand(d, generator=g, dtype=F64) + 0.5
    mh = np.eye(d) - lr * np.diag(h.numpy()) @ A.numpy()
    hch = np.diag(h.numpy()) @ C.numpy() @ np.diag(h.numpy())
    np.testing.assert_allclose(
        langevin.stationary_covariance(problem.replace(preconditioner=h)).numpy(),
        sl.solve_discrete_lyapunov(mh, lr**2 * hch / B), rtol=1e-10, atol=1e-12,
    )
    # weight decay replaces A by A + lambda I
    lam = 0.2
    np.testing.assert_allclose(
        langevin.stationary_covariance(problem.replace(weight_decay=lam)).numpy(),
        sl.solve_discrete_lyapunov(M - lr * lam * np.eye(d), lr**2 * C.numpy() / B),
        rtol=1e-10, atol=1e-12,
    )
    # SVAG: A S + S A - (eta/l) A S A = (eta/B) C
    s = langevin.svag_covariance(problem, l=4.0).numpy()
    a = A.numpy()
    np.testing.assert_allclose(a @ s + s @ a - lr / 4 * a @ s @ a, lr * C.numpy() / B, atol=1e-12)
    # 1-D: s^2 = eps c / (B a (2 - eps a))
    s1 = langevin.stationary_covariance(SGDProblem(torch.tensor([[1.7]], dtype=F64),
                                                   torch.tensor([[0.8]], dtype=F64), 0.4, 3))
    assert float(s1) == pytest.approx(0.4 * 0.8 / (3 * 1.7 * (2 - 0.4 * 1.7)), rel=1e-12)


def test_mandt_optimal_lr_kl_shape_and_preconditioner():
    A, C, _ = plane_problem()
    N, B, D = 1000, 4, 2
    problem = SGDProblem(A, C, lr=0.01, batch_size=B, num_data=N)
    eps = langevin.mandt_optimal_lr(problem)
    assert eps == pytest.approx(2 * B * D / (N * float(torch.trace(C))))

    def kl(e):
        s = langevin.stationary_covariance(problem.replace(lr=e), discrete=False)
        return langevin.kl_to_laplace(s, problem)

    base = kl(eps)
    for f in (0.25, 0.5, 2.0, 3.0):
        assert kl(f * eps) - base == pytest.approx(D / 2 * (f - 1 - math.log(f)), rel=1e-9)
    grid = eps * torch.logspace(-1, 1, 41, dtype=F64)
    best = grid[int(torch.tensor([kl(float(e)) for e in grid]).argmin())]
    assert float(best) == pytest.approx(eps, rel=0.06)
    h = langevin.mandt_preconditioner(problem)
    s = langevin.stationary_covariance(problem.replace(preconditioner=h), discrete=False)
    torch.testing.assert_close(s, torch.linalg.inv(N * A), rtol=1e-10, atol=1e-14)
    assert langevin.kl_to_laplace(s, problem) == pytest.approx(0.0, abs=1e-10)
    hd = langevin.mandt_preconditioner(problem, diagonal=True)
    torch.testing.assert_close(hd, 2 * B / (0.01 * N * torch.diagonal(C)))
    # without replacement the factor (N - B) / (B (N - 1)) replaces 1 / B
    wor = problem.replace(replacement=False)
    assert langevin.mandt_optimal_lr(wor) == pytest.approx(eps * (N - 1) / (N - B))


def test_noise_to_signal_identity_closed_form():
    A, C, _ = plane_problem()
    for lr in (0.05, 0.3, 0.7):
        problem = SGDProblem(A, C, lr=lr, batch_size=3)
        ratio = langevin.expected_loss_ratio(problem)
        assert ratio == pytest.approx(1 + langevin.noise_to_signal_ratio(problem), rel=1e-12)
    wd = SGDProblem(A, C, lr=0.3, batch_size=3, weight_decay=0.4)  # holds with A + lambda I
    assert langevin.expected_loss_ratio(wd) == pytest.approx(
        1 + langevin.noise_to_signal_ratio(wd), rel=1e-12)
    assert langevin.noise_to_signal_ratio(SGDProblem(A, C, lr=0.6, batch_size=3)) > (
        2 * langevin.noise_to_signal_ratio(SGDProblem(A, C, lr=0.3, batch_size=3)))


def test_svag_gap_shrinks_like_one_over_l():
    A, C, _ = plane_problem()
    problem = SGDProblem(A, C, lr=0.4)
    sde = langevin.stationary_covariance(problem, discrete=False)
    gaps = [relative_frobenius_error(langevin.svag_covariance(problem, l), sde)
            for l in (1, 2, 4, 8, 16, 32)]
    ratios = np.array(gaps[:-1]) / np.array(gaps[1:])
    assert np.all(np.abs(ratios[1:] - 2) < 0.15) and abs(ratios[-1] - 2) < 0.02, ratios
    assert np.all(np.diff(ratios) < 0)  # l * gap converges: O(1/l)
    assert gaps[0] == pytest.approx(
        relative_frobenius_error(langevin.stationary_covariance(problem), sde))


def test_bad_inputs_name_the_condition_and_numbers():
    A, C, _ = plane_problem()
    with pytest.raises(ValueError, match=r"lr \* lambda_max = 1.1 \* 2 = 2.2 >= 2 "):
        langevin.stationary_covariance(SGDProblem(A, C, lr=1.1))
    with pytest.raises(ValueError, match=r"2 \(1 \+ momentum\) = 3"):
        langevin.stationary_covariance(SGDProblem(A, C, lr=1.6, momentum=0.5))
    negative = SGDProblem(torch.diag(torch.tensor([1.0, -0.5], dtype=F64)), C, lr=0.1)
    with pytest.raises(ValueError, match=r"positive semi-definite .*, smallest eigenvalue -0.5"):
        langevin.stationary_covariance(negative)
    with pytest.raises(ValueError, match=r"lr / l \* lambda_max"):
        langevin.svag_covariance(SGDProblem(A, C, lr=8.0), l=2.0)
    with pytest.raises(ValueError, match=r"l must be >= 1, got 0.5"):
        langevin.svag_covariance(SGDProblem(A, C, lr=0.1), l=0.5)
    with pytest.raises(ValueError, match=r"without momentum; got a problem with momentum=0.5"):
        langevin.svag_covariance(SGDProblem(A, C, lr=0.1, momentum=0.5), l=2.0)
    with pytest.raises(ValueError, match=r"averaged_covariance .* momentum=0.5"):
        langevin.averaged_covariance(SGDProblem(A, C, lr=0.1, momentum=0.5))
    with pytest.raises(ValueError, match="kl_to_laplace needs the data size"):
        langevin.kl_to_laplace(C, SGDProblem(A, C, lr=0.1))
    with pytest.raises(ValueError, match="mandt_optimal_lr needs the data size"):
        langevin.mandt_optimal_lr(SGDProblem(A, C, lr=0.1))


# ------------------------------------------------------------------ simulation
def test_discrete_law_matches_sgd_and_continuous_misses():
    A, C, b = plane_problem()
    problem = SGDProblem(A, C, lr=0.4, batch_size=2)
    draws = run_chains(SGD(problem.lr), batch_grad_fn(A, b, problem.batch_size))
    emp, se = chain_covariance(draws, mean=ZERO)
    assert max_z(emp, se, langevin.stationary_covariance(problem)) < 4
    continuous = langevin.stationary_covariance(problem, discrete=False)
    assert max_z(emp, se, continuous) > 10
    # G/N identity: E_SGD[L] = (1 + G/N) E_SDE[L]
    loss = 0.5 * torch.einsum("ktd,de,kte->kt", draws, A, draws).mean(1)
    e_sde = 0.5 * float(torch.trace(A @ continuous))
    ratio = 1 + langevin.noise_to_signal_ratio(problem)
    assert abs(float(loss.mean()) - ratio * e_sde) < 3 * float(loss.std()) / math.sqrt(len(loss))


def test_without_replacement_factor():
    A, C, b = plane_problem(num_data=6)
    lr, B, n = 0.4, 3, 6

    def grad_fn(params, generator):
        idx = torch.rand(params.shape[0], n, generator=generator).argsort(-1)[:, :B]
        return params @ A - b[idx].mean(1), params.sum(-1)

    emp, se = chain_covariance(run_chains(SGD(lr), grad_fn), mean=ZERO)
    problem = SGDProblem(A, C, lr=lr, batch_size=B, num_data=n, replacement=False)
    assert max_z(emp, se, langevin.stationary_covariance(problem)) < 4
    assert max_z(emp, se, langevin.stationary_covariance(problem.replace(replacement=True))) > 10


def test_preconditioned_sgd_matches():
    A, C, b = plane_problem()
    A = rotation(0.4) @ A @ rotation(0.4).T
    h = torch.tensor([1.5, 0.4], dtype=F64)
    problem = SGDProblem(A, C, lr=0.5, batch_size=2, preconditioner=h)
    draws = run_chains(SGD(problem.lr), batch_grad_fn(A, b, 2, precond=torch.diag(h)))
    emp, se = chain_covariance(draws, mean=ZERO)
    assert max_z(emp, se, langevin.stationary_covariance(problem)) < 4
    assert max_z(emp, se, langevin.stationary_covariance(problem.replace(preconditioner=None))) > 10


def test_iterate_averaging_covariance():
    A, C, b = plane_problem()
    B, T = 2, 400
    limit = langevin.averaged_covariance(SGDProblem(A, C, lr=0.2, batch_size=B))
    torch.testing.assert_close(limit, torch.linalg.inv(A) @ C @ torch.linalg.inv(A) / B)
    for lr in (0.2, 0.6):
        problem = SGDProblem(A, C, lr=lr, batch_size=B)
        draws = run_chains(SGD(lr), batch_grad_fn(A, b, B), chains=4000, burn=200, steps=T,
                           seed=7)
        avg = draws.mean(1)
        prod = T * avg[:, :, None] * avg[:, None, :]
        emp, se = prod.mean(0), prod.std(0) / math.sqrt(avg.shape[0])
        exact = langevin.averaged_covariance(problem, num_steps=T)
        assert max_z(emp, se, exact) < 4
        assert relative_frobenius_error(exact, limit) < 0.05
    # the limit does not depend on a preconditioner
    h = torch.tensor([3.0, 0.2], dtype=F64)
    with_h = langevin.averaged_covariance(SGDProblem(A, C, lr=0.2, batch_size=B, preconditioner=h))
    torch.testing.assert_close(with_h, limit)


def test_svag_amplifies_noise_and_matches_closed_form():
    A, C, b = plane_problem()
    problem, l = SGDProblem(A, C, lr=0.4), 4.0
    grad_fn = batch_grad_fn(A, b, 1)
    # one step from theta = 0: the increment's covariance is (lr/l)^2 * l * C / B
    sampler = SVAG(problem.lr, l=l)
    state = sampler.init(torch.zeros(20000, 2, dtype=F64))
    new, _ = sampler.step(state, grad_fn, torch.Generator().manual_seed(5))
    emp, se = chain_covariance(new.params[:, None, :].reshape(200, 100, 2), mean=ZERO)
    assert max_z(emp, se, (problem.lr / l) ** 2 * l * C) < 4
    draws = run_chains(SVAG(problem.lr, l=l), grad_fn, burn=600, steps=1200, chains=1000)
    emp, se = chain_covariance(draws, mean=ZERO)
    assert max_z(emp, se, langevin.svag_covariance(problem, l)) < 4
    assert max_z(emp, se, langevin.stationary_covariance(problem)) > 6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_closed_forms_follow_the_problems_device():
    A, C, _ = plane_problem()
    for fn in (
        lambda p: langevin.stationary_covariance(p),
        lambda p: langevin.stationary_covariance(p.replace(momentum=0.9)),
        lambda p: momentum.msd_curve(p.replace(momentum=0.5), [1, 10]),
        lambda p: langevin.svag_covariance(p, 4.0),
        lambda p: langevin.averaged_covariance(p, num_steps=10),
    ):
        cpu = SGDProblem(A, C, lr=0.3, batch_size=2)
        gpu = fn(SGDProblem(A.cuda(), C.cuda(), lr=0.3, batch_size=2))
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), fn(cpu))
