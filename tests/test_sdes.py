"""torchsde models of SGD (docs/theory.md §2.2, §4): coefficients, weak orders, simulation."""

import math

import numpy as np
import pytest
import torch
from bayesdepth.inference import SGDProblem, momentum, sdes
from bayesdepth.inference.statistics import chain_covariance

F64 = torch.float64
T = 1.0


def gamma_losses(theta):
    """f_gamma = (1 + gamma) x^2 / 2 with gamma = +-1: two examples, l_1 = x^2, l_2 = 0."""
    x2 = (theta**2).sum(-1)
    return torch.stack([x2, torch.zeros_like(x2)], -1)


def sgd_second_moment(eta):
    return ((1 - eta) ** 2 + eta**2) ** (T / eta)


def linear_rate(sde):
    """For a linear 1-D SDE dX = a X dt + X b.dW read a and |b|^2 off the object; E X_T^2."""
    y = torch.ones(1, 1, dtype=F64)
    a = float(sde.f(0.0, y))
    b2 = sum(float(sde.g_prod(0.0, y, torch.eye(2, dtype=F64)[n:n + 1])) ** 2 for n in range(2))
    return math.exp((2 * a + b2) * T), a, b2


def test_sme_weak_order_slopes_one_and_two():
    etas = np.array([0.04, 0.02, 0.01])
    errs = {1: [], 2: []}
    for eta in etas:
        for order in (1, 2):
            m, _, b2 = linear_rate(sdes.SME(gamma_losses, 2, eta, 1, order=order))
            errs[order].append(abs(m - sgd_second_moment(eta)))
        assert b2 == pytest.approx(eta)  # eta * Sigma = eta x^2 at x = 1
    slope1 = np.polyfit(np.log(etas), np.log(errs[1]), 1)[0]
    slope2 = np.polyfit(np.log(etas), np.log(errs[2]), 1)[0]
    assert slope1 == pytest.approx(1.0, abs=0.1)
    assert slope2 == pytest.approx(2.0, abs=0.1)


@pytest.mark.slow
def test_sme_simulation_matches_its_moment():
    eta, paths = 0.2, 4000
    y0 = torch.ones(paths, 1, dtype=F64)
    for order, exact in ((1, math.exp((-2 + eta) * T)), (2, math.exp(-2 * T))):
        ys = sdes.simulate(sdes.SME(gamma_losses, 2, eta, 1, order=order), y0, [0.0, T],
                           dt=0.002, seed=order)
        x2 = ys[-1, :, 0] ** 2
        se = float(x2.std()) / math.sqrt(paths)
        # Euler's weak error on E X^2 is about dt * T * |2a + b^2|^2 / 2 relative
        assert abs(float(x2.mean()) - exact) < 3 * se + 0.004 * exact
    assert abs(math.exp(-2 * T) - math.exp((-2 + eta) * T)) > 10 * se


def test_smf_two_point_order():
    etas = np.array([0.04, 0.02, 0.01])
    x0, y0 = 1.0, -0.5
    smf_err, ind_err = [], []
    for eta in etas:
        # same batches: x_k y_k = x0 y0 prod_k (1 - eta (1 + g_k))^2
        sgd = x0 * y0 * sgd_second_moment(eta)
        flow = sdes.StochasticModifiedFlow(gamma_losses, 2, eta, 1, num_points=2)
        y = torch.tensor([[x0, y0]], dtype=F64)
        drift = flow.f(0.0, y) / y  # per-point linear rates
        noise = torch.stack([flow.g_prod(0.0, y, torch.eye(2, dtype=F64)[n:n + 1]) / y
                             for n in range(2)])
        a = float(drift[0, 0])
        b = noise[:, 0, 0]
        assert torch.allclose(noise[:, 0, 0], noise[:, 0, 1])  # the same Brownian motions
        # shared noise: E[X Y] = x0 y0 exp((2a + |b|^2) T); independent copies: x0 y0 exp(2 a T)
        smf_err.append(abs(x0 * y0 * math.exp((2 * a + float(b @ b)) * T) - sgd))
        ind_err.append(abs(x0 * y0 * math.exp(2 * a * T) - sgd))
    assert np.polyfit(np.log(etas), np.log(smf_err), 1)[0] == pytest.approx(2.0, abs=0.1)
    assert np.polyfit(np.log(etas), np.log(ind_err), 1)[0] == pytest.approx(1.0, abs=0.1)


