"""Closed forms of THEORY sections 1-3 against scipy and against simulated SGD chains (float64)."""

import math

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from bayesdepth.inference import compare, langevin, momentum
from bayesdepth.inference.samplers import SGD, SVAG

F64 = torch.float64


def rot(t):
    c, s = math.cos(t), math.sin(t)
    return torch.tensor([[c, -s], [s, c]], dtype=F64)


def q_problem(num_data=8, seed=0, a=(0.5, 2.0), c=(3.0, 0.3), angle=0.6):
    """Quadratic test problem Q: grad l_n = A theta - b_n, sum b_n = 0, population cov of b = C."""
    A = torch.diag(torch.tensor(a, dtype=F64))
    R = rot(angle)
    C = R @ torch.diag(torch.tensor(c, dtype=F64)) @ R.T
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(num_data, 2, generator=g, dtype=F64)
    z = z - z.mean(0)
    cov = z.T @ z / num_data
    z = z @ torch.linalg.inv(torch.linalg.cholesky(cov)).T  # population cov exactly I
    b = z @ torch.linalg.cholesky(C).T
    return A, C, b


def make_grad_fn(A, b, batch_size, precond=None):
    n = b.shape[0]

    def grad_fn(params, generator):
        idx = torch.randint(n, (params.shape[0], batch_size), generator=generator)
        g = params @ A - b[idx].mean(1)
        if precond is not None:
            g = g @ precond
        return g, 0.5 * ((params @ A) * params).sum(-1)

    return grad_fn


def run(sampler, grad_fn, chains=2000, burn=300, steps=1000, seed=0, d=2):
    gen = torch.Generator().manual_seed(seed)
    state = sampler.init(torch.zeros(chains, d, dtype=F64))
    draws = torch.empty(chains, steps, d, dtype=F64)
    for k in range(burn + steps):
        state, _ = sampler.step(state, grad_fn, gen)
        if k >= burn:
            draws[:, k - burn] = state.params
    return draws


def max_z(emp, se, ref):
    return float(((emp - ref) / se).abs().max())


# ------------------------------------------------------------------ deterministic checks
def test_closed_forms_match_scipy_lyapunov_solvers():
    g = torch.Generator().manual_seed(1)
    d = 5
    q = torch.randn(d, d, generator=g, dtype=F64)
    A = q @ q.T / d + 0.3 * torch.eye(d, dtype=F64)
    r = torch.randn(d, d, generator=g, dtype=F64)
    C = r @ r.T
    lr, B = 0.3, 4
    M = np.eye(d) - lr * A.numpy()
    ref = sl.solve_discrete_lyapunov(M, lr**2 * C.numpy() / B)
    np.testing.assert_allclose(langevin.stationary_covariance(A, C, lr, B).numpy(), ref,
                               rtol=1e-10, atol=1e-12)
    cont = sl.solve_continuous_lyapunov(A.numpy(), lr * C.numpy() / B)
    np.testing.assert_allclose(
        langevin.stationary_covariance(A, C, lr, B, discrete=False).numpy(), cont, rtol=1e-10
    )
    h = torch.rand(d, generator=g, dtype=F64) + 0.5
    mh = np.eye(d) - lr * np.diag(h.numpy()) @ A.numpy()
    hch = np.diag(h.numpy()) @ C.numpy() @ np.diag(h.numpy())
    np.testing.assert_allclose(
        langevin.stationary_covariance(A, C, lr, B, preconditioner=h).numpy(),
        sl.solve_discrete_lyapunov(mh, lr**2 * hch / B), rtol=1e-10, atol=1e-12,
    )
    # SVAG: A S + S A - (eta/l) A S A = (eta/B) C
    s = langevin.svag_covariance(A, C, lr, B, l=4.0).numpy()
    a = A.numpy()
    np.testing.assert_allclose(a @ s + s @ a - lr / 4 * a @ s @ a, lr * C.numpy() / B, atol=1e-12)
    # 1-D: s^2 = eps c / (B a (2 - eps a))
    s1 = langevin.stationary_covariance(torch.tensor([[1.7]], dtype=F64),
                                        torch.tensor([[0.8]], dtype=F64), 0.4, 3)
    assert float(s1) == pytest.approx(0.4 * 0.8 / (3 * 1.7 * (2 - 0.4 * 1.7)), rel=1e-12)
    # phase space against scipy on the 2d block system
    beta, lam = 0.8, 0.1
    at = a + lam * np.eye(d)
    eye = np.eye(d)
    mz = np.block([[eye - lr * at, -lr * beta * eye], [at, beta * eye]])
    gz = np.vstack([-lr * eye, eye])
    np.testing.assert_allclose(
        momentum.phase_space_covariance(A, C, lr, B, momentum=beta, weight_decay=lam).numpy(),
        sl.solve_discrete_lyapunov(mz, gz @ C.numpy() @ gz.T / B), rtol=1e-9, atol=1e-12,
    )


