r"""Stochastic gradient Hamiltonian Monte Carlo, velocity form (Chen, Fox, Guestrin 2014).

.. math::

    v \leftarrow (1 - \alpha)\,v - \eta\,\nabla\hat U(\theta)
        + N\!\left(0,\; 2\eta\,(\alpha T - \hat\beta)\right), \qquad
    \theta \leftarrow \theta + v, \qquad \hat\beta = \eta \hat V / 2,

with learning rate :math:`\eta` (``lr``), friction :math:`\alpha` (``friction``), temperature
:math:`T` and :math:`\hat V` (``noise_estimate``) an estimate of the variance of the minibatch
gradient noise of :math:`\nabla\hat U`. The correction :math:`\hat\beta` removes the part of
the injected noise that the gradient noise already supplies (its variance on :math:`v` is
:math:`\eta^2\hat V = 2\eta\hat\beta`), so it needs :math:`\eta\hat V \le 2\alpha T`; at
``T = 1`` this is the rule of docs/theory.md §5.3. SGD with momentum ``beta`` plus noise
:math:`\sqrt{2(1-\beta)\eta T}\,\xi` is SGHMC with :math:`\alpha = 1 - \beta`.

Reference: T. Chen, E. B. Fox, C. Guestrin, "Stochastic gradient Hamiltonian Monte Carlo",
ICML 2014 (eq. 15).
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

__all__ = ["SGHMC", "SGHMCState"]


@dataclass(frozen=True)
class SGHMCState(SamplerState):
    """SGHMC state: parameters and the velocity ``v`` (same structure)."""

    velocity: Params | None = None


class SGHMC(Sampler):
    """SGHMC over K chains.

    Args:
        lr: learning rate ``eta`` > 0 (a number or a schedule).
        friction: ``alpha`` in (0, 1].
        temperature: ``T`` >= 0.
        noise_estimate: ``V_hat`` >= 0, the gradient-noise variance (per coordinate) to correct for.
    """

    injects_noise = True

    def __init__(
        self,
        lr: float | Schedule,
        friction: float = 0.1,
        temperature: float | Schedule = 1.0,
        noise_estimate: float = 0.0,
    ) -> None:
        super().__init__(lr, temperature)
        self.friction = check_positive("friction", friction)
        if self.friction > 1:
            raise ValueError(f"friction must lie in (0, 1], got {friction!r}")
        self.noise_estimate = check_positive("noise_estimate", noise_estimate, allow_zero=True)

    def init(self, params: Params) -> SGHMCState:
        super().init(params)
        return SGHMCState(params=params, step=0, velocity=tree_map(torch.zeros_like, params))

    def step(
        self, state: SGHMCState, grad_fn: GradFn, generator: torch.Generator | None = None
    ) -> tuple[SGHMCState, dict[str, Any]]:
        lr, temperature = self._hyper(state.step)
        beta_hat = lr * self.noise_estimate / 2
        variance = 2 * lr * (self.friction * temperature - beta_hat)
        if variance < 0 and temperature > 0:
            raise ValueError(
                f"noise_estimate={self.noise_estimate} is too large for lr={lr}, "
                f"friction={self.friction}, temperature={temperature}: need "
                "lr * noise_estimate <= 2 * friction * temperature"
            )
        grad, potential = self._grad(grad_fn, state.params, generator)
        a = 1 - self.friction
        velocity = tree_map(lambda v, g: a * v - lr * g, state.velocity, grad)
        if variance > 0:
            scale = math.sqrt(variance)
            noise = randn_like(state.params, generator)
            velocity = tree_map(lambda v, z: v + scale * z, velocity, noise)
        params = tree_map(lambda p, v: p + v, state.params, velocity)
        new = SGHMCState(params=params, step=state.step + 1, velocity=velocity)
        return new, self._info(potential, grad, lr, temperature)
