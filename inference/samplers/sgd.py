r"""Constant-rate SGD, with optional momentum and weight decay, as a (noise-free) sampler.

The update is exactly ``torch.optim.SGD``'s (single-tensor path, ``maximize=False``), applied to
every chain at once:

.. math::

    d = g_B(\theta) + \lambda \theta, \qquad
    v \leftarrow \begin{cases} d & \text{first step} \\ \beta v + (1 - \tau) d & \text{after}
    \end{cases}, \qquad
    \theta \leftarrow \theta - \eta\,(d + \beta v \text{ if Nesterov else } v),

with learning rate :math:`\eta` (``lr``), momentum :math:`\beta`, dampening :math:`\tau` and weight
decay :math:`\lambda`. No noise is injected: the minibatch gradient noise is the only source of
randomness, and the iterates' stationary law is what docs/theory.md §1-§3 describe (Mandt, Hoffman,
Blei, "Stochastic gradient descent as approximate Bayesian inference", JMLR 2017; Kunin et al.,
"Rethinking the limiting dynamics of SGD", 2021).

With ``noise_stats=True`` every step also draws a *second*, independent batch at the same
parameters (one extra ``grad_fn`` call, not used for the update) and reports
``info["grad_noise"] = |g_1 - g_2|^2 / 2`` per chain, an unbiased estimate of ``tr Cov(g_B)``, and
``info["grad_sq"] = g_1 . g_2``, an unbiased estimate of ``|grad L|^2`` (docs/theory.md §3.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bayesdepth._validation import check_positive

from ._tree import Params, leaves, tree_map
from .base import GradFn, Sampler, SamplerState
from .schedules import Schedule

__all__ = ["SGD", "SGDState"]


@dataclass(frozen=True)
class SGDState(SamplerState):
    """SGD state; ``momentum_buffer`` is None without momentum."""

    momentum_buffer: Params | None = None


def noise_statistics(g1: Params, g2: Params) -> dict[str, torch.Tensor]:
    """``grad_noise = |g1 - g2|^2 / 2`` and ``grad_sq = g1 . g2`` per chain (two iid batches)."""
    diff = sum(
        (a - b).reshape(a.shape[0], -1).pow(2).sum(-1) for a, b in zip(leaves(g1), leaves(g2))
    )
    dot = sum((a * b).reshape(a.shape[0], -1).sum(-1) for a, b in zip(leaves(g1), leaves(g2)))
    return {"grad_noise": (diff / 2).detach(), "grad_sq": dot.detach()}


class SGD(Sampler):
    """Stochastic gradient descent exactly as ``torch.optim.SGD`` updates, over K chains.

    Args:
        lr: learning rate (a number > 0 or a schedule).
        momentum: ``beta`` in [0, 1).
        weight_decay: ``lambda`` >= 0 (adds ``lambda * theta`` to the gradient).
        dampening: ``tau`` >= 0, as in torch.
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0, as in torch).
        noise_stats: also report the gradient-noise statistics (costs one extra batch per step).
    """

    def __init__(
        self,
        lr: float | Schedule,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        noise_stats: bool = False,
    ) -> None:
        super().__init__(lr, temperature=0.0)
        self.momentum = check_positive("momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        self.dampening = check_positive("dampening", dampening, allow_zero=True)
        if nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0")
        self.nesterov = bool(nesterov)
        self.noise_stats = bool(noise_stats)

    def init(self, params: Params) -> SGDState:
        super().init(params)
        buf = tree_map(torch.zeros_like, params) if self.momentum else None
        return SGDState(params=params, step=0, momentum_buffer=buf)

    def step(
        self, state: SGDState, grad_fn: GradFn, generator: torch.Generator | None = None
    ) -> tuple[SGDState, dict[str, Any]]:
        lr = self.lr(state.step)
        grad, potential = self._grad(grad_fn, state.params, generator)
        extra = {}
        if self.noise_stats:
            grad2, _ = self._grad(grad_fn, state.params, generator)
            extra = noise_statistics(grad, grad2)
        d = grad
        if self.weight_decay:
            d = tree_map(lambda g, p: g.add(p, alpha=self.weight_decay), grad, state.params)
        buf = state.momentum_buffer
        if self.momentum:
            if state.step == 0:
                buf = tree_map(lambda x: x.detach().clone(), d)
            else:
                buf = tree_map(
                    lambda b, x: b.mul(self.momentum).add(x, alpha=1 - self.dampening), buf, d
                )
            d = (
                tree_map(lambda x, b: x.add(b, alpha=self.momentum), d, buf)
                if self.nesterov
                else buf
            )
        params = tree_map(lambda p, x: p.add(x, alpha=-lr), state.params, d)
        new = SGDState(params=params, step=state.step + 1, momentum_buffer=buf)
        return new, self._info(potential, grad, lr, 0.0, **extra)