def test_commuting_momentum_formulas():
    a = torch.tensor([0.3, 1.0, 2.5], dtype=F64)
    c = torch.tensor([1.0, 0.5, 2.0], dtype=F64)
    eta, beta, B = 0.2, 0.7, 2
    s = langevin.stationary_covariance(torch.diag(a), torch.diag(c), eta, B, momentum=beta)
    var = eta * c * (1 + beta) / (B * a * (1 - beta) * (2 * (1 + beta) - eta * a))
    torch.testing.assert_close(torch.diagonal(s), var, rtol=1e-10, atol=0)
    step = momentum.msd_curve(torch.diag(a), torch.diag(c), eta, B, [1], momentum=beta)
    expect = (2 * eta**2 * c / (B * (1 - beta) * (2 * (1 + beta) - eta * a))).sum()
    assert float(step[0]) == pytest.approx(float(expect), rel=1e-10)


def test_mandt_optimal_lr_kl_shape_and_preconditioner():
    A, C, _ = q_problem()
    N, B, D = 1000, 4, 2
    eps = langevin.mandt_optimal_lr(C, N, B)
    assert eps == pytest.approx(2 * B * D / (N * float(torch.trace(C))))

    def kl(e):
        s = langevin.stationary_covariance(A, C, e, B, discrete=False)
        return langevin.kl_to_laplace(s, A, N)

    base = kl(eps)
    for f in (0.25, 0.5, 2.0, 3.0):
        assert kl(f * eps) - base == pytest.approx(D / 2 * (f - 1 - math.log(f)), rel=1e-9)
    grid = eps * torch.logspace(-1, 1, 41, dtype=F64)
    best = grid[int(torch.tensor([kl(float(e)) for e in grid]).argmin())]
    assert float(best) == pytest.approx(eps, rel=0.06)
    h = langevin.mandt_preconditioner(C, 0.01, N, B)
    s = langevin.stationary_covariance(A, C, 0.01, B, preconditioner=h, discrete=False)
    torch.testing.assert_close(s, torch.linalg.inv(N * A), rtol=1e-10, atol=1e-14)
    assert langevin.kl_to_laplace(s, A, N) == pytest.approx(0.0, abs=1e-10)
    hd = langevin.mandt_preconditioner(C, 0.01, N, B, diagonal=True)
    torch.testing.assert_close(hd, 2 * B / (0.01 * N * torch.diagonal(C)))


def test_noise_to_signal_identity_closed_form():
    A, C, _ = q_problem()
    for lr in (0.05, 0.3, 0.7):
        ratio = langevin.expected_loss_ratio(A, C, lr, 3)
        assert ratio == pytest.approx(1 + langevin.noise_to_signal_ratio(A, C, lr, 3), rel=1e-12)
    assert langevin.noise_to_signal_ratio(A, C, 0.6, 3) > 2 * langevin.noise_to_signal_ratio(
        A, C, 0.3, 3)


