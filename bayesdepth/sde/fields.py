"""Ready-made fields ``f_h`` for SDE-BNN blocks: plain ``nn.Module`` s whose weights become w(t).

A field computes ``dh/dt`` from ``(t, h)`` (time conditioned, built from
:mod:`~bayesdepth.sde.layers`) or from ``h``; :class:`~bayesdepth.sde.SDEBNNBlock` turns all (or
a named subset) of its parameters into the weight path ``w(t)`` (Xu et al. 2022, equation (4);
docs/theory.md §8). Any ``nn.Module`` with the same contract works; these cover the paper's
models and the common layouts:

- :class:`MLPField`: ``h (n, d) -> tanh(W1 h + b1) -> W2 . + b2``, the original block's field;
- :class:`Conv2dField`: two 3x3 convolutions ``C -> hidden -> C`` on images ``(n, C, H, W)``;
- :class:`Conv1dField`: two 1-D convolutions on sequences ``(n, C, L)``;
- :class:`ResNetField`: the residual branch of a bottleneck block, 3x3 -> 1x1 -> 3x3, time
  conditioned, softplus (the paper's CIFAR-10 and MNIST field).

:func:`make_field` maps the shorthand strings of the ready-made models (``"mlp"``, ``"conv"``)
onto these objects, in one place.
"""

from __future__ import annotations

from torch import nn

from .._validation import check_choice, check_positive_int
from ..serialization import Recorded
from .layers import ConcatConv1d, ConcatConv2d, ConcatLinear, TimeSequential

__all__ = ["ACTIVATIONS", "Conv1dField", "Conv2dField", "MLPField", "ResNetField", "make_field"]

#: activation names accepted by the ready-made fields
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh, "softplus": nn.Softplus, "relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU,
}


def _activation(name: str) -> nn.Module:
    return ACTIVATIONS[check_choice("activation", name, ACTIVATIONS)]()


def _layers(layers: list[nn.Module], time: bool) -> nn.Sequential:
    if not isinstance(time, bool):
        raise TypeError(f"time must be True or False, got {time!r}")
    return TimeSequential(*layers) if time else nn.Sequential(*layers)


class _Field(Recorded, nn.Module):
    """A field that is a sequence of layers ``self.net``, time conditioned or not."""

    takes_time: bool

    def __init__(self, layers: list[nn.Module], time: bool) -> None:
        super().__init__()
        self.takes_time = time
        self.net = _layers(layers, time)

    def forward(self, *args):
        return self.net(*args)


class MLPField(_Field):
    """``f(h) = W2 tanh(W1 h + b1) + b2`` on states ``(n, dim)`` (``dim -> hidden -> dim``).

    With ``time=True`` both layers are :class:`~bayesdepth.sde.layers.ConcatLinear` and the
    field is called as ``f(t, h)``. Parameters ``net.0.weight, net.0.bias, net.2.weight,
    net.2.bias`` (PyTorch's ``nn.Linear`` initialisation).
    """

    def __init__(self, dim: int, hidden: int | None = None, activation: str = "tanh",
                 time: bool = False) -> None:
        dim = check_positive_int("dim", dim)
        hidden = dim if hidden is None else check_positive_int("hidden", hidden)
        layer = ConcatLinear if time else nn.Linear
        super().__init__([layer(dim, hidden), _activation(activation), layer(hidden, dim)], time)
        self.dim, self.hidden = dim, hidden


def _conv(dims: int, time: bool, c_in: int, c_out: int, k: int) -> nn.Module:
    """A size-preserving ``k``-wide convolution in 1 or 2 spatial dims, over ``[h, t]`` or ``h``."""
    if time:
        return (ConcatConv1d if dims == 1 else ConcatConv2d)(c_in, c_out, k)
    return (nn.Conv1d if dims == 1 else nn.Conv2d)(c_in, c_out, k, padding=k // 2)


class _TwoConvField(_Field):
    """``conv (channels -> hidden) -> activation -> conv (hidden -> channels)``."""

    dims: int

    def __init__(self, channels: int, hidden: int | None, kernel_size: int, activation: str,
                 time: bool) -> None:
        channels = check_positive_int("channels", channels)
        hidden = channels if hidden is None else check_positive_int("hidden", hidden)
        k = check_positive_int("kernel_size", kernel_size)
        if k % 2 == 0:
            raise ValueError(f"kernel_size must be odd (size-preserving padding), got {k}")
        convs = [_conv(self.dims, time, channels, hidden, k),
                 _activation(activation), _conv(self.dims, time, hidden, channels, k)]
        super().__init__(convs, time)
        self.channels, self.hidden = channels, hidden


class Conv2dField(_TwoConvField):
    """Two ``kernel_size`` convolutions ``channels -> hidden -> channels`` with an activation.

    Images ``(n, channels, H, W)``; padding keeps the size (odd ``kernel_size``).
    ``time=True`` uses :class:`~bayesdepth.sde.layers.ConcatConv2d` (the time as one more input
    channel).
    """

    dims = 2

    def __init__(self, channels: int, hidden: int | None = None, kernel_size: int = 3,
                 activation: str = "tanh", time: bool = False) -> None:
        super().__init__(channels, hidden, kernel_size, activation, time)


class Conv1dField(_TwoConvField):
    """Two 1-D convolutions ``channels -> hidden -> channels`` on sequences ``(n, channels, L)``.

    Padding keeps the length (odd ``kernel_size``); ``time=True`` (default) appends the time as
    one more input channel of each convolution.
    """

    dims = 1

    def __init__(self, channels: int, hidden: int | None = None, kernel_size: int = 3,
                 activation: str = "tanh", time: bool = True) -> None:
        super().__init__(channels, hidden, kernel_size, activation, time)


class ResNetField(_Field):
    """The residual branch of a bottleneck ResNet block as a time-conditioned field.

    ``3x3 conv (channels -> hidden) -> act -> 1x1 conv (hidden -> hidden) -> act -> 3x3 conv
    (hidden -> channels)``, each convolution seeing ``t`` as one more channel; the Euler step
    ``h + dt f(t, h)`` is the residual connection. This is the field of the paper's multi-scale
    image models (block type 1 of the reference code, softplus). Images ``(n, channels, H, W)``.
    """

    def __init__(self, channels: int, hidden: int = 64, activation: str = "softplus",
                 time: bool = True) -> None:
        channels = check_positive_int("channels", channels)
        hidden = check_positive_int("hidden", hidden)
        layers = [_conv(2, time, channels, hidden, 3), _activation(activation),
                  _conv(2, time, hidden, hidden, 1), _activation(activation),
                  _conv(2, time, hidden, channels, 3)]
        super().__init__(layers, time)
        self.channels, self.hidden = channels, hidden


def make_field(field: str | nn.Module, dim: int, hidden: int | None) -> nn.Module:
    """A field object: ``field`` itself if it is a module, else the ready-made one it names.

    ``"mlp"``: :class:`MLPField` ``(dim, hidden)``; ``"conv"``: :class:`Conv2dField`
    ``(dim, hidden)`` (``dim`` channels).
    """
    if isinstance(field, nn.Module):
        return field
    check_choice("field", field, ("mlp", "conv"))
    return MLPField(dim, hidden) if field == "mlp" else Conv2dField(dim, hidden)