@pytest.mark.slow
def test_smf_simulation_two_point_moment():
    eta, paths = 0.2, 4000
    flow = sdes.StochasticModifiedFlow(gamma_losses, 2, eta, 1, num_points=2)
    y0 = torch.tensor([[1.0, -0.5]], dtype=F64).repeat(paths, 1)
    ys = sdes.simulate(flow, y0, [0.0, T], dt=0.002, seed=3)
    prod = ys[-1, :, 0] * ys[-1, :, 1]
    se = float(prod.std()) / math.sqrt(paths)
    exact = -0.5 * math.exp(-2 * T)
    assert abs(float(prod.mean()) - exact) < 3 * se + 0.004 * abs(exact)
    independent = -0.5 * math.exp(-2 * (1 + eta / 2) * T)
    assert abs(float(prod.mean()) - independent) > 5 * se


def q_losses(A, b):
    def losses(theta):
        quad = 0.5 * ((theta @ A) * theta).sum(-1, keepdim=True)
        return quad - theta @ b.T

    return losses


def q_problem():
    A = torch.tensor([[1.0, 0.3], [0.3, 0.6]], dtype=F64)
    b = torch.tensor([[1.0, 0.5], [-1.0, 0.2], [0.4, -1.2], [-0.4, 0.5]], dtype=F64)
    b = b - b.mean(0)
    return A, b, b.T @ b / b.shape[0]


def test_diffusion_covariance_is_eta_sigma_without_square_root():
    A, b, C = q_problem()
    eta, B = 0.3, 2
    for replacement, factor in ((True, 1.0), (False, (4 - B) / 3)):
        sde = sdes.SME(q_losses(A, b), 4, eta, B, replacement=replacement)
        theta = torch.tensor([[0.3, -0.2]], dtype=F64)
        cols = torch.cat([sde.g_prod(0.0, theta, torch.eye(4, dtype=F64)[n:n + 1])
                          for n in range(4)])
        torch.testing.assert_close(cols.T @ cols, eta * C / B * factor)
        torch.testing.assert_close(sde.f(0.0, theta), -(theta @ A))


def test_sme2_drift_is_modified_gradient():
    A, b, _ = q_problem()
    eta = 0.3
    sde = sdes.SME(q_losses(A, b), 4, eta, 1, order=2)
    theta = torch.tensor([[0.3, -0.2], [1.0, 2.0]], dtype=F64)
    torch.testing.assert_close(sde.f(0.0, theta), -(theta @ A + eta / 2 * theta @ A @ A))


@pytest.mark.slow
def test_underdamped_sde_stationary_covariance():
    A, b, C = q_problem()
    eta, beta = 0.1, 0.5
    sde = sdes.UnderdampedSDE(q_losses(A, b), 4, eta, 1, momentum=beta)
    y0 = torch.zeros(1000, 4, dtype=F64)
    ts = torch.cat([torch.tensor([0.0]), torch.linspace(10.0, 26.0, 17)]).to(F64)
    ys = sdes.simulate(sde, y0, ts, dt=0.005, seed=1)
    draws = ys[1:, :, :2].transpose(0, 1)
    emp, se = chain_covariance(draws, mean=torch.zeros(2, dtype=F64))
    pred = momentum.underdamped_covariance(SGDProblem(A, C, lr=eta, momentum=beta))[:2, :2]
    # Euler with step dt on a system with mass eta (1+beta)/2: bias about dt / mass relative
    assert float(((emp - pred).abs() / (3 * se + 0.06 * pred.abs().max())).max()) < 1


def test_bad_inputs():
    A, b, _ = q_problem()
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        sdes.SME(q_losses(A, b), 4, 0.1, order=3)
    sde = sdes.SME(q_losses(A, b), 5, 0.1)
    with pytest.raises(ValueError, match=r"must return shape \(1, 5\)"):
        sde.f(0.0, torch.zeros(1, 2, dtype=F64))
    with pytest.raises(ValueError, match="momentum"):
        sdes.UnderdampedSDE(q_losses(A, b), 4, 0.1, momentum=1.0)
    with pytest.raises(ValueError, match="exceeds num_data"):
        sdes.SME(q_losses(A, b), 4, 0.1, batch_size=5, replacement=False)