def test_svag_gap_shrinks_like_one_over_l():
    A, C, _ = q_problem()
    sde = langevin.stationary_covariance(A, C, 0.4, 1, discrete=False)
    gaps = [compare.relative_frobenius_error(langevin.svag_covariance(A, C, 0.4, 1, l), sde)
            for l in (1, 2, 4, 8, 16, 32)]
    ratios = np.array(gaps[:-1]) / np.array(gaps[1:])
    assert np.all(np.abs(ratios[1:] - 2) < 0.15) and abs(ratios[-1] - 2) < 0.02, ratios
    assert np.all(np.diff(ratios) < 0)  # l * gap converges: O(1/l)
    assert gaps[0] == pytest.approx(
        compare.relative_frobenius_error(langevin.stationary_covariance(A, C, 0.4, 1), sde))


# torch.func.hessian (jacfwd) calls torch.jit.script internally in torch 2.13
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_modified_loss_is_exact_for_isotropic_noise_only():
    A, C, _ = q_problem()
    A = rot(0.3) @ A @ rot(0.3).T
    eta, beta, lam, B, c = 0.3, 0.6, 0.1, 2, 0.7
    mod = momentum.modified_loss(lambda t: 0.5 * t @ A @ t, eta, momentum=beta, weight_decay=lam)
    hess = torch.func.hessian(mod)(torch.zeros(2, dtype=F64))
    temp = momentum.isotropic_temperature(c, eta, B, beta)
    s = langevin.stationary_covariance(A, c * torch.eye(2, dtype=F64), eta, B, momentum=beta,
                                       weight_decay=lam)
    torch.testing.assert_close(temp * torch.linalg.inv(hess), s, rtol=1e-10, atol=1e-14)
    s_aniso = langevin.stationary_covariance(A, C, eta, B, momentum=beta, weight_decay=lam)
    temp_aniso = momentum.isotropic_temperature(float(torch.trace(C)) / 2, eta, B, beta)
    assert compare.relative_frobenius_error(temp_aniso * torch.linalg.inv(hess), s_aniso) > 0.05


def test_underdamped_continuum_approaches_discrete_law():
    A, C, _ = q_problem()
    errs = []
    for lr in (0.08, 0.04, 0.02):
        p = momentum.underdamped_covariance(A, C, lr, 1, momentum=0.5)
        s = langevin.stationary_covariance(A, C, lr, 1, momentum=0.5)
        errs.append(compare.relative_frobenius_error(p[:2, :2], s))
    assert errs[0] > errs[1] > errs[2]
    assert errs[0] / errs[1] == pytest.approx(2, rel=0.15)


# ------------------------------------------------------------------ bad input
def test_bad_inputs_name_the_condition_and_numbers():
    A, C, _ = q_problem()
    with pytest.raises(ValueError, match=r"lr \* lambda_max = 1.1 \* 2 = 2.2 >= 2"):
        langevin.stationary_covariance(A, C, 1.1, 1)
    with pytest.raises(ValueError, match=r"2 \(1 \+ momentum\) = 3"):
        langevin.stationary_covariance(A, C, 1.6, 1, momentum=0.5)
    with pytest.raises(ValueError, match="symmetric: max"):
        langevin.stationary_covariance(A, C + torch.tensor([[0, 0.1], [0, 0]], dtype=F64), 0.1)
    with pytest.raises(ValueError, match=r"positive semi-definite: smallest eigenvalue -1"):
        langevin.stationary_covariance(A, torch.diag(torch.tensor([1.0, -1.0], dtype=F64)), 0.1)
    with pytest.raises(ValueError, match=r"positive definite, smallest eigenvalue -0.5"):
        langevin.stationary_covariance(torch.diag(torch.tensor([1.0, -0.5], dtype=F64)), C, 0.1)
    with pytest.raises(ValueError, match=r"lr / l \* lambda_max"):
        langevin.svag_covariance(A, C, 8.0, 1, l=2.0)
    with pytest.raises(ValueError, match="square"):
        langevin.stationary_covariance(torch.ones(2, 3, dtype=F64), C, 0.1)
    with pytest.raises(ValueError, match="preconditioner"):
        langevin.stationary_covariance(A, C, 0.1, momentum=0.5, preconditioner=torch.ones(2))
    with pytest.raises(ValueError, match="exceeds num_data"):
        langevin.stationary_covariance(A, C, 0.1, 10, num_data=8)


