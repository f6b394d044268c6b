"""MultiScaleSDEBNN and SpaceToDepth: layout, invertibility, training on generated images."""

import pytest
import torch
from pyro import poutine
from torch import nn

import bayesdepth as bd
from bayesdepth.sde import MultiScaleSDEBNN, ResNetField, SpaceToDepth
from bayesdepth.sde.multiscale import count_table


def test_space_to_depth_is_the_documented_invertible_squeeze():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float64).reshape(2, 3, 4, 6)
    down = SpaceToDepth(2)
    y = down(x)
    assert y.shape == (2, 12, 2, 3)
    for c, i, j in [(0, 0, 0), (1, 0, 1), (2, 1, 0), (2, 1, 1)]:
        torch.testing.assert_close(y[:, 4 * c + 2 * i + j], x[:, c, i::2, j::2])
    assert torch.equal(down.inverse(y), x)
    assert down(torch.randn(5, 2, 3, 4, 4)).shape == (5, 2, 12, 2, 2)  # leading draw dims
    with pytest.raises(ValueError, match=r"H and W divisible by 2, got h of shape \(1, 3, 5, 4\)"):
        down(torch.zeros(1, 3, 5, 4))
    with pytest.raises(ValueError, match="factor"):
        SpaceToDepth(1)


def test_stages_channels_and_one_path_site_per_block():
    m = MultiScaleSDEBNN((1, 8, 8), 4, blocks=(2, 1), augment=1, hidden=3, steps=2, seed=0)
    assert m.stage_channels == [2, 8]
    assert [b.state_shape for b in m.blocks] == [(2, 8, 8), (2, 8, 8), (8, 4, 4)]
    x = torch.randn(3, 1, 8, 8)
    trace = poutine.trace(m.model).get_trace(x)
    latents = [n for n, s in trace.nodes.items() if s["type"] == "sample"
               and not s["is_observed"] and n not in ("data", "y")]
    assert latents == ["blocks.0.w", "blocks.1.w", "blocks.2.w"]
    assert trace.nodes["f"]["value"].shape == (3, 4)
    rows = m.stage_table()
    assert [r["sde_weights"] for r in rows] == [
        2 * m.blocks[0].num_weights, m.blocks[2].num_weights]
    counts = m.parameter_counts()
    assert counts["sde_weights"] == sum(r["sde_weights"] for r in rows)
    assert counts["point"] == sum(p.numel() for p in m.readout.parameters())


def test_the_paper_size_preset_has_about_0_7m_sde_driven_weights():
    m = MultiScaleSDEBNN.preset("cifar10")
    counts = m.parameter_counts()
    assert 0.6e6 < counts["sde_weights"] < 0.8e6
    assert counts["drift"] < 10 * counts["sde_weights"]
    table = count_table(["tiny", "cifar10"])
    assert "cifar10" in table and f"{counts['sde_weights']:,}" in table


def test_trains_a_few_steps_on_generated_images():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 8, 8, generator=gen)
    y = (x[:, 0, :4].mean((-1, -2)) > x[:, 0, 4:].mean((-1, -2))).long()  # top vs bottom half
    x[:, 0, :4] += y.view(-1, 1, 1) - 0.5
    m = MultiScaleSDEBNN.preset("tiny", num_classes=2, seed=0)
    hist = bd.fit(m.model, m.guide, x, y, num_steps=40, lr=2e-2, batch_size=32,
                  progress=False, seed=0)
    assert sum(hist.loss[-5:]) < sum(hist.loss[:5])
    probs = m.predict(x, num_samples=4, seed=0).probs
    assert bd.metrics.accuracy(probs, y) > 0.75
    ode = m.function(x, m.point_paths())  # the same architecture with constant weights
    assert ode.shape == (64, 2) and torch.equal(ode, m.function(x, m.point_paths()))


class TinyResidual(nn.Module):
    """A user ResNet-style field: conv -> relu -> conv, written with plain torch layers."""

    def __init__(self, channels):
        super().__init__()
        self.a = nn.Conv2d(channels, 4, 3, padding=1)
        self.b = nn.Conv2d(4, channels, 3, padding=1)

    def forward(self, h):
        return self.b(torch.relu(self.a(h)))


def test_user_fields_per_stage_and_bad_sizes():
    m = MultiScaleSDEBNN((1, 4, 4), 3, blocks=(1, 1), augment=1,
                         field=[TinyResidual(2), TinyResidual(8)], steps=2)
    assert m.predict(torch.randn(2, 1, 4, 4), num_samples=2).probs.shape == (2, 3)
    with pytest.raises(ValueError, match=r"states h of shape \(n, 8, 2, 2\)"):
        MultiScaleSDEBNN((1, 4, 4), 3, blocks=(1, 1), augment=1,
                         field=[TinyResidual(2), TinyResidual(2)], steps=2)
    with pytest.raises(ValueError, match=r"one nn\.Module per stage"):
        MultiScaleSDEBNN((1, 4, 4), 3, blocks=(1, 1), field=[TinyResidual(2)])
    with pytest.raises(ValueError, match=r"in_shape \(1, 6, 6\) cannot be downsampled 2 times.*"
                                         r"blocks=\(1, 1, 1\).*divisible by 4"):
        MultiScaleSDEBNN((1, 6, 6), 3, blocks=(1, 1, 1))
    with pytest.raises(ValueError, match=r"in_shape must be \(C, H, W\)"):
        MultiScaleSDEBNN((8, 8), 3)
    with pytest.raises(ValueError, match="preset must be one of"):
        MultiScaleSDEBNN.preset("imagenet")
    m = MultiScaleSDEBNN.preset("tiny")
    with pytest.raises(ValueError, match=r"x must have shape \(n, 1, 8, 8\)"):
        m.model(torch.zeros(2, 1, 8, 6))
    assert isinstance(m.blocks[0].field, ResNetField)


def test_the_seed_fixes_the_initial_weights():
    a, b = (MultiScaleSDEBNN.preset("tiny", seed=3) for _ in range(2))
    c = MultiScaleSDEBNN.preset("tiny", seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.blocks[0].w0, c.blocks[0].w0)
