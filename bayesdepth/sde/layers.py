"""Time-conditioned layers for vector fields ``f(t, h)``: the time as one more input.

A field of an SDE-BNN block computes ``dh/dt`` from ``(t, h)`` or from ``h`` alone. These layers
make plain PyTorch fields time dependent the way the SDE-BNN and neural-ODE papers do
(Chen et al. 2018; Xu et al. 2022, their ``ConcatConv2D``): the scalar time ``t`` is appended to
the input as one more feature (linear layers) or one more constant channel (convolutions),

    ConcatLinear(h)(t)    = W [h, t] + b,
    ConcatConv(h)(t)      = conv([h, t 1_{H x W}]),

and :class:`TimeSequential` chains them with ordinary layers, passing ``t`` to the layers that
take it (:func:`takes_time`). A layer takes the time when it has an attribute
``takes_time = True`` (every layer here) or, for other modules, when its ``forward`` has two
required positional arguments ``(t, h)``.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from .._validation import check_positive_int
from ..serialization import Recorded

__all__ = ["ConcatConv1d", "ConcatConv2d", "ConcatLinear", "TimeSequential", "takes_time"]


def takes_time(module: nn.Module) -> bool:
    """Whether ``module`` is called as ``module(t, h)`` (True) or ``module(h)`` (False).

    An explicit ``takes_time`` attribute decides; otherwise the number of required positional
    arguments of ``forward``: two means ``(t, h)``.
    """
    flag = getattr(module, "takes_time", None)
    if flag is not None:
        return bool(flag)
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):  # a builtin forward: assume h only
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in kinds and p.default is inspect.Parameter.empty]
    return len(required) >= 2


def _time_channel(t: torch.Tensor, h: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """``t`` broadcast to the shape of ``h`` with one channel at ``channel_dim``."""
    shape = list(h.shape)
    shape[channel_dim] = 1
    return torch.as_tensor(t, dtype=h.dtype, device=h.device).expand(shape)


class ConcatLinear(Recorded, nn.Linear):
    """``W [h, t] + b``: a linear layer whose input is ``h`` with the time appended.

    Args:
        in_features: size of ``h``'s last dimension.
        out_features: outputs.
    """

    takes_time = True

    def __init__(self, in_features: int, out_features: int) -> None:
        in_features = check_positive_int("in_features", in_features)
        super().__init__(in_features + 1, check_positive_int("out_features", out_features))

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(torch.cat([h, _time_channel(t, h, -1)], dim=-1))


class ConcatConv2d(Recorded, nn.Module):
    """A 2-D convolution (or transposed convolution) over the channels ``[h, t]``.

    Inputs ``(n, C, H, W)``; ``padding`` defaults to ``kernel_size // 2`` (size preserving at
    stride 1). ``transpose=True`` with ``stride=2`` and ``output_padding=1`` doubles the size.
    """

    takes_time = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int | None = None, transpose: bool = False,
                 output_padding: int = 0) -> None:
        super().__init__()
        in_channels = check_positive_int("in_channels", in_channels)
        out_channels = check_positive_int("out_channels", out_channels)
        kernel_size = check_positive_int("kernel_size", kernel_size)
        padding = kernel_size // 2 if padding is None else padding
        if transpose:
            self.conv: nn.Module = nn.ConvTranspose2d(
                in_channels + 1, out_channels, kernel_size, stride, padding, output_padding)
        else:
            self.conv = nn.Conv2d(in_channels + 1, out_channels, kernel_size, stride, padding)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([h, _time_channel(t, h, -3)], dim=-3))


class ConcatConv1d(Recorded, nn.Module):
    """A 1-D convolution over the channels ``[h, t]`` of sequences ``(n, C, L)``.

    ``padding`` defaults to ``kernel_size // 2`` (length preserving for odd kernels).
    """

    takes_time = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 padding: int | None = None, dilation: int = 1) -> None:
        super().__init__()
        in_channels = check_positive_int("in_channels", in_channels)
        out_channels = check_positive_int("out_channels", out_channels)
        kernel_size = check_positive_int("kernel_size", kernel_size)
        dilation = check_positive_int("dilation", dilation)
        padding = dilation * (kernel_size // 2) if padding is None else padding
        self.conv = nn.Conv1d(in_channels + 1, out_channels, kernel_size, padding=padding,
                              dilation=dilation)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([h, _time_channel(t, h, -2)], dim=-2))


class TimeSequential(nn.Sequential):
    """``nn.Sequential`` that passes the time to the layers that take it.

    ``TimeSequential(ConcatLinear(d, m), nn.Tanh(), ConcatLinear(m, d))(t, h)`` computes
    ``L2(t, tanh(L1(t, h)))``. Build it from saveable layers (every layer here, ``torch.nn``
    activations are recorded by the field that builds it) or wrap it in your own ``@saveable``
    field class to save the model.
    """

    takes_time = True

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__(*layers)
        self._timed = tuple(takes_time(layer) for layer in layers)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer, timed in zip(self, self._timed):
            h = layer(t, h) if timed else layer(h)
        return h