# ------------------------------------------------------------------ simulation
def test_discrete_law_matches_sgd_and_continuous_misses():
    A, C, b = q_problem()
    lr, B = 0.4, 2
    draws = run(SGD(lr), make_grad_fn(A, b, B))
    emp, se = compare.chain_covariance(draws, mean=torch.zeros(2, dtype=F64))
    assert max_z(emp, se, langevin.stationary_covariance(A, C, lr, B)) < 4
    assert max_z(emp, se, langevin.stationary_covariance(A, C, lr, B, discrete=False)) > 10
    # G/N identity: E_SGD[L] = (1 + G/N) E_SDE[L]
    loss = 0.5 * torch.einsum("ktd,de,kte->kt", draws, A, draws).mean(1)
    e_sde = 0.5 * float(torch.trace(A @ langevin.stationary_covariance(A, C, lr, B,
                                                                        discrete=False)))
    ratio = 1 + langevin.noise_to_signal_ratio(A, C, lr, B)
    assert abs(float(loss.mean()) - ratio * e_sde) < 3 * float(loss.std()) / math.sqrt(len(loss))


def test_without_replacement_factor():
    A, C, b = q_problem(num_data=6)
    lr, B, n = 0.4, 3, 6

    def grad_fn(params, generator):
        idx = torch.rand(params.shape[0], n, generator=generator).argsort(-1)[:, :B]
        return params @ A - b[idx].mean(1), params.sum(-1)

    emp, se = compare.chain_covariance(run(SGD(lr), grad_fn), mean=torch.zeros(2, dtype=F64))
    assert max_z(emp, se, langevin.stationary_covariance(A, C, lr, B, num_data=n)) < 4
    assert max_z(emp, se, langevin.stationary_covariance(A, C, lr, B)) > 10


def test_preconditioned_sgd_matches():
    A, C, b = q_problem()
    A = rot(0.4) @ A @ rot(0.4).T
    h = torch.tensor([1.5, 0.4], dtype=F64)
    lr, B = 0.5, 2
    draws = run(SGD(lr), make_grad_fn(A, b, B, precond=torch.diag(h)))
    emp, se = compare.chain_covariance(draws, mean=torch.zeros(2, dtype=F64))
    assert max_z(emp, se, langevin.stationary_covariance(A, C, lr, B, preconditioner=h)) < 4
    assert max_z(emp, se, langevin.stationary_covariance(A, C, lr, B)) > 10


def test_momentum_weight_decay_torch_optim_sgd_and_shortcut_misses():
    A, C, b = q_problem(a=(0.2, 2.0))
    lr, beta, lam, B, chains = 0.2, 0.9, 0.05, 1, 2000
    p = torch.nn.Parameter(torch.zeros(chains, 2, dtype=F64))
    opt = torch.optim.SGD([p], lr=lr, momentum=beta, weight_decay=lam)
    gen = torch.Generator().manual_seed(3)
    grad_fn = make_grad_fn(A, b, B)
    draws = torch.empty(chains, 1500, 2, dtype=F64)
    for k in range(300 + 1500):
        p.grad = grad_fn(p.detach(), gen)[0]
        opt.step()
        if k >= 300:
            draws[:, k - 300] = p.detach()
    emp, se = compare.chain_covariance(draws, mean=torch.zeros(2, dtype=F64))
    exact = langevin.stationary_covariance(A, C, lr, B, momentum=beta, weight_decay=lam)
    assert max_z(emp, se, exact) < 4
    shortcut = langevin.stationary_covariance(A, C, lr / (1 - beta), B, weight_decay=lam,
                                              discrete=False)
    assert compare.relative_frobenius_error(shortcut, emp) > 0.12
    assert max_z(emp, se, shortcut) > 10
    # the issue-5 sampler is the same chain
    draws2 = run(SGD(lr, momentum=beta, weight_decay=lam), grad_fn, burn=300, steps=800, seed=4)
    emp2, se2 = compare.chain_covariance(draws2, mean=torch.zeros(2, dtype=F64))
    assert max_z(emp2, se2, exact) < 4


