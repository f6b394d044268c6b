"""How a block integrates its hidden state on the grid, given a sampled weight path.

Given the path ``w_0, ..., w_K`` on the grid ``t_0 < ... < t_K`` (docs/theory.md §8.5, §8.11),
the hidden state follows ``dh/dt = f_h(t, h; w(t))``, integrated on the same grid:

    euler:     h_{k+1} = h_k + dt_k f(t_k, h_k; w_k)
    heun:      h_{k+1} = h_k + dt_k / 2 [f(t_k, h_k; w_k) + f(t_{k+1}, h_k + dt_k f_k; w_{k+1})]
    midpoint:  h_{k+1} = h_k + dt_k f(t_k + dt_k / 2, h_k + dt_k / 2 f_k; (w_k + w_{k+1}) / 2)

:class:`StateSolver` is the configuration (validated once, here): the method, optional gradient
checkpointing (the loop is cut into segments of ``checkpoint_every`` grid steps; each segment
keeps only its input state for the backward pass and is recomputed there, so memory grows with
``K / n + n`` instead of ``K`` states, at the cost of one more forward pass; Chen et al. 2016,
"Training Deep Nets with Sublinear Memory Cost"), and an opt-in ``torch.compile`` of a segment
(all its inputs, the path's weights included, are passed in; nothing random happens inside).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from .._compile import compile_function
from .._validation import check_choice, check_positive_int

__all__ = ["METHODS", "StateSolver"]

#: hidden-state methods on the path values
METHODS = ("euler", "heun", "midpoint")

#: ``field(t, h, weights) -> dh/dt`` with ``weights`` one grid time's ``{name: tensor}``
Field = Callable[[torch.Tensor, torch.Tensor, dict], torch.Tensor]


def _segment(field: Field, method: str, h: torch.Tensor, ts: torch.Tensor, dts: torch.Tensor,
             weights: dict[str, torch.Tensor]) -> torch.Tensor:
    """Steps ``j = 0..len(dts)-1`` from ``h`` at ``ts[0]``; ``weights[name][j]`` at ``ts[j]``."""
    for j in range(dts.shape[0]):
        w, dt = {n: v[j] for n, v in weights.items()}, dts[j]
        f0 = field(ts[j], h, w)
        if method == "euler":
            h = h + dt * f0
        elif method == "heun":
            w1 = {n: v[j + 1] for n, v in weights.items()}
            h = h + 0.5 * dt * (f0 + field(ts[j + 1], h + dt * f0, w1))
        else:
            mid = {n: 0.5 * (v[j] + v[j + 1]) for n, v in weights.items()}
            h = h + dt * field(ts[j] + 0.5 * dt, h + 0.5 * dt * f0, mid)
    return h


@dataclass(frozen=True)
class StateSolver:
    """How the hidden state is integrated on the grid (see the module docstring).

    Args:
        method: ``"euler"`` (default), ``"heun"`` or ``"midpoint"``.
        checkpoint_every: recompute the loop in segments of this many grid steps during the
            backward pass instead of storing every state (None: store everything).
        compile: run each segment (the whole loop without checkpointing) as one
            ``torch.compile`` d function; the first call compiles (seconds to a minute), a new
            batch size or dtype compiles again. For plain ``nn.Module`` fields.

    A string is shorthand for the method: ``SDEBNNBlock(..., solver="heun")``.
    """

    method: str = "euler"
    checkpoint_every: int | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        if self.checkpoint_every is not None:
            check_positive_int("checkpoint_every", self.checkpoint_every)
        if not isinstance(self.compile, bool):
            raise TypeError(f"compile must be True or False, got {self.compile!r}")

    @classmethod
    def of(cls, solver: StateSolver | str) -> StateSolver:
        """``solver`` itself, or the solver of that method name."""
        if isinstance(solver, cls):
            return solver
        if isinstance(solver, str):
            return cls(method=solver)
        raise TypeError(
            f"solver must be a StateSolver or one of {', '.join(map(repr, METHODS))}, "
            f"got {solver!r}"
        )

    def integrate(self, field: Field, h: torch.Tensor, grid: torch.Tensor,
                  weights: dict[str, torch.Tensor], cache: dict) -> torch.Tensor:
        """``h(t_K)`` from ``h(t_0)``; ``weights[name]`` has the grid as its first dim (K+1).

        ``field`` should be the same callable on every call (a compiled segment is reused
        while it is); ``cache`` holds the compiled segment between calls (one per block).
        """
        steps = grid.shape[0] - 1
        dts = grid.diff()
        size = steps if self.checkpoint_every is None else min(self.checkpoint_every, steps)
        run = _segment
        if self.compile:
            run = cache.get("segment")
            if run is None:
                run = cache["segment"] = compile_function(_segment)
        for start in range(0, steps, size):
            stop = min(start + size, steps)
            args = (field, self.method, h, grid[start:stop + 1], dts[start:stop],
                    {n: v[start:stop + 1] for n, v in weights.items()})
            if self.checkpoint_every is None:
                h = run(*args)
            else:
                h = checkpoint(run, *args, use_reentrant=False)
        return h
