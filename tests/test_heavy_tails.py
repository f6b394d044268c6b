"""Alpha-stable draws, the tail-index estimator and Levy-driven SDEs (docs/theory.md §6)."""

import math

import pytest
import torch
from bayesdepth.inference import heavy_tails

F64 = torch.float64


@pytest.mark.parametrize("alpha", [0.8, 1.0, 1.5, 2.0])
def test_stable_sampler_characteristic_function(alpha):
    gen = torch.Generator().manual_seed(1)
    x = heavy_tails.sample_symmetric_stable(alpha, (200_000,), scale=0.7, generator=gen)
    t = torch.tensor([0.3, 1.0, 2.5], dtype=F64)
    c = torch.cos(t[:, None] * x[None])
    emp, se = c.mean(1), c.std(1) / math.sqrt(x.numel())
    exact = torch.exp(-(0.7 * t).abs() ** alpha)
    assert float(((emp - exact) / se).abs().max()) < 4
    wrong = torch.exp(-(0.7 * t).abs() ** (alpha * 0.9))
    assert float(((emp - wrong) / se).abs().max()) > 5


@pytest.mark.parametrize("alpha", [1.2, 1.5, 1.8])
def test_tail_index_on_stable_draws(alpha):
    gen = torch.Generator().manual_seed(2)
    x = heavy_tails.sample_symmetric_stable(alpha, (40, 10_000), generator=gen)
    est = heavy_tails.tail_index(x)
    assert est.shape == (40,)
    se = float(est.std()) / math.sqrt(40)
    assert abs(float(est.mean()) - alpha) < 3 * se + 0.02
    assert se < 0.03


def test_levy_sde_increment_law():
    gen = torch.Generator().manual_seed(3)
    alpha, scale, dt, n = 1.5, 0.5, 0.01, 50
    out = heavy_tails.simulate_levy_sde(lambda x: torch.zeros_like(x),
                                        torch.zeros(100_000, dtype=F64), alpha, scale, dt, n,
                                        generator=gen)
    assert out.exit_time is None
    # X_T = scale * sum dt^{1/alpha} S_k has scale scale * T^{1/alpha}
    t = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    c = torch.cos(t[:, None] * out.x[None])
    emp, se = c.mean(1), c.std(1) / math.sqrt(out.x.numel())
    exact = torch.exp(-(scale * (n * dt) ** (1 / alpha) * t) ** alpha)
    assert float(((emp - exact) / se).abs().max()) < 4


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"alpha must lie in \(0, 2\]"):
        heavy_tails.sample_symmetric_stable(2.5, (3,))
    with pytest.raises(ValueError, match="lo < hi"):
        heavy_tails.simulate_levy_sde(lambda x: -x, torch.zeros(2), 1.5, 0.1, 0.1, 3,
                                      interval=(1, 0))
    with pytest.raises(ValueError, match="at least 2 samples per block"):
        heavy_tails.tail_index(torch.ones(3, dtype=F64))


def _harmonic(estimates):
    """The estimator is unbiased for 1 / alpha: average that, with its standard error in alpha."""
    inv = 1 / estimates
    return 1 / float(inv.mean()), float(inv.std()) / math.sqrt(inv.numel()) / float(inv.mean())**2


def test_pooling_coordinates_of_different_scales_biases_the_tail_index():
    # Li, Malladi, Arora (2021) app. B.3: Gaussian coordinates with ln sigma_j^2 ~ N(0, s^2),
    # pooled into one sample per draw, give 1 / (1/2 + s^2 / (4 ln K1)) = 1.804 (K1 = 100, s = 1)
    gen = torch.Generator().manual_seed(0)
    draws, coords, k1, s = 200, 10_000, 100, 1.0
    scales = torch.exp(s * torch.randn(draws, coords, generator=gen, dtype=F64) / 2)
    x = scales * torch.randn(draws, coords, generator=gen, dtype=F64)
    alpha, se = _harmonic(heavy_tails.tail_index(x, k1))
    predicted = 1 / (0.5 + s**2 / (4 * math.log(k1)))
    assert predicted == pytest.approx(1.804, abs=1e-3)
    assert abs(alpha - predicted) < 3 * se, (alpha, se)  # measured 1.797 +- 0.005
    assert 2 - alpha > 20 * se  # although every coordinate is Gaussian


def test_per_coordinate_standardisation_restores_the_tail_index():
    gen = torch.Generator().manual_seed(1)
    draws, coords, k1 = 1000, 2000, 100
    scales = torch.exp(torch.randn(coords, generator=gen, dtype=F64) / 2)  # fixed per coordinate
    gauss = scales * torch.randn(draws, coords, generator=gen, dtype=F64)
    alpha, se = _harmonic(heavy_tails.tail_index(gauss, k1, per_coordinate=True))
    assert abs(alpha - 2.0) < 3 * se, (alpha, se)  # measured 1.997 +- 0.007
    pooled, _ = _harmonic(heavy_tails.tail_index(gauss, k1))
    assert pooled < 1.9
    stable = scales * heavy_tails.sample_symmetric_stable(1.5, (draws, coords), generator=gen)
    alpha, se = _harmonic(heavy_tails.tail_index(stable, k1, per_coordinate=True))
    assert abs(alpha - 1.5) < 3 * se + 0.02, (alpha, se)
    with pytest.raises(ValueError, match=r"needs samples of shape \(\.\.\., draws >= 2"):
        heavy_tails.tail_index(gauss[:1], k1, per_coordinate=True)


def test_levy_sde_in_d_dimensions_gaussian_and_preconditioned():
    gen = torch.Generator().manual_seed(4)
    # alpha = 2: scale dL^2 = scale sqrt(2) dW, so X_T has variance 2 scale^2 T / q^2 per
    # coordinate with a frozen preconditioner q
    q = torch.tensor([1.0, 2.0, 4.0], dtype=F64)
    out = heavy_tails.simulate_levy_sde(lambda x: torch.zeros_like(x),
                                        torch.zeros(20_000, 3, dtype=F64), 2.0, 0.5, 0.01, 100,
                                        generator=gen, preconditioner=q)
    var = out.x.var(0)
    expected = 2 * 0.25 * 1.0 / q**2
    assert float(((var - expected) / (expected * math.sqrt(2 / 20_000))).abs().max()) < 4
    # a chain of a (K, d) state exits when the first coordinate leaves its box
    out = heavy_tails.simulate_levy_sde(lambda x: -x, torch.zeros(500, 2, dtype=F64), 1.2, 0.3,
                                        0.05, 400, generator=gen,
                                        inside=lambda x: (x.abs() < 1).all(-1))
    assert out.exit_time.shape == (500,)
    done = torch.isfinite(out.exit_time)
    assert bool(done.any()) and bool((out.x[done].abs().amax(-1) >= 1).all())
    assert bool((out.x[~done].abs().amax(-1) < 1).all())
    with pytest.raises(ValueError, match="give interval or inside, not both"):
        heavy_tails.simulate_levy_sde(lambda x: -x, torch.zeros(2), 1.5, 0.1, 0.1, 3,
                                      interval=(0, 1), inside=lambda x: x < 1)
    with pytest.raises(ValueError, match="preconditioner must be positive"):
        heavy_tails.simulate_levy_sde(lambda x: -x, torch.zeros(2), 1.5, 0.1, 0.1, 3,
                                      preconditioner=torch.tensor([1.0, 0.0]))
