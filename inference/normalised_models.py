r"""Scale-invariant test models: a normalised linear model and a small normalised network.

A loss is *scale-invariant* when ``L(c theta) = L(theta)`` for every ``c > 0``, as for any network
followed by a normalisation layer. Then ``theta . grad L(theta) = 0`` and
``grad L(c theta) = grad L(theta) / c`` (docs/theory.md §14.1), and the same holds for every
per-example and minibatch loss. Two models have this property exactly (no ``eps`` in the
normalisation):

- :func:`normalised_linear`: ``f(theta; x) = x . theta / |theta|``;
- :class:`NormalisedMLP`: ``f(W; x) = v . tanh(LN(W x)) / sqrt(width)``, a hidden layer followed by
  a layer normalisation without affine parameters (``LN(z) = (z - mean z) / sd z``) and a fixed
  random read-out ``v``.

:class:`ScaleInvariantRegression` is the mean squared error of such a model on minibatches, in the
mean-loss convention of the SGD theory (docs/theory.md §0.1), for
:func:`bayesdepth.inference.sample`.
:func:`teacher_data` draws data from a model with random "teacher" parameters plus label noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from bayesdepth._validation import check_positive, check_positive_int, check_tensor

from .sgd_potentials import MinibatchRegression

__all__ = [
    "NormalisedMLP",
    "ScaleInvariantRegression",
    "TeacherData",
    "normalised_linear",
    "teacher_data",
]

F64 = torch.float64
Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def normalised_linear(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x . theta / |theta|`` for params (..., d) and inputs (..., d), broadcast over the batch."""
    return (x * params).sum(-1) / params.norm(dim=-1)


class NormalisedMLP:
    r"""``f(W; x) = v . tanh(LN(W x)) / sqrt(width)``: scale-invariant in the hidden weights ``W``.

    ``LN(z) = (z - mean z) / sd z`` over the ``width`` hidden units (layer normalisation without
    ``eps`` or affine parameters), so ``f(c W; x) = f(W; x)`` for ``c > 0``. The read-out
    ``v ~ N(0, I)`` is fixed (drawn from ``seed``), as the last layer of the scale-invariant nets
    of Li, Malladi, Arora (2021). Parameters are ``W`` flattened: ``num_params = width * in``.

    Args:
        in_features: input dimension.
        width: number of hidden units (>= 2).
        seed: seed of the read-out.
    """

    def __init__(self, in_features: int, width: int = 16, seed: int = 0) -> None:
        self.in_features = check_positive_int("in_features", in_features)
        self.width = check_positive_int("width", width, minimum=2)
        gen = torch.Generator().manual_seed(int(seed))
        self.readout = torch.randn(self.width, generator=gen, dtype=F64)

    @property
    def num_params(self) -> int:
        return self.width * self.in_features

    def __call__(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Predictions for params (..., num_params) and inputs (..., in), broadcast."""
        w = params.unflatten(-1, (self.width, self.in_features))
        z = (w @ x.unsqueeze(-1)).squeeze(-1)
        z = z - z.mean(-1, keepdim=True)
        z = z / z.pow(2).mean(-1, keepdim=True).sqrt()
        v = self.readout.to(device=z.device, dtype=z.dtype)
        return torch.tanh(z) @ v / math.sqrt(self.width)

    def __repr__(self) -> str:
        return f"NormalisedMLP(in_features={self.in_features}, width={self.width})"


class TeacherData(NamedTuple):
    """What :func:`teacher_data` returns (float64)."""

    x: torch.Tensor  #: (n, in) inputs, standard normal
    y: torch.Tensor  #: (n,) targets ``f(theta*; x) + noise_scale * eps``
    teacher: torch.Tensor  #: ``theta*``, the teacher's parameters


def teacher_data(
    model: Model,
    num_params: int,
    num_points: int = 64,
    in_features: int = 10,
    noise_scale: float = 1.0,
    seed: int = 0,
) -> TeacherData:
    """``x ~ N(0, I)``, ``theta* ~ N(0, I)``, ``y = model(theta*, x) + noise_scale * N(0, 1)``.

    For :func:`normalised_linear` (``num_params = in_features``) this is linear regression on a
    unit-norm teacher direction.
    """
    num_params = check_positive_int("num_params", num_params)
    num_points = check_positive_int("num_points", num_points)
    in_features = check_positive_int("in_features", in_features)
    noise_scale = check_positive("noise_scale", noise_scale, allow_zero=True)
    gen = torch.Generator().manual_seed(int(seed))
    teacher = torch.randn(num_params, generator=gen, dtype=F64)
    x = torch.randn(num_points, in_features, generator=gen, dtype=F64)
    y = model(teacher, x) + noise_scale * torch.randn(num_points, generator=gen, dtype=F64)
    return TeacherData(x, y, teacher)


class ScaleInvariantRegression(MinibatchRegression):
    r"""``L_B(theta) = (1/B) sum_{b in batch} (f(theta; x_b) - y_b)^2 / 2`` of a scale-invariant f.

    The mean minibatch loss (the SGD convention, docs/theory.md §0.1), one batch per chain and
    gradient call; ``f(c theta; x) = f(theta; x)`` makes every ``L_B`` scale-invariant, so every
    minibatch gradient is orthogonal to ``theta`` (docs/theory.md §14.1). Parameters are a
    ``(chains, num_params)`` float64 tensor; :meth:`init` draws ``N(0, I)`` directions.

    Args:
        model: ``model(params, x) -> prediction``, broadcasting over leading dimensions
            (:func:`normalised_linear`, a :class:`NormalisedMLP`).
        x: (n, in) inputs.
        y: (n,) targets.
        num_params: the length of the parameter vector.
        batch_size: ``B``.
        replacement: batches drawn iid with replacement (default) or without.
    """

    def __init__(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        num_params: int,
        batch_size: int,
        replacement: bool = True,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        check_tensor("x", x, ndim=2, floating=True)
        super().__init__(x, y, check_positive_int("batch_size", batch_size), replacement, 0.0)
        self.model = model
        self.num_params = check_positive_int("num_params", num_params)

    def init(self, num_chains: int, generator: torch.Generator | None) -> torch.Tensor:
        """Standard normal parameters of shape (chains, num_params)."""
        shape = (num_chains, self.num_params)
        return torch.randn(shape, generator=generator, dtype=F64, device=self.device)

    def example_loss(self, params: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One example's loss ``(f(theta; x) - y)^2 / 2`` (for ``noise.per_example_grads``)."""
        return 0.5 * (self.model(params, x) - y) ** 2

    def __call__(self, params: torch.Tensor, batch: Any = None) -> tuple[torch.Tensor, Any]:
        xb, yb = self._data(params.shape[0], batch)
        return self.example_loss(params.unsqueeze(-2), xb, yb).mean(-1), None