def test_probability_current_and_msd_against_sgd():
    A, C, b = q_problem()
    lr, B = 0.4, 1
    draws = run(SGD(lr), make_grad_fn(A, b, B), steps=800)
    lag = torch.einsum("ktd,kte->kde", draws[:, 1:], draws[:, :-1]) / (draws.shape[1] - 1)
    cur = lag - lag.transpose(1, 2)
    pred = momentum.probability_current(A, C, lr, B)
    torch.testing.assert_close(pred, -lr * (A @ langevin.stationary_covariance(A, C, lr, B)
                                            - langevin.stationary_covariance(A, C, lr, B) @ A))
    z = (cur.mean(0)[0, 1] - pred[0, 1]) / (cur[:, 0, 1].std() / math.sqrt(cur.shape[0]))
    assert abs(float(z)) < 3 and abs(float(pred[0, 1])) > 0.05
    lags = [1, 2, 5, 20]
    per_chain = torch.stack([compare.empirical_msd(draws[k:k + 1], lags)
                             for k in range(0, draws.shape[0], 4)])
    pm = momentum.msd_curve(A, C, lr, B, lags)
    zz = (per_chain.mean(0) - pm) / (per_chain.std(0) / math.sqrt(per_chain.shape[0]))
    assert float(zz.abs().max()) < 4


def test_iterate_averaging_covariance():
    A, C, b = q_problem()
    B, T = 2, 400
    limit = langevin.averaged_covariance(A, C, B)
    torch.testing.assert_close(limit, torch.linalg.inv(A) @ C @ torch.linalg.inv(A) / B)
    for lr in (0.2, 0.6):
        draws = run(SGD(lr), make_grad_fn(A, b, B), chains=4000, burn=200, steps=T, seed=7)
        avg = draws.mean(1)
        prod = T * avg[:, :, None] * avg[:, None, :]
        emp, se = prod.mean(0), prod.std(0) / math.sqrt(avg.shape[0])
        exact = langevin.averaged_covariance(A, C, B, lr=lr, num_steps=T)
        assert max_z(emp, se, exact) < 4
        assert compare.relative_frobenius_error(exact, limit) < 0.05


def test_svag_amplifies_noise_and_matches_closed_form():
    A, C, b = q_problem()
    lr, B, l = 0.4, 1, 4.0
    grad_fn = make_grad_fn(A, b, B)
    # one step from theta = 0: the increment's covariance is (lr/l)^2 * l * C / B
    sampler = SVAG(lr, l=l)
    state = sampler.init(torch.zeros(20000, 2, dtype=F64))
    new, _ = sampler.step(state, grad_fn, torch.Generator().manual_seed(5))
    emp, se = compare.chain_covariance(new.params[:, None, :].reshape(200, 100, 2),
                                       mean=torch.zeros(2, dtype=F64))
    assert max_z(emp, se, (lr / l) ** 2 * l * C / B) < 4
    draws = run(SVAG(lr, l=l), grad_fn, burn=600, steps=1200, chains=1000)
    emp, se = compare.chain_covariance(draws, mean=torch.zeros(2, dtype=F64))
    assert max_z(emp, se, langevin.svag_covariance(A, C, lr, B, l)) < 4
    assert max_z(emp, se, langevin.stationary_covariance(A, C, lr, B)) > 6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_closed_forms_follow_the_inputs_device():
    A, C, _ = q_problem()
    for fn in (
        lambda a, c: langevin.stationary_covariance(a, c, 0.3, 2),
        lambda a, c: langevin.stationary_covariance(a, c, 0.3, 2, momentum=0.9),
        lambda a, c: momentum.msd_curve(a, c, 0.3, 2, [1, 10], momentum=0.5),
        lambda a, c: langevin.svag_covariance(a, c, 0.3, 2, 4.0),
    ):
        gpu = fn(A.cuda(), C.cuda())
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), fn(A, C))
