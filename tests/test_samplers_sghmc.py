"""SGHMC (velocity form) with gradient noise and the beta-hat correction (docs/theory.md §5.3)."""

import pytest
import torch
from bayesdepth.inference import SGHMC

PRECISION = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)


def _noisy_grad_fn(noise_var):
    def grad_fn(theta, generator):
        noise = noise_var**0.5 * torch.randn(theta.shape, generator=generator, dtype=theta.dtype)
        return PRECISION * theta + noise, 0.5 * (PRECISION * theta**2).sum(-1)

    return grad_fn


def _variance(sampler, grad_fn, num_chains=4000, burn=600, steps=1500):
    g = torch.Generator().manual_seed(0)
    state = sampler.init(torch.zeros(num_chains, 3, dtype=torch.float64))
    for _ in range(burn):
        state, _ = sampler.step(state, grad_fn, g)
    acc = torch.zeros(num_chains, 3, dtype=torch.float64)
    for _ in range(steps):
        state, _ = sampler.step(state, grad_fn, g)
        acc += state.params**2
    acc /= steps
    return acc.mean(0), acc.std(0) / num_chains**0.5


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sghmc_noise_correction_gives_target_variance(temperature):
    eta, alpha = 0.01, 0.3
    noise_var = alpha * temperature / eta  # eta V = alpha T: half the noise comes from gradients
    sampler = SGHMC(eta, friction=alpha, temperature=temperature, noise_estimate=noise_var)
    var, se = _variance(sampler, _noisy_grad_fn(noise_var))
    target = temperature / PRECISION
    assert (se / target).max() < 0.01
    assert ((var - target).abs() / target).max() < 0.03
    # without the correction the gradient noise inflates the variance by about 1.5x
    uncorrected = SGHMC(eta, friction=alpha, temperature=temperature)
    var0, _ = _variance(uncorrected, _noisy_grad_fn(noise_var), num_chains=500, steps=500)
    assert (var0 / target).min() > 1.3


def test_sghmc_update_equation():
    theta = torch.randn(4, 2, dtype=torch.float64)
    sampler = SGHMC(0.1, friction=0.2, temperature=0.5, noise_estimate=0.4)
    state = sampler.init(theta)
    state = state.replace(velocity=torch.ones(4, 2, dtype=torch.float64))

    def grad_fn(p, gen):
        return 3 * p, p.sum(-1)

    new, _ = sampler.step(state, grad_fn, torch.Generator().manual_seed(1))
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    var = 2 * 0.1 * (0.2 * 0.5 - 0.1 * 0.4 / 2)
    v = 0.8 * 1.0 - 0.1 * 3 * theta + var**0.5 * z
    torch.testing.assert_close(new.velocity, v)
    torch.testing.assert_close(new.params, theta + v)


def test_sghmc_bad_input():
    with pytest.raises(ValueError, match="friction"):
        SGHMC(0.1, friction=0.0)
    with pytest.raises(ValueError, match="friction"):
        SGHMC(0.1, friction=1.5)
    with pytest.raises(ValueError, match="temperature"):
        SGHMC(0.1, temperature=-1)
    sampler = SGHMC(0.1, friction=0.1, noise_estimate=10.0)  # lr * V = 1 > 2 * alpha * T = 0.2
    state = sampler.init(torch.zeros(2, 1))
    with pytest.raises(ValueError, match="noise_estimate"):
        sampler.step(state, lambda p, g: (p, p.sum(-1)), None)
