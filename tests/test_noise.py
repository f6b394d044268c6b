"""Gradient-noise statistics: per-example gradients, C and its minibatch factor, G/N."""

import math

import pytest
import torch
from bayesdepth.inference import noise

from bayesdepth.data import linear_regression

F64 = torch.float64


def sq_loss(w, x, y):
    return 0.5 * (x @ w - y) ** 2


def test_per_example_grads_and_population_covariance():
    data = linear_regression(num_points=30, dim=3)
    w = torch.tensor([0.3, -0.2, 1.0], dtype=F64)
    g = noise.per_example_grads(sq_loss, w, data.x, data.y)
    manual = data.x * (data.x @ w - data.y).unsqueeze(-1)
    torch.testing.assert_close(g, manual)
    c = noise.gradient_noise_covariance(g)
    centred = manual - manual.mean(0)
    torch.testing.assert_close(c, centred.T @ centred / 30)  # population normalisation
    torch.testing.assert_close(noise.gradient_noise_covariance(g, 4), c / 4)
    torch.testing.assert_close(noise.gradient_noise_covariance(g, 4, replacement=False),
                               c / 4 * 26 / 29)
    chains = torch.stack([w, 2 * w])
    gk = noise.per_example_grads(sq_loss, chains, data.x, data.y)
    assert gk.shape == (2, 30, 3)
    torch.testing.assert_close(gk[1], noise.per_example_grads(sq_loss, 2 * w, data.x, data.y))


@pytest.mark.parametrize("without", [False, True])
def test_minibatch_covariance_matches_simulation(without):
    data = linear_regression(num_points=12, dim=2)
    w = torch.tensor([0.5, -1.0], dtype=F64)
    g = noise.per_example_grads(sq_loss, w, data.x, data.y)
    gen = torch.Generator().manual_seed(0)
    B, reps = 5, 200_000
    if without:
        idx = torch.rand(reps, 12, generator=gen).argsort(-1)[:, :B]
    else:
        idx = torch.randint(12, (reps, B), generator=gen)
    gb = g[idx].mean(1) - g.mean(0)
    prod = gb[:, :, None] * gb[:, None, :]
    emp, se = prod.mean(0), prod.std(0) / math.sqrt(reps)
    pred = noise.gradient_noise_covariance(g, B, replacement=not without)
    other = noise.gradient_noise_covariance(g, B, replacement=without)
    assert float(((emp - pred) / se).abs().max()) < 4
    assert float(((emp - other) / se).abs().max()) > 10


def test_noise_to_signal_definition_and_run():
    data = linear_regression(num_points=40, dim=3)
    w = torch.zeros(3, dtype=F64)
    g = noise.per_example_grads(sq_loss, w, data.x, data.y)
    mean = g.mean(0)
    c = noise.gradient_noise_covariance(g)
    gn = noise.noise_to_signal(g, 4)
    assert float(gn) == pytest.approx(float(mean @ mean / (torch.trace(c) / 4)), rel=1e-12)
    # E|g_B|^2 = G + N: G/N from two batches as the samplers report it
    assert float(noise.noise_to_signal(g, 8)) == pytest.approx(2 * float(gn), rel=1e-12)
    path = torch.stack([w, data.posterior_mean, 0.5 * data.posterior_mean])
    along = noise.noise_to_signal_along(sq_loss, path, data.x, data.y, batch_size=4)
    assert along.shape == (3,)
    assert float(along[0]) == pytest.approx(float(gn))
    assert float(along[1]) < 1e-2 < float(along[0])  # signal vanishes near the optimum


def test_bad_inputs():
    with pytest.raises(ValueError, match="batch_size = 5 exceeds num_data = 3"):
        noise.gradient_noise_covariance(torch.zeros(3, 2, dtype=F64), 5, replacement=False)
    with pytest.raises(ValueError, match="disagree on N"):
        noise.per_example_grads(sq_loss, torch.zeros(2, dtype=F64), torch.zeros(3, 2),
                                torch.zeros(4))


def test_two_batch_estimate_on_the_quadratic():
    from bayesdepth.inference import SGD, SGDProblem, langevin, sample
    from bayesdepth.inference.sgd_potentials import QuadraticPotential
    from quadratic import random_problem

    a, c = random_problem(4)
    problem = SGDProblem(a, c, lr=0.3, batch_size=2)
    run = sample(QuadraticPotential(problem), SGD(0.3, noise_stats=True), num_chains=64,
                 num_draws=1500, warmup=int(10 * problem.relaxation_time), seed=0)
    est = noise.two_batch_estimate(run)
    signal = float(torch.trace(a @ langevin.stationary_covariance(problem) @ a))
    exact_noise = float(torch.trace(problem.minibatch_noise_cov))
    assert abs(est.signal - signal) < 3 * est.signal_se
    assert abs(est.noise - exact_noise) < 3 * est.noise_se
    inverse = 1 / langevin.noise_to_signal_ratio(problem)
    assert abs(est.noise_over_signal - inverse) < 3 * est.noise_over_signal_se
    assert est.noise_over_signal_se < 0.05 * inverse
    with pytest.raises(ValueError, match="noise_stats=True"):
        noise.two_batch_estimate(sample(QuadraticPotential(problem), SGD(0.3), num_chains=2,
                                        num_draws=3, seed=0))
    with pytest.raises(ValueError, match="must be positive"):
        noise.two_batch_estimate({"grad_sq": -torch.ones(2, 3), "grad_noise": torch.ones(2, 3)})
