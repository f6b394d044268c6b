r"""Stochastic gradient Hamiltonian Monte Carlo, velocity form (Chen, Fox, Guestrin 2014).

.. math::

    v \leftarrow (1 - \alpha)\,v - \eta\,\nabla\hat U(\theta)
        + N\!\left(0,\; 2\eta\,(\alpha T - \hat\beta)\right), \qquad
    \theta \leftarrow \theta + v, \qquad \hat\beta = \eta \hat V / 2,

with learning rate :math:`\eta` (``lr``), friction :math:`\alpha` (``friction``), temperature
:math:`T` and :math:`\hat V` (``noise_estimate``) an estimate of the variance of the minibatch
gradient noise of :math:`\nabla\hat U`: one number for every coordinate, or per parameter (a
tensor broadcastable to a chain's parameter, or a dict of them), since gradient noise is usually
anisotropic; the formulas then hold coordinate by coordinate. The correction :math:`\hat\beta`
removes the part of the injected noise that the gradient noise already supplies (its variance on
:math:`v` is :math:`\eta^2\hat V = 2\eta\hat\beta`), so it needs
:math:`\eta\hat V \le 2\alpha T`; at ``T = 1`` this is the rule of docs/theory.md §5.3. SGD
with momentum ``beta`` plus noise :math:`\sqrt{2(1-\beta)\eta T}\,\xi` is SGHMC with
:math:`\alpha = 1 - \beta`.

Reference: T. Chen, E. B. Fox, C. Guestrin, "Stochastic gradient Hamiltonian Monte Carlo",
ICML 2014 (eq. 15).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from bayesdepth._validation import check_positive, check_tensor

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
        noise_estimate: ``V_hat`` >= 0, the gradient-noise variance per coordinate to correct
            for: a number, a tensor broadcastable to one chain's parameters (for tensor
            parameters), or a dict ``{name: number or tensor}`` with the parameters' names.
    """

    injects_noise = True

    def __init__(
        self,
        lr: float | Schedule,
        friction: float = 0.1,
        temperature: float | Schedule = 1.0,
        noise_estimate: float | torch.Tensor | Mapping[str, float | torch.Tensor] = 0.0,
    ) -> None:
        super().__init__(lr, temperature)
        self.friction = check_positive("friction", friction)
        if self.friction > 1:
            raise ValueError(f"friction must lie in (0, 1], got {friction!r}")
        if isinstance(noise_estimate, Mapping):
            self.noise_estimate = {k: _noise(f"noise_estimate[{k!r}]", v)
                                   for k, v in noise_estimate.items()}
        else:
            self.noise_estimate = _noise("noise_estimate", noise_estimate)
        values = (self.noise_estimate.values() if isinstance(self.noise_estimate, Mapping)
                  else [self.noise_estimate])
        self._max_noise = max((float(torch.as_tensor(v).max()) for v in values), default=0.0)

    def _noise_tree(self, params: Params) -> Params:
        """``noise_estimate`` with the structure of ``params`` (numbers or tensors per leaf)."""
        v = self.noise_estimate
        if isinstance(v, Mapping):
            if not isinstance(params, Mapping) or set(v) != set(params):
                names = sorted(params) if isinstance(params, Mapping) else "a tensor"
                raise ValueError(
                    f"noise_estimate has the keys {sorted(v)}, the parameters are {names}"
                )
            out = {k: v[k] for k in params}
        elif isinstance(v, torch.Tensor) and isinstance(params, Mapping):
            raise ValueError(
                "noise_estimate is one tensor but the parameters are a dict "
                f"{sorted(params)}: pass a dict of tensors with those names"
            )
        else:
            out = tree_map(lambda _: v, params) if isinstance(params, Mapping) else v
        for name, p, n in _named(params, out):
            if isinstance(n, torch.Tensor):
                try:
                    torch.broadcast_shapes(n.shape, p.shape[1:])
                except RuntimeError:
                    raise ValueError(
                        f"{name} has shape {tuple(n.shape)}, which does not broadcast to one "
                        f"chain's parameter of shape {tuple(p.shape[1:])}"
                    ) from None
        return out

    def init(self, params: Params) -> SGHMCState:
        super().init(params)
        self._noise_tree(params)
        return SGHMCState(params=params, step=0, velocity=tree_map(torch.zeros_like, params))

    def step(
        self, state: SGHMCState, grad_fn: GradFn, generator: torch.Generator | None = None
    ) -> tuple[SGHMCState, dict[str, Any]]:
        lr, temperature = self._hyper(state.step)
        if temperature > 0 and lr * self._max_noise > 2 * self.friction * temperature:
            raise ValueError(
                f"noise_estimate (largest entry {self._max_noise:.6g}) is too large for lr={lr}, "
                f"friction={self.friction}, temperature={temperature}: need "
                "lr * noise_estimate <= 2 * friction * temperature"
            )
        grad, potential = self._grad(grad_fn, state.params, generator)
        a = 1 - self.friction
        velocity = tree_map(lambda v, g: a * v - lr * g, state.velocity, grad)
        if temperature > 0:
            at = self.friction * temperature

            def scale(p: torch.Tensor, v_hat: float | torch.Tensor) -> torch.Tensor | float:
                if isinstance(v_hat, torch.Tensor):  # 2 lr (alpha T - lr V / 2), per coordinate
                    v_hat = v_hat.to(device=p.device, dtype=p.dtype)
                    return (2 * lr * (at - lr * v_hat / 2)).clamp_min(0).sqrt()
                return math.sqrt(max(2 * lr * (at - lr * v_hat / 2), 0.0))

            scales = tree_map(scale, state.params, self._noise_tree(state.params))
            noise = randn_like(state.params, generator)
            velocity = tree_map(lambda v, z, c: v + c * z, velocity, noise, scales)
        params = tree_map(lambda p, v: p + v, state.params, velocity)
        new = SGHMCState(params=params, step=state.step + 1, velocity=velocity)
        return new, self._info(potential, grad, lr, temperature)


def _noise(name: str, value: float | torch.Tensor) -> float | torch.Tensor:
    """A noise estimate: a number >= 0, or a finite floating tensor with entries >= 0."""
    if isinstance(value, torch.Tensor) and value.numel() != 1:
        value = check_tensor(name, value, floating=True).detach()
        if not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
            raise ValueError(f"{name} must hold finite entries >= 0, got minimum "
                             f"{float(value.min()):.6g}")
        return value
    return check_positive(name, value, allow_zero=True)


def _named(params: Params, noise: Params):
    if isinstance(params, Mapping):
        return [(f"noise_estimate[{k!r}]", params[k], noise[k]) for k in params]
    return [("noise_estimate", params, noise)]
