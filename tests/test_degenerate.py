"""Degenerate minima (docs/theory.md §13.1): the law on the range of H, free diffusion off it.

H = diag(2, 1, 0) with full-rank noise: every stationary-law function returns the Lyapunov law of
the range block (against scipy on the reduced system) and SGD chains diffuse along e_3 at the
predicted rate.
"""

import math
import warnings

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from bayesdepth.inference import SGD, SGDProblem, degenerate, langevin, momentum, sample
from bayesdepth.inference.problem import DegenerateMinimumWarning
from bayesdepth.inference.sgd_potentials import QuadraticPotential
from bayesdepth.inference.statistics import chain_covariance
from quadratic import rotation

F64 = torch.float64
KEEP = [0, 1]  # the range of diag(2, 1, 0)


@pytest.fixture
def problem():
    a = torch.diag(torch.tensor([2.0, 1.0, 0.0], dtype=F64))
    r = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.5, 0.4, 0.9]], dtype=F64)
    c = r @ r.T  # full rank, couples the null direction to the range
    return SGDProblem(a, c, lr=0.3, batch_size=2)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateMinimumWarning)
        return fn(*args, **kwargs)


def _range_block(s):
    s = s.numpy()
    assert np.abs(s[2]).max() == 0 and np.abs(s[:, 2]).max() == 0  # null rows are dropped
    return s[np.ix_(KEEP, KEEP)]


def test_plain_laws_are_the_lyapunov_laws_of_the_range_block(problem):
    a, c = problem.hessian.numpy()[:2, :2], problem.noise_cov.numpy()[:2, :2]
    eta, phi = problem.lr, problem.noise_factor
    with pytest.warns(DegenerateMinimumWarning, match=r"1-dimensional null space.* 0\.0\d+"):
        s = langevin.stationary_covariance(problem)
    m = np.eye(2) - eta * a
    np.testing.assert_allclose(_range_block(s), sl.solve_discrete_lyapunov(m, eta**2 * phi * c),
                               rtol=1e-12)
    cont = _quiet(langevin.stationary_covariance, problem, discrete=False)
    np.testing.assert_allclose(_range_block(cont), sl.solve_continuous_lyapunov(a, eta * phi * c),
                               rtol=1e-12)
    svag = _range_block(_quiet(langevin.svag_covariance, problem, 4.0))
    np.testing.assert_allclose(a @ svag + svag @ a - eta / 4 * a @ svag @ a, eta * phi * c,
                               atol=1e-13)
    avg = _range_block(_quiet(langevin.averaged_covariance, problem))
    np.testing.assert_allclose(avg, np.linalg.inv(a) @ (phi * c) @ np.linalg.inv(a), rtol=1e-12)
    # a preconditioner H: in x = H^{-1/2} theta the range block of T A T is the reduced problem
    h = np.array([1.0, 2.0, 0.5])
    sp = _quiet(langevin.stationary_covariance, problem.replace(preconditioner=torch.tensor(h)))
    hk = np.diag(h[:2])
    ref = sl.solve_discrete_lyapunov(np.eye(2) - eta * hk @ a, eta**2 * phi * hk @ c @ hk)
    np.testing.assert_allclose(_range_block(sp), ref, rtol=1e-12)


def test_phase_space_laws_keep_the_whole_momentum_buffer(problem):
    eta, beta, phi = problem.lr, 0.8, problem.noise_factor
    pm = problem.replace(momentum=beta)
    a, c, eye = problem.hessian.numpy(), problem.noise_cov.numpy(), np.eye(3)
    mz = np.block([[eye - eta * a, -eta * beta * eye], [a, beta * eye]])
    g = np.vstack([-eta * eye, eye])
    keep = [0, 1, 3, 4, 5]  # (theta_1, theta_2, v_1, v_2, v_3): a closed stable subsystem
    q = g @ (phi * c) @ g.T
    ref = sl.solve_discrete_lyapunov(mz[np.ix_(keep, keep)], q[np.ix_(keep, keep)])
    p = _quiet(momentum.phase_space_covariance, pm).numpy()
    np.testing.assert_allclose(p[np.ix_(keep, keep)], ref, rtol=1e-10, atol=1e-14)
    assert np.abs(p[2]).max() == 0
    s = _quiet(langevin.stationary_covariance, pm).numpy()
    np.testing.assert_allclose(s, p[:3, :3])
    # Kunin's continuous model in (theta, theta'): same subsystem in continuous time
    mass, gamma = eta * (1 + beta) / 2, 1 - beta
    f = np.block([[np.zeros((3, 3)), eye], [-a / mass, -gamma / mass * eye]])
    qc = np.zeros((6, 6))
    qc[3:, 3:] = eta * phi * c / mass**2
    ref_c = sl.solve_continuous_lyapunov(f[np.ix_(keep, keep)], -qc[np.ix_(keep, keep)])
    pc = _quiet(momentum.underdamped_covariance, pm).numpy()
    np.testing.assert_allclose(pc[np.ix_(keep, keep)], ref_c, rtol=1e-10, atol=1e-14)


