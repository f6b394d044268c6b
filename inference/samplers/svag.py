r"""SVAG: stochastic variance amplified gradient (Li, Malladi, Arora 2021).

With amplification :math:`l \ge 1` and :math:`r = \sqrt{2l - 1}`, two *independent* minibatches
:math:`\gamma_1, \gamma_2` per step (two calls of ``grad_fn``, each drawing its own batch from the
generator):

.. math::

    x_{k+1} = x_k - \frac{\eta}{l}\left[\frac{1 + r}{2}\,\nabla L_{\gamma_1}(x_k)
        + \frac{1 - r}{2}\,\nabla L_{\gamma_2}(x_k)\right].

The mean gradient is unchanged and its covariance is multiplied by :math:`l`, so ``l`` steps of
SVAG cover the time :math:`\eta` of one SGD step; as :math:`l \to \infty` the iterates converge
weakly (order 1 in :math:`1/l`) to the Ito SDE :math:`dX = -\nabla L\,dt + (\eta\Sigma_B)^{1/2}dW`
with :math:`t = k\eta/l`. ``l = 1`` is plain SGD (the second batch gets weight 0).

Reference: Z. Li, S. Malladi, S. Arora, "On the validity of modeling SGD with stochastic
differential equations (SDEs)", NeurIPS 2021; docs/theory.md §3.2.

``info`` always carries the gradient-noise statistics of the two batches:
``grad_noise = |g_1 - g_2|^2 / 2`` (unbiased for ``tr Cov(g_B)``) and ``grad_sq = g_1 . g_2``
(unbiased for ``|grad L|^2``); ``grad_norm`` and ``potential`` refer to the mean of the two batches.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from bayesdepth._validation import check_positive

from ._tree import tree_map
from .base import GradFn, Sampler, SamplerState
from .schedules import Schedule
from .sgd import noise_statistics

__all__ = ["SVAG"]


class SVAG(Sampler):
    """SVAG with amplification ``l`` over K chains (no momentum, no weight decay).

    Args:
        lr: the SGD learning rate ``eta`` being simulated (a number > 0 or a schedule); each SVAG
            step moves time ``eta / l``.
        l: amplification factor >= 1.
    """

    def __init__(self, lr: float | Schedule, l: float = 1.0) -> None:
        super().__init__(lr, temperature=0.0)
        self.l = check_positive("l", l)
        if self.l < 1:
            raise ValueError(f"l must be >= 1, got {l!r}")
        r = math.sqrt(2 * self.l - 1)
        self.w1, self.w2 = (1 + r) / 2, (1 - r) / 2

    def init(self, params) -> SamplerState:
        return super().init(params)

    def step(
        self, state: SamplerState, grad_fn: GradFn, generator: torch.Generator | None = None
    ) -> tuple[SamplerState, dict[str, Any]]:
        lr = self.lr(state.step)
        g1, u1 = self._grad(grad_fn, state.params, generator)
        g2, u2 = self._grad(grad_fn, state.params, generator)
        scale = lr / self.l
        params = tree_map(
            lambda p, a, b: p - scale * (self.w1 * a + self.w2 * b), state.params, g1, g2
        )
        mean_grad = tree_map(lambda a, b: (a + b) / 2, g1, g2)
        info = self._info((u1 + u2) / 2, mean_grad, lr, 0.0, **noise_statistics(g1, g2))
        return SamplerState(params=params, step=state.step + 1), info
