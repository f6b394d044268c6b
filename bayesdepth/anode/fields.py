"""Vector fields ``f(t, h)`` for (augmented) neural ODEs, time-dependent by concatenating ``t``.

Following Dupont, Doucet, Teh (2019): an MLP for vectors, and for images a small convolutional
net whose state has ``c + p`` channels (``p`` augmented channels) with ``t`` appended as one
more constant input channel to every convolution (docs/theory.md §10.1).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from .._validation import check_choice, check_positive_int
from ..serialization import Recorded

__all__ = ["ConvField", "MLPField"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus, "elu": nn.ELU}


class _TimeConcatLinear(nn.Linear):
    """``W [h, t] + b``: a linear layer that sees the time as one more input feature."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features + 1, out_features)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        tt = t.to(h).expand(*h.shape[:-1], 1)
        return super().forward(torch.cat([h, tt], dim=-1))


class MLPField(Recorded, nn.Module):
    """``f(t, h) = L_K([... act(L_1([h, t])) ..., t])``, with ``t`` fed to every layer.

    Args:
        dim: state dimension (input features plus augmented dimensions).
        hidden: width of the hidden layers.
        num_layers: number of linear layers (>= 1).
        activation: ``relu`` (the paper's), ``tanh``, ``softplus`` or ``elu``.
    """

    def __init__(self, dim: int, hidden: int = 32, num_layers: int = 2, activation: str = "relu"):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        hidden = check_positive_int("hidden", hidden)
        num_layers = check_positive_int("num_layers", num_layers)
        check_choice("activation", activation, _ACTIVATIONS)
        sizes = [dim] + [hidden] * (num_layers - 1) + [dim]
        self.layers = nn.ModuleList(
            _TimeConcatLinear(a, b) for a, b in itertools.pairwise(sizes)
        )
        self.activation = _ACTIVATIONS[activation]()

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            h = layer(t, h)
            if i < len(self.layers) - 1:
                h = self.activation(h)
        return h


class _TimeConcatConv(nn.Conv2d):
    """3x3 convolution (padding 1) over the channels ``[h, t]``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__(in_channels + 1, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        tt = t.to(h).expand(h.shape[0], 1, *h.shape[2:])
        return super().forward(torch.cat([h, tt], dim=1))


class ConvField(Recorded, nn.Module):
    """Convolutional field on images of ``channels`` channels (input plus augmented channels).

    Three time-concatenated convolutions, ``channels -> hidden -> hidden -> channels``: 1x1, 3x3,
    1x1 with ReLU between them, as in the paper's image experiments.

    Args:
        channels: state channels ``c + p``.
        hidden: hidden channels (the paper uses 92 for a NODE and 64 for an ANODE on MNIST).
    """

    def __init__(self, channels: int, hidden: int = 16):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        hidden = check_positive_int("hidden", hidden)
        self.convs = nn.ModuleList(
            [
                _TimeConcatConv(channels, hidden, 1),
                _TimeConcatConv(hidden, hidden, 3),
                _TimeConcatConv(hidden, channels, 1),
            ]
        )
        self.activation = nn.ReLU()

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            h = conv(t, h)
            if i < len(self.convs) - 1:
                h = self.activation(h)
        return h
