r"""Adam as a (noise-free) sampler: exactly ``torch.optim.Adam``'s update, over K chains.

The update is ``torch.optim.Adam``'s (``maximize=False``; its single- and multi-tensor paths
agree bit for bit), applied to every chain at once; at step ``t = 1, 2, ...``

.. math::

    g \leftarrow g_B(\theta) + \lambda\theta \ (\text{coupled}), \quad
    m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad
    v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \quad
    \theta \leftarrow \theta - \frac{\eta}{1 - \beta_1^t}
    \frac{m}{\sqrt{v / (1 - \beta_2^t)} + \epsilon},

with AMSGrad using the running maximum of ``v``, and decoupled weight decay (AdamW)
``theta <- (1 - eta lambda) theta`` before the moments instead of adding ``lambda theta`` to
``g``. The operations are torch's own (``lerp``, ``mul``/``addcmul``, ``addcdiv``), so the
iterates agree bit for bit. Kingma & Ba, "Adam: a method for stochastic optimization", ICLR
2015; as a Lévy-driven SDE with a preconditioner in Zhou et al., "Towards theoretically
understanding why SGD generalizes better than Adam in deep learning", NeurIPS 2020
(docs/theory.md §13.4). Whatever the gradients, every coordinate moves by at most
:meth:`Adam.step_bound` per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from bayesdepth._validation import check_positive, check_positive_int

from ._tree import Params, tree_map
from .base import GradFn, Sampler, SamplerState
from .schedules import Schedule

__all__ = ["Adam", "AdamState"]


@dataclass(frozen=True)
class AdamState(SamplerState):
    """Adam state: the moment estimates (and AMSGrad's running maximum, else None)."""

    exp_avg: Params | None = None
    exp_avg_sq: Params | None = None
    max_exp_avg_sq: Params | None = None


def _beta(name: str, value: Any) -> float:
    beta = check_positive(name, value, allow_zero=True)
    if beta >= 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return beta


class Adam(Sampler):
    """Adam exactly as ``torch.optim.Adam`` updates, over K chains.

    Args:
        lr: learning rate ``eta`` (a number > 0 or a schedule).
        betas: ``(beta_1, beta_2)``, each in [0, 1).
        eps: ``epsilon`` > 0 added to the denominator.
        weight_decay: ``lambda`` >= 0.
        amsgrad: normalise by the running maximum of ``v`` (Reddi et al. 2018).
        decoupled_weight_decay: AdamW's ``theta <- (1 - eta lambda) theta`` (``torch.optim.AdamW``)
            instead of adding ``lambda theta`` to the gradient.
    """

    def __init__(
        self,
        lr: float | Schedule = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        super().__init__(lr, temperature=0.0)
        if not (isinstance(betas, tuple | list) and len(betas) == 2):
            raise ValueError(f"betas must be a pair (beta_1, beta_2), got {betas!r}")
        self.betas = (_beta("betas[0]", betas[0]), _beta("betas[1]", betas[1]))
        self.eps = check_positive("eps", eps)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        self.amsgrad = bool(amsgrad)
        self.decoupled_weight_decay = bool(decoupled_weight_decay)

    def init(self, params: Params) -> AdamState:
        super().init(params)
        zeros = tree_map(torch.zeros_like, params)
        top = tree_map(torch.zeros_like, params) if self.amsgrad else None
        return AdamState(params=params, step=0, exp_avg=zeros,
                         exp_avg_sq=tree_map(torch.zeros_like, params), max_exp_avg_sq=top)

    def step_bound(self, step: int) -> float:
        r"""The largest ``|Delta theta_i|`` update ``step`` (1, 2, ...) can take, any gradients.

        ``eta (1 - b1) sqrt(1 - b2^t) / ((1 - b1^t) sqrt(1 - b2) (1 - b1 / sqrt(b2)))``, by
        ``sqrt(b2)^{t-s} |g_s| <= sqrt(v_t / (1 - b2))`` in ``m_t`` (``eps`` only lowers the step);
        31.8 ``eta`` at the default betas for large t (docs/theory.md §13.4). Needs
        ``b1 < sqrt(b2)``, without weight decay (it bounds the gradient step, not the decay).
        """
        b1, b2 = self.betas
        if b1 >= math.sqrt(b2):
            raise ValueError(f"step_bound needs beta_1 < sqrt(beta_2), got betas {self.betas}")
        t = check_positive_int("step", step)
        lr = self.lr(t - 1)
        return (lr * (1 - b1) * math.sqrt(1 - b2**t)
                / ((1 - b1**t) * math.sqrt(1 - b2) * (1 - b1 / math.sqrt(b2))))

    def step(
        self, state: AdamState, grad_fn: GradFn, generator: torch.Generator | None = None
    ) -> tuple[AdamState, dict[str, Any]]:
        lr = self.lr(state.step)
        b1, b2 = self.betas
        grad, potential = self._grad(grad_fn, state.params, generator)
        params, g = state.params, grad
        if self.weight_decay and self.decoupled_weight_decay:
            params = tree_map(lambda p: p.mul(1 - lr * self.weight_decay), params)
        elif self.weight_decay:
            g = tree_map(lambda x, p: x.add(p, alpha=self.weight_decay), g, params)
        m = tree_map(lambda a, x: a.lerp(x, 1 - b1), state.exp_avg, g)
        v = tree_map(lambda a, x: a.mul(b2).addcmul(x, x, value=1 - b2), state.exp_avg_sq, g)
        t = state.step + 1
        step_size = lr / (1 - b1**t)
        root = (1 - b2**t) ** 0.5
        top = state.max_exp_avg_sq
        if self.amsgrad:
            top = tree_map(torch.maximum, top, v)
        norm = top if self.amsgrad else v
        params = tree_map(
            lambda p, a, s: p.addcdiv(a, (s.sqrt() / root).add(self.eps), value=-step_size),
            params, m, norm,
        )
        new = AdamState(params=params, step=t, exp_avg=m, exp_avg_sq=v, max_exp_avg_sq=top)
        return new, self._info(potential, grad, lr, 0.0)
