r"""Preconditioned SGLD with an RMSprop preconditioner (Li, Chen, Carlson, Carin 2016).

.. math::

    V \leftarrow a V + (1 - a)\,\bar g \odot \bar g, \qquad
    G = \mathrm{diag}\!\left(\frac{1}{\lambda + \sqrt V}\right), \qquad
    \theta \leftarrow \theta - \frac{\epsilon}{2}\,G\,\nabla\hat U(\theta)
        + N(0, \epsilon T G),

with :math:`\bar g = \nabla\hat U(\theta)` (the minibatch potential's gradient), step size
:math:`\epsilon` (``lr``), decay :math:`a` (``alpha``, 0.99) and :math:`\lambda` (``eps``, 1e-5).
The :math:`\Gamma(\theta)` correction term is dropped, as in the paper's experiments. With a
frozen preconditioner (``adapt=False``) on a Gaussian target of precisions :math:`p_i` the exact
stationary variances are :math:`1 / (p_i (1 - \epsilon g_i p_i / 4))` (docs/theory.md §5.4).

Reference: C. Li, C. Chen, D. Carlson, L. Carin, "Preconditioned stochastic gradient Langevin
dynamics for deep neural networks", AAAI 2016.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from bayesdepth._validation import check_positive

from ._tree import Params, randn_like, tree_map
from .base import GradFn, Sampler, SamplerState
from .schedules import Schedule

__all__ = ["PSGLD", "PSGLDState"]


@dataclass(frozen=True)
class PSGLDState(SamplerState):
    """pSGLD state: parameters and the running average ``square_avg`` (V) of squared gradients."""

    square_avg: Params | None = None


class PSGLD(Sampler):
    """pSGLD over K chains.

    Args:
        lr: step size ``epsilon`` > 0 (a number or a schedule).
        temperature: ``T`` >= 0.
        alpha: RMSprop decay ``a`` in [0, 1).
        eps: ``lambda`` > 0 added to ``sqrt(V)``.
        adapt: update ``V`` every step; ``False`` keeps the preconditioner of the state frozen.
    """

    injects_noise = True

    def __init__(
        self,
        lr: float | Schedule,
        temperature: float | Schedule = 1.0,
        alpha: float = 0.99,
        eps: float = 1e-5,
        adapt: bool = True,
    ) -> None:
        super().__init__(lr, temperature)
        self.alpha = check_positive("alpha", alpha, allow_zero=True)
        if self.alpha >= 1:
            raise ValueError(f"alpha must lie in [0, 1), got {alpha!r}")
        self.eps = check_positive("eps", eps)
        self.adapt = bool(adapt)

    def init(self, params: Params) -> PSGLDState:
        super().init(params)
        return PSGLDState(params=params, step=0, square_avg=tree_map(torch.zeros_like, params))

    def preconditioner(self, state: PSGLDState) -> Params:
        """The diagonal ``G = 1 / (eps + sqrt(V))`` of a state."""
        return tree_map(lambda v: 1.0 / (self.eps + v.sqrt()), state.square_avg)

    def step(
        self, state: PSGLDState, grad_fn: GradFn, generator: torch.Generator | None = None
    ) -> tuple[PSGLDState, dict[str, Any]]:
        lr, temperature = self._hyper(state.step)
        grad, potential = self._grad(grad_fn, state.params, generator)
        square_avg = state.square_avg
        if self.adapt:
            a = self.alpha
            square_avg = tree_map(lambda v, g: a * v + (1 - a) * g * g, square_avg, grad)
        new_state = PSGLDState(params=state.params, step=state.step + 1, square_avg=square_avg)
        precond = self.preconditioner(new_state)
        params = tree_map(lambda p, g, c: p - (lr / 2) * c * g, state.params, grad, precond)
        if temperature > 0:
            noise = randn_like(state.params, generator)
            scale = math.sqrt(lr * temperature)
            params = tree_map(lambda p, c, z: p + scale * c.sqrt() * z, params, precond, noise)
        return new_state.replace(params=params), self._info(potential, grad, lr, temperature)
