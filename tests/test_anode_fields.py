"""Vector fields: shapes, time dependence, bad arguments."""

import pytest
import torch

from bayesdepth.anode import ConvField, MLPField


def test_mlp_field_shape_and_time_dependence():
    torch.manual_seed(0)
    f = MLPField(3, hidden=8, num_layers=3)
    h = torch.randn(5, 3)
    out0 = f(torch.tensor(0.0), h)
    out1 = f(torch.tensor(1.0), h)
    assert out0.shape == (5, 3)
    assert not torch.allclose(out0, out1)
    assert len(f.layers) == 3 and f.layers[0].in_features == 4  # state + time


def test_conv_field_shape_and_time_dependence():
    torch.manual_seed(0)
    f = ConvField(4, hidden=6)
    h = torch.randn(2, 4, 8, 8)
    out = f(torch.tensor(0.3), h)
    assert out.shape == h.shape
    assert not torch.allclose(out, f(torch.tensor(0.9), h))


def test_field_float64():
    f = MLPField(2).double()
    assert f(torch.tensor(0.5, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)).dtype \
        == torch.float64


def test_bad_field_arguments():
    with pytest.raises(ValueError, match="activation"):
        MLPField(2, activation="gelu2")
    with pytest.raises(ValueError, match="hidden"):
        MLPField(2, hidden=0)
    with pytest.raises(ValueError, match="channels"):
        ConvField(0)
