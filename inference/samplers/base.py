"""The sampler protocol shared by every SGD and SG-MCMC algorithm in this package.

**Parameters.** ``params`` is a floating tensor whose *leading dimension indexes chains*, e.g. shape
``(chains, d)``, or a dict ``{name: tensor of shape (chains, ...)}`` with the same number of chains
in every entry. K chains are advanced by one batched step: samplers are pure tensor arithmetic, so
chain k never sees chain j.

**State.** ``sampler.init(params) -> state``: a frozen dataclass holding ``params`` (same structure
as given), ``step`` (a Python int, the number of updates done, 0 after ``init``) and whatever the
algorithm carries (momentum buffer, velocity, RMS average), each with the structure of ``params``.
States are values: ``step`` returns a new one and never mutates the old.

**Gradient function.** ``grad_fn(params, generator) -> (grad, potential)``, where ``grad`` has the
structure of ``params`` and ``potential`` is a tensor of shape ``(chains,)``. Every call draws *its
own* fresh minibatch from ``generator`` (a ``torch.Generator`` on the parameters' device, or None
for torch's default generator), so a sampler that needs two independent batches per step (SVAG)
simply calls ``grad_fn`` twice; a deterministic (full-batch) ``grad_fn`` may ignore ``generator``.
What the gradient is the gradient *of* is up to the caller:

- SG-MCMC samplers (SGLD, SGHMC, pSGLD) target ``pi_T ∝ exp(-U / T)`` and need ``grad U`` with
  ``U(theta) = -log p(theta) - (N / B) sum_{i in batch} log p(x_i | theta)`` (docs/theory.md §5.1);
  :func:`bayesdepth.inference.sample` builds such a ``grad_fn`` from a potential.
- SGD-type samplers (SGD, SVAG) apply ``lr`` to whatever gradient ``grad_fn`` returns; with the
  mean loss ``L = U / N`` of docs/theory.md §1-§3, ``lr`` is the usual learning rate ``eta``.

**Step.** ``sampler.step(state, grad_fn, generator) -> (state, info)``; ``info`` is a dict with at
least ``"potential"`` and ``"grad_norm"`` (tensors of shape ``(chains,)``), ``"lr"`` and
``"temperature"`` (floats); samplers may add more (for example SVAG's gradient-noise estimate).
Injected noise is drawn from ``generator`` *after* the gradient calls, in dict order.

**Schedules.** ``lr`` and ``temperature`` accept a number or a
:class:`~bayesdepth.inference.samplers.schedules.Schedule` evaluated at ``state.step``. When the
``lr`` schedule reports ``exploring(step)`` (cyclical SG-MCMC), noise-injecting samplers drop
their noise for that step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ._tree import Params, chain_sq_norm, check_params
from .schedules import Schedule, as_schedule

__all__ = ["GradFn", "Sampler", "SamplerState"]

GradFn = Callable[[Params, "torch.Generator | None"], tuple[Params, torch.Tensor]]


@dataclass(frozen=True)
class SamplerState:
    """Parameters (chains leading) and the number of updates done."""

    params: Params
    step: int = 0

    def replace(self, **changes: Any) -> SamplerState:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


class Sampler:
    """Base class: holds the ``lr`` and ``temperature`` schedules; subclasses add the algorithm.

    Subclasses implement ``init(params) -> state`` and
    ``step(state, grad_fn, generator) -> (state, info)`` as described in the module docstring.
    """

    #: samplers that inject noise (SG-MCMC) set this; SGD-type samplers have temperature 0.
    injects_noise: bool = False

    def __init__(self, lr: float | Schedule, temperature: float | Schedule = 1.0) -> None:
        self.lr = as_schedule(lr, "lr")
        self.temperature = as_schedule(temperature, "temperature", allow_zero=True)

    def init(self, params: Params) -> SamplerState:
        """Validate ``params`` and return the initial state (subclasses add their buffers)."""
        check_params(params)
        return SamplerState(params=params, step=0)

    def step(
        self, state: SamplerState, grad_fn: GradFn, generator: torch.Generator | None = None
    ) -> tuple[SamplerState, dict[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers for subclasses -------------------------------------------------------------
    def _hyper(self, step: int) -> tuple[float, float]:
        """``(lr, temperature)`` at ``step``; temperature is 0 while the lr schedule explores."""
        lr = self.lr(step)
        temperature = 0.0 if self.lr.exploring(step) else self.temperature(step)
        return lr, temperature

    @staticmethod
    def _grad(grad_fn: GradFn, params: Params, generator: torch.Generator | None):
        out = grad_fn(params, generator)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError("grad_fn must return a tuple (grad, potential)")
        return out

    @staticmethod
    def _info(
        potential: torch.Tensor, grad: Params, lr: float, temperature: float, **extra: Any
    ) -> dict[str, Any]:
        info = {
            "potential": potential.detach(),
            "grad_norm": chain_sq_norm(grad).sqrt().detach(),
            "lr": lr,
            "temperature": temperature,
        }
        info.update(extra)
        return info

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
