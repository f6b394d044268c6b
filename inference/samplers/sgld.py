r"""Stochastic gradient Langevin dynamics (Welling and Teh 2011).

.. math::

    \theta \leftarrow \theta - \frac{\epsilon}{2}\,\nabla\hat U(\theta)
        + \sqrt{\epsilon T}\,\xi, \qquad \xi \sim N(0, I),

with step size :math:`\epsilon` (``lr``), temperature :math:`T` and the minibatch potential
:math:`\hat U = -\log p(\theta) - (N/B)\sum_{i \in B}\log p(x_i\mid\theta)`. The chain targets
:math:`\pi_T \propto e^{-U/T}` as :math:`\epsilon \to 0`; on a Gaussian target with precision
:math:`P` and full batches its exact stationary covariance is
:math:`T P^{-1}(I - \epsilon P/4)^{-1}` (docs/theory.md §5.2). In the mean-loss convention
(:math:`L = U/N`) this is :math:`\theta \leftarrow \theta - \eta\nabla L + \sqrt{2\eta T/N}\,\xi`
with :math:`\epsilon = 2\eta/N`.

Reference: M. Welling, Y. W. Teh, "Bayesian learning via stochastic gradient Langevin dynamics",
ICML 2011.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ._tree import randn_like, tree_map
from .base import GradFn, Sampler, SamplerState
from .schedules import Schedule

__all__ = ["SGLD"]


class SGLD(Sampler):
    """SGLD over K chains.

    Args:
        lr: step size ``epsilon`` > 0 (a number or a schedule).
        temperature: ``T`` >= 0 (a number or a schedule); ``T = 0`` is gradient descent on U.
    """

    injects_noise = True

    def __init__(self, lr: float | Schedule, temperature: float | Schedule = 1.0) -> None:
        super().__init__(lr, temperature)

    def step(
        self, state: SamplerState, grad_fn: GradFn, generator: torch.Generator | None = None
    ) -> tuple[SamplerState, dict[str, Any]]:
        lr, temperature = self._hyper(state.step)
        grad, potential = self._grad(grad_fn, state.params, generator)
        noise_scale = math.sqrt(lr * temperature)
        if noise_scale > 0:
            noise = randn_like(state.params, generator)
            params = tree_map(
                lambda p, g, z: p - (lr / 2) * g + noise_scale * z, state.params, grad, noise
            )
        else:
            params = tree_map(lambda p, g: p - (lr / 2) * g, state.params, grad)
        info = self._info(potential, grad, lr, temperature)
        return SamplerState(params=params, step=state.step + 1), info
