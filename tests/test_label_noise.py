"""Label-noise SGD on the zero-loss manifold of f(u, v) = u v, y = 1 (docs/theory.md §13.2).

Li, Wang, Arora (ICLR 2022). The imbalance D = u^2 - v^2 obeys D_{k+1} = D_k (1 - eta^2 r_k^2)
path by path (r_k the residual against the noisy label); the slow flow (t = eta^2 k) gives
sinh 2s(t) = sinh 2s_0 e^{-sigma^2 t} with (u, v) = (e^s, e^-s), D = 2 sinh 2s and
tr H = sqrt(D^2 + 4).
"""

import math

import pytest
import torch
from bayesdepth.inference import SGD, label_noise, sample
from bayesdepth.inference.sgd_potentials import (
    LabelBatch,
    LeastSquaresPotential,
    LinearRegressionPotential,
)
from torchdiffeq import odeint

from bayesdepth.data import linear_regression

F64 = torch.float64
START = torch.tensor([3.0, 1 / 3], dtype=F64)
ETA, SIGMA = 0.02, 1.0


def product(theta, x):
    return theta[0] * theta[1] * x


def uv_potential(sigma=SIGMA, **kwargs):
    one = torch.ones(1, dtype=F64)
    return LeastSquaresPotential(product, one, one, label_noise=sigma, init=START, **kwargs)


def imbalance(theta):
    return theta[..., 0] ** 2 - theta[..., 1] ** 2


def finite_eta_change(log_d0, t, eta=ETA, sigma=SIGMA):
    """Integrate d log D / dt = -2 sigma^2 / (2 - eta tr H), tr H = sqrt(D^2 + 4)."""

    def rate(_, log_d):
        d = torch.exp(log_d)
        return -2 * sigma**2 / (2 - eta * torch.sqrt(d * d + 4))

    ts = torch.tensor([0.0, t], dtype=F64)
    out = odeint(rate, torch.tensor([log_d0], dtype=F64), ts, rtol=1e-12, atol=1e-12)
    return float(out[-1, 0] - out[0, 0])


def test_imbalance_shrinks_by_one_minus_eta2_r2_path_by_path():
    potential, sampler, chains = uv_potential(), SGD(ETA), 64
    grad_fn = potential.grad_fn(chains)
    gen = torch.Generator().manual_seed(0)
    state = sampler.init(potential.init(chains, gen))
    noises = []
    for _ in range(300):
        replay = torch.Generator().set_state(gen.get_state())
        batch = potential.sample_batch(chains, replay)  # the batch the step is about to draw
        assert isinstance(batch, LabelBatch) and batch.indices is None
        before = state.params
        state, _ = sampler.step(state, grad_fn, gen)
        r = before[:, 0] * before[:, 1] - (1 + batch.label_noise[:, 0])
        torch.testing.assert_close(imbalance(state.params),
                                   imbalance(before) * (1 - ETA**2 * r**2), rtol=1e-13, atol=0)
        noises.append(batch.label_noise[:, 0])
    eps = torch.stack(noises)  # (steps, chains): fresh N(0, sigma^2) labels every step
    n = eps.numel()
    assert abs(float(eps.var()) - SIGMA**2) < 3 * SIGMA**2 * math.sqrt(2 / n)
    lag = float((eps[1:] * eps[:-1]).mean())
    assert abs(lag) < 3 / math.sqrt(n)


