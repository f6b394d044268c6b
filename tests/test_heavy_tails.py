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
