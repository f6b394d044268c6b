"""An opt-in weight-path simulator: the Euler–Maruyama chain as one ``torch.compile`` d loop.

The default simulator (:func:`~bayesdepth.sde.paths.sdeint_euler`) runs torchsde's solver, whose
per-step Python work (its loop, time arithmetic, the Brownian query) costs about as much as the
drift itself on small paths (docs/sdebnn.md has the measured table). :class:`CompiledEuler`
computes the same chain (docs/theory.md §8.10)

    w_{k+1} = w_k + f(t_k, w_k) dt_k + sigma sqrt(dt_k) eps_k,   k = 0..K-1,

from the same standard normal increments ``eps`` (drawn by :class:`~bayesdepth.sde.EulerPath`
and *passed in*: nothing random happens inside the compiled code), as one compiled graph for the
forward and one for the backward pass. The values agree with torchsde's to rounding (the compiler
may fuse the multiply-adds); the path's density is evaluated on the returned values either way.

Use it as ``SDEBNNBlock(..., simulator=CompiledEuler())``. The first call compiles (seconds to a
minute for K = 40); a new drift module, batch size or dtype compiles again.
"""

from __future__ import annotations

import torch
from torch import nn

from .._compile import compile_function

__all__ = ["CompiledEuler"]


def _chain(drift: nn.Module, grid: torch.Tensor, scale: torch.Tensor, w0: torch.Tensor,
           eps: torch.Tensor) -> torch.Tensor:
    dts = grid.diff()
    states, w = [w0], w0
    for k in range(eps.shape[0]):
        w = w + drift(grid[k], w) * dts[k] + scale[k] * eps[k]
        states.append(w)
    return torch.stack(states)


class CompiledEuler:
    """Simulator ``(drift, sigma, grid, w0, eps) -> (K+1, batch, d)``, compiled (see above).

    Args:
        mode: ``torch.compile`` mode (default None: the default mode).
    """

    def __init__(self, mode: str | None = None) -> None:
        self.mode = mode
        self._compiled = None

    def __call__(self, drift: nn.Module, sigma: float, grid: torch.Tensor, w0: torch.Tensor,
                 eps: torch.Tensor) -> torch.Tensor:
        if self._compiled is None:
            self._compiled = compile_function(_chain, self.mode)
        scale = sigma * grid.diff().sqrt()
        return self._compiled(drift, grid, scale, w0, eps)

    def __repr__(self) -> str:
        return f"CompiledEuler(mode={self.mode!r})"
