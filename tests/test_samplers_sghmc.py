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


def _anisotropic_grad_fn(noise_var):
    """Gradient noise with a different variance per coordinate (as minibatch noise is)."""

    def grad_fn(theta, generator):
        noise = noise_var.sqrt() * torch.randn(theta.shape, generator=generator,
                                               dtype=theta.dtype)
        return PRECISION * theta + noise, 0.5 * (PRECISION * theta**2).sum(-1)

    return grad_fn


def test_per_parameter_noise_estimate_corrects_anisotropic_noise():
    """V differs 10x between coordinates: the per-coordinate correction gives T / p in each
    (within 3%); one number (the mean of V) over-corrects some and under-corrects others."""
    eta, alpha = 0.01, 0.3
    noise_var = torch.tensor([0.2, 0.9, 2.0], dtype=torch.float64) * alpha / eta  # eta V <= aT
    grad_fn = _anisotropic_grad_fn(noise_var)
    sampler = SGHMC(eta, friction=alpha, noise_estimate=noise_var)
    var, se = _variance(sampler, grad_fn)
    target = 1.0 / PRECISION
    assert (se / target).max() < 0.01
    assert ((var - target).abs() / target).max() < 0.03
    scalar = SGHMC(eta, friction=alpha, noise_estimate=float(noise_var.mean()))
    var0, _ = _variance(scalar, grad_fn, num_chains=1000, steps=800)
    error = (var0 - target) / target
    assert error.min() < -0.15 and error.max() > 0.15  # wrong on both sides


def test_noise_estimate_per_named_parameter():
    sampler = SGHMC(0.1, friction=0.5, noise_estimate={"a": torch.tensor([0.0, 2.0]), "b": 1.0})
    params = {"a": torch.zeros(3, 2, dtype=torch.float64), "b": torch.zeros(3, dtype=torch.float64)}
    state = sampler.init(params)

    def grad_fn(p, gen):
        return {k: torch.zeros_like(v) for k, v in p.items()}, torch.zeros(3)

    new, _ = sampler.step(state, grad_fn, torch.Generator().manual_seed(0))
    z = torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scale_a = (2 * 0.1 * (0.5 - 0.1 * torch.tensor([0.0, 2.0]) / 2)).sqrt()
    torch.testing.assert_close(new.velocity["a"], scale_a * z[:, :2])  # chain by chain
    torch.testing.assert_close(new.velocity["b"], (2 * 0.1 * (0.5 - 0.05)) ** 0.5 * z[:, 2])


@pytest.mark.parametrize(
    ("noise", "params", "match"),
    [
        (torch.tensor([1.0, -1.0]), torch.zeros(2, 2), "entries >= 0"),
        (torch.tensor([1.0, float("nan")]), torch.zeros(2, 2), "finite"),
        (torch.ones(3), torch.zeros(2, 2), r"shape \(3,\).*shape \(2,\)"),
        ({"a": 1.0}, {"b": torch.zeros(2, 1)}, "keys"),
        (torch.ones(2), {"b": torch.zeros(2, 1)}, "dict of tensors"),
    ],
)
def test_bad_noise_estimate(noise, params, match):
    with pytest.raises(ValueError, match=match):
        SGHMC(0.01, noise_estimate=noise).init(params)


def test_too_large_tensor_noise_estimate_is_named():
    sampler = SGHMC(0.1, friction=0.1, noise_estimate=torch.tensor([0.1, 10.0]))
    state = sampler.init(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"largest entry 10"):
        sampler.step(state, lambda p, g: (p, p.sum(-1)), None)