def test_limiting_flow_matches_its_closed_form_and_stays_on_the_manifold():
    potential = uv_potential()
    t = torch.linspace(0, 2, 9, dtype=F64)
    path = label_noise.limiting_flow(potential, START, t)
    s = torch.asinh(math.sinh(2 * math.log(3)) * torch.exp(-SIGMA**2 * t)) / 2
    torch.testing.assert_close(path[:, 0], torch.exp(s), rtol=1e-7, atol=0)
    torch.testing.assert_close(path[:, 0] * path[:, 1], torch.ones(9, dtype=F64), rtol=1e-8,
                               atol=0)
    d = imbalance(path)
    assert float(torch.log(d[-1] / d[0])) == pytest.approx(-2 * SIGMA**2, abs=1e-6)
    torch.testing.assert_close(label_noise.hessian_trace(potential, path), torch.sqrt(d**2 + 4))
    # a batch of starts; c = sigma^2 / (B s^2) and tr H ∝ 1 / s^2: noise_scale 2 slows it 16x
    starts = torch.stack([START, torch.tensor([0.5, 2.0], dtype=F64)])
    both = label_noise.limiting_flow(potential, starts, t)
    torch.testing.assert_close(both[:, 0], path, rtol=1e-7, atol=1e-9)
    slow = label_noise.limiting_flow(uv_potential(noise_scale=2.0), START, 16 * t)
    torch.testing.assert_close(slow, path, rtol=1e-6, atol=0)
    # the Gauss-Newton trace used for speed has the same tangential gradient on the manifold
    full = torch.func.grad(label_noise._trace_hessian(potential))(START)
    jac = torch.stack([START[1], START[0]])
    tangent = torch.stack([START[0], -START[1]]) / torch.linalg.norm(START)
    gn = torch.stack([2 * START[0], 2 * START[1]])  # grad (u^2 + v^2)
    assert float(full @ tangent) == pytest.approx(float(gn @ tangent), rel=1e-12)
    assert float(jac @ tangent) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match=r"theta0 must lie on the zero-loss manifold .* 0\.4"):
        label_noise.limiting_flow(potential, torch.tensor([3.0, 0.2], dtype=F64), t)
    with pytest.raises(ValueError, match="label_noise must be a finite number > 0"):
        label_noise.limiting_flow(uv_potential(sigma=0.0), START, t)


def test_label_noise_sgd_follows_the_flow_with_its_finite_eta_correction():
    # 2000 chains, eta = 0.02, sigma = 1, K = 5000 steps (t = eta^2 K = 2) from (3, 1/3):
    # E log D_K - log D_0 = -2.09 (measured -2.0926 +- 0.0009); the flow alone says -2.000
    chains, steps = 2000, 5000
    run = sample(uv_potential(), SGD(ETA), num_chains=chains, num_draws=1, warmup=steps - 1,
                 seed=0)
    assert run.steps == steps
    log_ratio = torch.log(imbalance(run.draws["theta"][:, -1]) / imbalance(START))
    mean, se = float(log_ratio.mean()), float(log_ratio.std()) / math.sqrt(chains)
    predicted = finite_eta_change(float(torch.log(imbalance(START))), ETA**2 * steps)
    assert predicted == pytest.approx(-2.091, abs=1e-3)
    assert abs(mean - predicted) < 3 * se, (mean, predicted, se)
    assert abs(mean + 2.0) > 50 * se  # the eta -> 0 flow misses the finite-eta drift


def test_plain_gd_conserves_the_imbalance():
    # without label noise the minimum (3, 1/3) is a fixed point; from off the manifold GD
    # reaches it with D changed by prod (1 - eta^2 e_k^2), O(eta^2), and then D stays put
    potential = uv_potential(sigma=0.0)
    for start, drift in ((START, 0.0), (torch.tensor([3.0, 0.25], dtype=F64), 2e-3)):
        run = sample(potential, SGD(ETA), num_chains=1, num_draws=3000, init=start[None].clone(),
                     seed=0)
        d = imbalance(run.draws["theta"][0])
        assert abs(float(torch.log(d[-1] / imbalance(start)))) <= drift
        assert float(d[-1]) == float(d[1500])


def test_linear_regression_label_noise_adds_its_gradient_covariance():
    data = linear_regression()
    batch, sigma, chains = 5, 0.7, 40_000
    w = data.posterior_mean.expand(chains, -1).clone()
    covs = []
    for noise in (0.0, sigma):
        potential = LinearRegressionPotential(data, batch, label_noise=noise)
        grad, _ = potential.grad_fn(chains)(w, torch.Generator().manual_seed(1))
        covs.append(torch.cov(grad.T))
    x, s2 = data.x.to(F64), float(data.noise_scale) ** 2
    extra = sigma**2 * x.T @ x / (x.shape[0] * batch * s2**2)  # sigma^2 E[x x^T] / (B s^4)
    diff = torch.trace(covs[1] - covs[0])
    se = math.sqrt(2 / chains) * float(torch.trace(covs[1]) + torch.trace(covs[0]))
    assert abs(float(diff - torch.trace(extra))) < 3 * se
    assert float(torch.trace(extra)) > 10 * se
