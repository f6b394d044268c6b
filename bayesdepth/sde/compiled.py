"""An opt-in weight-path simulator: the Euler–Maruyama chain as one ``torch.compile`` d loop.

:class:`CompiledEuler` compiles the default simulator :func:`~bayesdepth.sde.paths.euler_chain`,
the chain (docs/theory.md §8.10)

    w_{k+1} = w_k + f(t_k, w_k) dt_k + sigma sqrt(dt_k) eps_k,   k = 0..K-1,

from the same standard normal increments ``eps`` (drawn by :class:`~bayesdepth.sde.EulerPath`
and *passed in*: nothing random happens inside the compiled code), as one compiled graph for the
forward and one for the backward pass, which removes the per-operation dispatch of the eager
loop (docs/sdebnn.md has the measured table). The values agree with the eager chain's to
rounding (the compiler may fuse the multiply-adds); the path's density is evaluated on the
returned values either way.

Use it as ``SDEBNNBlock(..., simulator=CompiledEuler())``. The first call compiles (seconds to a
minute for K = 40); a new drift module, batch size or dtype compiles again.
"""

from __future__ import annotations

import torch
from torch import nn

from .._compile import compile_function
from .paths import euler_chain

__all__ = ["CompiledEuler"]


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
            self._compiled = compile_function(euler_chain, self.mode)
        return self._compiled(drift, sigma, grid, w0, eps)

    def __repr__(self) -> str:
        return f"CompiledEuler(mode={self.mode!r})"