def test_null_space_and_rate_follow_the_hessian(problem):
    eta, phi = problem.lr, problem.noise_factor
    out = degenerate.null_space_diffusion(problem)
    assert out.basis.shape == (3, 1) and abs(float(out.basis[2, 0])) == 1.0
    expected = torch.zeros(3, 3, dtype=F64)
    expected[2, 2] = eta**2 * phi * problem.noise_cov[2, 2]
    torch.testing.assert_close(out.rate, expected)
    with_momentum = degenerate.null_space_diffusion(problem.replace(momentum=0.5))
    torch.testing.assert_close(with_momentum.rate, expected / 0.25)
    # a rotated Hessian: the null direction is R e_3 and the rate projects C onto it
    r = torch.eye(3, dtype=F64)
    r[1:, 1:] = rotation(0.7)
    rotated = problem.replace(hessian=r @ problem.hessian @ r.T)
    out = degenerate.null_space_diffusion(rotated)
    u = r[:, 2:]
    torch.testing.assert_close(out.basis @ out.basis.T, u @ u.T)
    torch.testing.assert_close(out.rate, eta**2 * phi * u @ u.T @ problem.noise_cov @ u @ u.T)
    # weight decay lifts the degeneracy; a negative eigenvalue is not a minimum
    lifted = degenerate.null_space_diffusion(problem.replace(weight_decay=0.1))
    assert lifted.basis.shape == (3, 0) and float(lifted.rate.abs().max()) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateMinimumWarning)
        langevin.stationary_covariance(problem.replace(weight_decay=0.1))
    saddle = problem.replace(hessian=torch.diag(torch.tensor([2.0, 1.0, -0.1], dtype=F64)))
    with pytest.raises(ValueError, match=r"positive semi-definite .*smallest eigenvalue -0\.1"):
        langevin.stationary_covariance(saddle)


def test_sgd_chains_relax_on_the_range_and_diffuse_on_the_null_space(problem):
    # Cov(theta_k)[2, 2] = k eta^2 phi C_33 exactly from theta_0 = 0; the range block relaxes in
    # about 1 / (eta a_min) = 3.3 steps to the law returned by stationary_covariance
    chains, steps = 2000, 400
    run = sample(QuadraticPotential(problem), SGD(problem.lr), num_chains=chains,
                 num_draws=steps, seed=0)
    theta = run.draws["theta"]  # (chains, steps, 3), step k + 1 at index k
    rate = float(degenerate.null_space_diffusion(problem).rate[2, 2])
    for k in (50, 100, 200, 400):
        var = float(theta[:, k - 1, 2].var())
        se = rate * k * math.sqrt(2 / (chains - 1))
        assert abs(var - rate * k) < 3 * se, (k, var, rate * k, se)
    cov, se = chain_covariance(theta[:, 100:, :2], mean=torch.zeros(2, dtype=F64))
    exact = torch.as_tensor(_range_block(_quiet(langevin.stationary_covariance, problem)))
    assert float(((cov - exact) / se).abs().max()) < 3.5
    # the full covariance has no stationary limit: the last null variance is 4x the one at 100
    assert float(theta[:, -1, 2].var()) > 3 * float(theta[:, 99, 2].var())


def test_momentum_null_variance_and_msd(problem):
    # v_k = beta v_{k-1} + xi_k, theta_k = theta_{k-1} - eta v_k: from rest
    # Var theta_k = eta^2 phi c / (1 - beta)^2 sum_{r=1}^{k} (1 - beta^r)^2
    beta, chains, k = 0.5, 2000, 200
    pm = problem.replace(momentum=beta)
    run = sample(QuadraticPotential(pm), SGD(pm.lr, momentum=beta), num_chains=chains,
                 num_draws=k, seed=1)
    theta = run.draws["theta"]
    rate = float(degenerate.null_space_diffusion(pm).rate[2, 2])
    exact = rate * sum((1 - beta**r) ** 2 for r in range(1, k + 1))
    var = float(theta[:, -1, 2].var())
    assert abs(var - exact) < 3 * exact * math.sqrt(2 / (chains - 1))
    assert var > 3 * (1 - beta) ** 2 * rate * k  # momentum multiplies the rate by 1/(1-beta)^2
    # the MSD of theta includes the walk: its slope at large lags is tr D
    msd = _quiet(momentum.msd_curve, pm, [1000, 2000]).numpy()
    assert (msd[1] - msd[0]) / 1000 == pytest.approx(rate, rel=1e-9)
    lags = [1, 5, 20]
    emp = ((theta[:, 100 + np.array(lags)] - theta[:, 100:101]) ** 2).sum(-1).mean(0)
    assert np.allclose(emp.numpy(), _quiet(momentum.msd_curve, pm, lags).numpy(), rtol=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_new_theory_follows_the_device(problem):
    from bayesdepth.inference import Adam, heavy_tails, label_noise
    from bayesdepth.inference.sgd_potentials import LeastSquaresPotential

    cuda = problem.replace(hessian=problem.hessian.cuda(), noise_cov=problem.noise_cov.cuda())
    s = _quiet(langevin.stationary_covariance, cuda.replace(momentum=0.5))
    assert s.is_cuda and torch.allclose(s.cpu(), _quiet(langevin.stationary_covariance,
                                                         problem.replace(momentum=0.5)))
    assert degenerate.null_space_diffusion(cuda).rate.is_cuda
    adam = Adam(0.1)
    state, _ = adam.step(adam.init(torch.ones(3, 2, device="cuda", dtype=F64)),
                         lambda p, g: (p * 2, p.sum(-1)), None)
    assert state.params.is_cuda and state.exp_avg_sq.is_cuda
    one = torch.ones(1, dtype=F64)
    potential = LeastSquaresPotential(lambda t, x: t[0] * t[1] * x, one, one, label_noise=1.0)
    start = torch.tensor([3.0, 1 / 3], dtype=F64, device="cuda")
    path = label_noise.limiting_flow(potential, start, torch.tensor([0.0, 0.5], dtype=F64))
    assert path.is_cuda
    out = heavy_tails.simulate_levy_sde(lambda x: -x, torch.zeros(10, 2, dtype=F64,
                                                                   device="cuda"), 2.0, 0.5,
                                        0.01, 5, inside=lambda x: (x.abs() < 1).all(-1),
                                        generator=torch.Generator("cuda").manual_seed(0))
    assert out.exit_time.is_cuda
