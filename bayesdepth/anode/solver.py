"""How an augmented neural ODE is integrated, and what the integration cost.

:class:`ODESolver` is a small immutable configuration (diffrax style: behaviour is chosen by
passing an object, validated once here) around :func:`torchdiffeq.odeint` and
:func:`torchdiffeq.odeint_adjoint`. :class:`SolveCost` is a plain record the *caller* creates and
passes in; the solve adds to it the number of function evaluations (NFE) of the forward pass and,
once ``backward()`` has run, of the backward pass. Nothing is counted on a module.

Defaults follow Dupont, Doucet, Teh, "Augmented Neural ODEs" (NeurIPS 2019): Dormand--Prince 5(4)
(``dopri5``) with ``rtol = atol = 1e-3``. For ``dopri5`` a forward solve costs
``NFE = 2 + 6 x (accepted + rejected steps)`` (two evaluations pick the first step size; the
seven-stage tableau reuses its last stage, "first same as last"; docs/theory.md §10.2). The
adjoint (Chen et al. 2018) is docs/theory.md §10.3.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from .._validation import check_choice, check_positive, check_positive_int, check_rows

__all__ = ["ADAPTIVE_METHODS", "FIXED_STEP_METHODS", "ODESolver", "ODESolverError", "SolveCost"]

ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
FIXED_STEP_METHODS = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams",
                      "implicit_adams")
_METHODS = ADAPTIVE_METHODS + FIXED_STEP_METHODS


class ODESolverError(RuntimeError):
    """The ODE solver gave up (step size underflow, too many steps, a non-finite state)."""


@dataclass
class SolveCost:
    """Function evaluations spent by the solves it was passed to (a record the caller holds).

    Attributes:
        forward_nfe: evaluations of the vector field during forward solves.
        backward_nfe: evaluations during the backward pass: with the adjoint, evaluations of the
            field inside the adjoint ODE; with direct backpropagation, vector--Jacobian products
            through recorded field evaluations. Filled in when ``backward()`` runs.
        solves: number of forward solves recorded.

    Example:
        >>> cost = SolveCost()
        >>> loss = model(x, cost=cost).pow(2).mean(); loss.backward()
        >>> cost.forward_nfe, cost.backward_nfe
    """

    forward_nfe: int = 0
    backward_nfe: int = 0
    solves: int = 0

    def __add__(self, other: SolveCost) -> SolveCost:
        return SolveCost(
            self.forward_nfe + other.forward_nfe,
            self.backward_nfe + other.backward_nfe,
            self.solves + other.solves,
        )


class _CountVJP(torch.autograd.Function):
    """Identity whose backward adds one to ``cost.backward_nfe``."""

    @staticmethod
    def forward(ctx, value, cost):
        ctx.cost = cost
        return value.view_as(value)

    @staticmethod
    def backward(ctx, grad):
        ctx.cost.backward_nfe += 1
        return grad, None


class _ODEFunc(nn.Module):
    """``f(t, h)`` with counting; optional explicit parameters (for sampled Bayesian weights)."""

    def __init__(
        self,
        vector_field: nn.Module,
        params: Mapping[str, torch.Tensor] | None,
        cost: SolveCost,
        adjoint: bool,
    ):
        super().__init__()
        self.vector_field = vector_field
        self.params = dict(params) if params is not None else None
        self.cost = cost
        self.adjoint = adjoint
        self.in_backward = False

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if self.params is None:
            out = self.vector_field(t, h)
        else:
            out = torch.func.functional_call(self.vector_field, self.params, (t, h))
        if self.in_backward:
            self.cost.backward_nfe += 1
            return out
        self.cost.forward_nfe += 1
        if not self.adjoint and out.requires_grad:
            out = _CountVJP.apply(out, self.cost)
        return out


_HINT = (
    "; the ODE solver failed. Try looser tolerances (larger rtol/atol), a larger max_num_steps, "
    "or a fixed-step solver, e.g. ODESolver(method='rk4', step_size=0.1)"
)


@dataclass(frozen=True)
class ODESolver:
    """Configuration of the ODE solve on ``t in [0, T]`` (validated once, at construction).

    Args:
        method: a torchdiffeq method; adaptive: ``dopri5`` (default), ``dopri8``, ``bosh3``,
            ``fehlberg2``, ``adaptive_heun``; fixed-step: ``euler``, ``midpoint``, ``heun2``,
            ``heun3``, ``rk4``, ``explicit_adams``, ``implicit_adams``.
        rtol: relative tolerance of adaptive methods (default ``1e-3``, as in Dupont et al.
            2019).
        atol: absolute tolerance of adaptive methods (default ``1e-3``).
        step_size: step of fixed-step methods (default 0.1, i.e. 10 steps on [0, 1]);
            not allowed with adaptive methods.
        max_num_steps: bound on the steps of an adaptive solve (None: torchdiffeq's, 2**31 - 1).
        adjoint: integrate an adjoint ODE backwards instead of backpropagating through the
            solver (Chen et al. 2018): memory independent of the number of steps, more NFE.
        adjoint_method: the backward solve's method (None: the forward one).
        adjoint_rtol: the backward solve's relative tolerance (None: the forward one).
        adjoint_atol: the backward solve's absolute tolerance (None: the forward one).
        adjoint_step_size: the backward solve's step of a fixed-step method (None: the
            forward one).
        end_time: integration horizon ``T`` (default 1).
    """

    method: str = "dopri5"
    rtol: float = 1e-3
    atol: float = 1e-3
    step_size: float | None = None
    max_num_steps: int | None = None
    adjoint: bool = False
    adjoint_method: str | None = None
    adjoint_rtol: float | None = None
    adjoint_atol: float | None = None
    adjoint_step_size: float | None = None
    end_time: float = 1.0
    _options: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _adjoint_options: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_choice("method", self.method, _METHODS)
        check_positive("rtol", self.rtol)
        check_positive("atol", self.atol)
        check_positive("end_time", self.end_time)
        if self.max_num_steps is not None:
            check_positive_int("max_num_steps", self.max_num_steps)
        self._options.update(
            _method_options("", self.method, self.step_size, self.max_num_steps)
        )
        if self.max_num_steps is not None and not self.adaptive:
            steps = math.ceil(self.end_time / self._options["step_size"] - 1e-9)
            if steps > self.max_num_steps:
                raise ValueError(
                    f"max_num_steps={self.max_num_steps}, but the fixed-step method "
                    f"{self.method!r} takes ceil(end_time / step_size) = {steps} steps; raise "
                    "max_num_steps or step_size"
                )
        if self.adjoint_method is not None:
            check_choice("adjoint_method", self.adjoint_method, _METHODS)
        for name in ("adjoint_rtol", "adjoint_atol"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        if not isinstance(self.adjoint, bool):
            raise TypeError(f"adjoint must be True or False, got {self.adjoint!r}")
        if not self.adjoint and any(
            getattr(self, n) is not None
            for n in ("adjoint_method", "adjoint_rtol", "adjoint_atol", "adjoint_step_size")
        ):
            raise ValueError("adjoint_method/rtol/atol/step_size need adjoint=True")
        back = self.adjoint_method or self.method
        back_step = self.adjoint_step_size
        if back in FIXED_STEP_METHODS and back_step is None:
            back_step = self.step_size
        self._adjoint_options.update(
            _method_options("adjoint_", back, back_step, self.max_num_steps)
        )

    @property
    def adaptive(self) -> bool:
        return self.method in ADAPTIVE_METHODS

    def integrate(
        self,
        vector_field: nn.Module,
        h0: torch.Tensor,
        *,
        times: torch.Tensor | None = None,
        params: Mapping[str, torch.Tensor] | None = None,
        cost: SolveCost | None = None,
    ) -> torch.Tensor:
        """Solve ``dh/dt = f(t, h)``, ``h(0) = h0``; return ``h(T)`` (or ``h`` at ``times``).

        Args:
            vector_field: module called as ``f(t, h)``.
            h0: initial state, any shape (batch first).
            times: increasing times starting at 0 (returns a stack ``(len(times), *h0.shape)``);
                None returns ``h(end_time)`` only.
            params: tensors to use instead of the field's parameters (names as in
                ``named_parameters``), e.g. sampled Bayesian weights; gradients flow to them,
                also through the adjoint.
            cost: record to which this solve's forward and backward NFE are added.

        Raises:
            ODESolverError: the solver failed; the message suggests looser tolerances or a
                fixed-step solver. A failure of the adjoint's backward solve is raised the same
                way, from ``backward()``.
        """
        cost = SolveCost() if cost is None else cost
        check_rows("h0 (the initial state)", h0)
        ts = times
        if ts is None:
            ts = torch.tensor([0.0, self.end_time], dtype=h0.dtype, device=h0.device)
        try:
            if self.adjoint:
                if params is None:
                    params = dict(vector_field.named_parameters())
                names = list(params)

                def solve(h0_: torch.Tensor, values: list[torch.Tensor]) -> torch.Tensor:
                    return self._adjoint_solve(
                        vector_field, h0_, ts, dict(zip(names, values)), cost
                    )

                out = _GuardedAdjoint.apply(solve, h0, *params.values())
            else:
                func = _ODEFunc(vector_field, params, cost, adjoint=False)
                out = odeint(
                    func, h0, ts, rtol=self.rtol, atol=self.atol, method=self.method,
                    options=dict(self._options),
                )
        except AssertionError as err:  # torchdiffeq reports underflow / max steps by assert
            raise ODESolverError(f"{err}{_HINT}") from err
        if not bool(torch.isfinite(out).all()):
            raise ODESolverError(
                f"the {self.method} solve produced NaN or infinite states (a field too stiff "
                f"for the step, or weights that blow up){_HINT}"
            )
        cost.solves += 1
        return out if times is not None else out[-1]

    def _adjoint_solve(self, vector_field, h0, ts, params, cost) -> torch.Tensor:
        func = _ODEFunc(vector_field, params, cost, adjoint=True)
        out = odeint_adjoint(
            func, h0, ts, rtol=self.rtol, atol=self.atol, method=self.method,
            options=dict(self._options),
            adjoint_rtol=self.adjoint_rtol or self.rtol,
            adjoint_atol=self.adjoint_atol or self.atol,
            adjoint_method=self.adjoint_method or self.method,
            adjoint_options=dict(self._adjoint_options),
            adjoint_params=tuple(params.values()),
        )
        func.in_backward = True  # from now on, calls come from the adjoint's backward solve
        return out


class _GuardedAdjoint(torch.autograd.Function):
    """Runs an adjoint solve so that a failure of its *backward* solve is re-raised with the hint.

    The forward builds the (small) graph of ``odeint_adjoint`` on detached copies of the inputs;
    the backward differentiates it inside ``try``. Memory stays that of the adjoint: torchdiffeq
    saves only the solution at the output times and the parameters.
    """

    @staticmethod
    def forward(ctx, solve, h0, *values):
        with torch.enable_grad():
            inputs = [t.detach().requires_grad_(t.requires_grad) for t in (h0, *values)]
            out = solve(inputs[0], inputs[1:])
        ctx.graph = (out, inputs)
        return out.detach()

    @staticmethod
    def backward(ctx, grad):
        out, inputs = ctx.graph
        del ctx.graph
        wanted = [t for t in inputs if t.requires_grad]
        try:
            grads = iter(torch.autograd.grad(out, wanted, grad, allow_unused=True))
        except AssertionError as err:
            raise ODESolverError(f"{err} (in the adjoint's backward solve){_HINT}") from err
        return (None, *(next(grads) if t.requires_grad else None for t in inputs))


def _method_options(
    prefix: str, method: str, step_size: float | None, max_num_steps: int | None
) -> dict:
    options: dict[str, Any] = {}
    if method in FIXED_STEP_METHODS:
        size = 0.1 if step_size is None else check_positive(f"{prefix}step_size", step_size)
        options["step_size"] = size
    else:
        if step_size is not None:
            raise ValueError(
                f"{prefix}step_size is for fixed-step methods "
                f"({', '.join(FIXED_STEP_METHODS)}); {method!r} is adaptive: set rtol/atol instead"
            )
        if max_num_steps is not None:
            options["max_num_steps"] = max_num_steps
    return options
