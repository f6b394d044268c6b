"""The augmented neural ODE (Dupont, Doucet, Teh, "Augmented Neural ODEs", NeurIPS 2019).

    h(0) = [x, 0_p],    dh/dt = f(h(t), t),  t in [0, T],    y = W h(T) + b.

Appending ``p`` zeros lets the flow move points through extra dimensions, so it can represent
maps a neural ODE cannot: the flow of an ODE is a homeomorphism of the input space, so
trajectories never cross, so no NODE on the line maps ``-1 -> 1`` and ``1 -> -1``, and no NODE
on the plane pulls a disc out of the annulus that surrounds it. ``augment_dim = 0`` is a plain
neural ODE (Chen et al. 2018). Vectors are augmented with zero features, images (``C x H x W``)
with zero channels; augmentation always acts on dimension 1 (docs/theory.md §10.1).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .._validation import check_choice, check_positive_int, check_rows, check_shape, check_tensor
from ..seeding import seeded
from ..serialization import Recorded
from .fields import ConvField, MLPField
from .solver import ODESolver, SolveCost

__all__ = ["AugmentedNeuralODE"]


class AugmentedNeuralODE(Recorded, nn.Module):
    """Augmented neural ODE with a linear (or identity) readout.

    Args:
        in_shape: input features ``d`` (vectors of shape (n, d), MLP field) or an image shape
            ``(C, H, W)`` (inputs (n, C, H, W), convolutional field).
        out_features: outputs (classes for classification, 1 for scalar regression).
        augment_dim: ``p >= 0`` zero features (channels for images) appended to the input.
        hidden: width (hidden channels for images) of the default vector field.
        num_layers: layers of the default MLP field.
        field: a vector field module ``f(t, h)`` to use instead of the default one; it must
            map states of shape (n, d + p) (or (n, C + p, H, W)) to the same shape.
        solver: an :class:`ODESolver`; default ``ODESolver()``: dopri5, rtol = atol = 1e-3,
            direct backpropagation.
        readout: ``"linear"`` (``y = W h(T) + b``) or ``"identity"`` (``y`` = the first
            ``out_features`` coordinates of the flattened ``h(T)``; no parameters, as in the
            paper's 1-D example, where a learned sign flip would otherwise hide the NODE's
            limitation).
        seed: seeds the initial weights (None: torch's global random state).

    Example:
        >>> model = AugmentedNeuralODE(2, 2, augment_dim=1)
        >>> cost = SolveCost()
        >>> logits = model(x, cost=cost)        # cost.forward_nfe is now set
    """

    def __init__(
        self,
        in_shape: int | tuple[int, ...],
        out_features: int,
        augment_dim: int = 0,
        *,
        hidden: int = 32,
        num_layers: int = 2,
        field: nn.Module | None = None,
        solver: ODESolver | None = None,
        readout: str = "linear",
        seed: int | None = None,
    ):
        super().__init__()
        with seeded(seed):
            self._build(in_shape, out_features, augment_dim, hidden, num_layers, field, solver,
                        readout)

    def _build(self, in_shape, out_features, augment_dim, hidden, num_layers, field, solver,
               readout) -> None:
        self.in_shape = check_shape("in_shape", in_shape, ranks=(1, 3))
        self.out_features = check_positive_int("out_features", out_features)
        self.augment_dim = check_positive_int("augment_dim", augment_dim, minimum=0)
        check_choice("readout", readout, ("linear", "identity"))
        if solver is None:
            solver = ODESolver()
        if not isinstance(solver, ODESolver):
            raise TypeError(f"solver must be an ODESolver, got {type(solver).__name__}")
        self.solver = solver
        state = (self.in_shape[0] + self.augment_dim, *self.in_shape[1:])
        self.state_shape = state
        if field is None:
            field = (
                MLPField(state[0], hidden, num_layers) if len(state) == 1
                else ConvField(state[0], hidden)
            )
        if not isinstance(field, nn.Module):
            raise TypeError(f"field must be an nn.Module f(t, h), got {type(field).__name__}")
        self.field = field
        size = 1
        for s in state:
            size *= s
        if readout == "linear":
            self.readout: nn.Module | None = nn.Linear(size, self.out_features)
        else:
            if self.out_features > size:
                raise ValueError(
                    f"readout='identity' needs out_features <= state size {size}, "
                    f"got {self.out_features}"
                )
            self.readout = None

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """``h(0) = [x, 0_p]`` after checking the input's shape and values."""
        check_rows("x", check_tensor("x", x, ndim=1 + len(self.in_shape), floating=True))
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(
                f"x must have shape (n, {', '.join(map(str, self.in_shape))}) for this model, "
                f"got {tuple(x.shape)}"
            )
        if self.augment_dim == 0:
            return x
        zeros = x.new_zeros(x.shape[0], self.augment_dim, *x.shape[2:])
        return torch.cat([x, zeros], dim=1)

    def flow(
        self,
        x: torch.Tensor,
        times: torch.Tensor | None = None,
        *,
        cost: SolveCost | None = None,
        params: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Final state ``h(T)`` (n, *state_shape), or the trajectory at ``times``.

        ``params`` replaces the field's parameters (keys as in ``field.named_parameters()``).
        """
        h0 = self.augment(x)
        return self.solver.integrate(self.field, h0, times=times, params=params, cost=cost)

    def head(
        self, h: torch.Tensor, params: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Readout of a final state ``h(T)``: (n, out_features)."""
        h = h.flatten(1)
        if self.readout is None:
            return h[:, : self.out_features]
        if params is None:
            return self.readout(h)
        return torch.nn.functional.linear(h, params["weight"], params["bias"])

    def forward(self, x: torch.Tensor, cost: SolveCost | None = None) -> torch.Tensor:
        """Outputs ``W h(T) + b`` for inputs ``x``; NFE are added to ``cost`` if given."""
        return self.head(self.flow(x, cost=cost))


