"""Step-size and temperature schedules: a value per step, plus the cyclical phases.

A schedule is any callable ``schedule(step: int) -> float``. Samplers accept a plain number (turned
into :class:`Constant`) or a :class:`Schedule`. A schedule also says, per step, whether the sampler
is *exploring* (noise switched off, an SGD step) and whether a draw taken at that step may be kept
(*sampling*); both default to "sampling, never exploring", so only cyclical schedules change them.
Its ``period`` (the steps after which the phases repeat) lets :func:`~bayesdepth.inference.sample`
count in advance how many steps a run needs, and refuse one that could never keep a draw.
"""

from __future__ import annotations

import math
from typing import Any

from bayesdepth._validation import check_positive, check_positive_int

__all__ = ["Constant", "CyclicalCosine", "Schedule", "as_schedule"]


class Schedule:
    """Base class: ``__call__(step)`` gives the value at step ``step`` (0-based).

    Attributes:
        period: the phases (``exploring``/``sampling``) repeat every ``period`` steps; ``None``
            when unknown. A subclass that overrides :meth:`sampling` should set it; one that
            does not samples at every step, whatever its period.
    """

    period: int | None = None

    def __call__(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _phase_period(self) -> int | None:
        return 1 if type(self).sampling is Schedule.sampling else self.period

    def sampling_steps(self) -> int | None:
        """How many steps of one period keep draws (None when the period is unknown)."""
        period = self._phase_period()
        return None if period is None else sum(self.sampling(k) for k in range(period))

    def steps_for(self, eligible: int, start: int = 0) -> int | None:
        """The number of steps from ``start`` up to and including the ``eligible``-th sampling
        step (None when the period is unknown).

        Raises:
            ValueError: when a period has no sampling step (no draw could ever be kept).
        """
        per, period = self.sampling_steps(), self._phase_period()
        if per is None:
            return None
        if per == 0:
            raise ValueError(f"{self!r} has no sampling step in its period of {period} steps")
        if eligible <= 0:
            return 0
        full, rest = divmod(eligible - 1, per)  # whole periods, then scan to the last one
        k = start + full * period
        rest += 1
        while rest:
            rest -= self.sampling(k)
            k += 1
        return k - start

    def exploring(self, step: int) -> bool:
        """True where the sampler should take a noise-free (SGD) step."""
        return False

    def sampling(self, step: int) -> bool:
        """True where a draw taken after this step may be kept."""
        return True


class Constant(Schedule):
    """The same value at every step."""

    def __init__(self, value: float, name: str = "value", allow_zero: bool = False) -> None:
        self.value = check_positive(name, value, allow_zero=allow_zero)

    def __call__(self, step: int) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"Constant({self.value!r})"


class CyclicalCosine(Schedule):
    r"""Cyclical cosine step size with exploration and sampling phases (Zhang et al. 2020).

    With cycle length :math:`L = \lceil K / M \rceil` (``num_steps`` K, ``num_cycles`` M) and
    step :math:`k` counted from 0,

    .. math::

        \alpha_k = \frac{\alpha_0}{2}\left[\cos\left(\pi\,\frac{k \bmod L}{L}\right) + 1\right].

    The first ``explore_fraction`` of every cycle is exploration (noise off: an SGD step); the rest
    is sampling, where draws are kept. Past ``num_steps`` the cycles simply repeat.

    Reference: R. Zhang, C. Li, J. Zhang, C. Chen, A. G. Wilson, "Cyclical stochastic gradient
    MCMC for Bayesian deep learning", ICLR 2020.
    """

    def __init__(
        self, lr: float, num_steps: int, num_cycles: int, explore_fraction: float = 0.5
    ) -> None:
        self.lr = check_positive("lr", lr)
        self.num_steps = check_positive_int("num_steps", num_steps)
        self.num_cycles = check_positive_int("num_cycles", num_cycles)
        frac = check_positive("explore_fraction", explore_fraction, allow_zero=True)
        if frac >= 1:
            raise ValueError(f"explore_fraction must lie in [0, 1), got {explore_fraction!r}")
        self.explore_fraction = frac
        self.cycle_length = math.ceil(self.num_steps / self.num_cycles)
        self.period = self.cycle_length
        if not self.sampling_steps():
            raise ValueError(
                f"CyclicalCosine(num_steps={num_steps}, num_cycles={num_cycles}, "
                f"explore_fraction={explore_fraction}) has cycles of {self.cycle_length} step(s) "
                "with no sampling step, so no draw could ever be kept; use fewer cycles than "
                "steps (num_cycles <= num_steps) and an explore_fraction that leaves at least "
                "one step of each cycle to sampling"
            )

    def _fraction(self, step: int) -> float:
        return (step % self.cycle_length) / self.cycle_length

    def __call__(self, step: int) -> float:
        return 0.5 * self.lr * (math.cos(math.pi * self._fraction(step)) + 1.0)

    def exploring(self, step: int) -> bool:
        return self._fraction(step) < self.explore_fraction

    def sampling(self, step: int) -> bool:
        return not self.exploring(step)

    def __repr__(self) -> str:
        return (
            f"CyclicalCosine(lr={self.lr}, num_steps={self.num_steps}, "
            f"num_cycles={self.num_cycles}, explore_fraction={self.explore_fraction})"
        )


class _Callable(Schedule):
    def __init__(self, fn: Any, name: str, allow_zero: bool) -> None:
        self.fn, self.name, self.allow_zero = fn, name, allow_zero

    def __call__(self, step: int) -> float:
        return check_positive(f"{self.name} at step {step}", self.fn(step), self.allow_zero)


def as_schedule(value: Any, name: str, allow_zero: bool = False) -> Schedule:
    """Turn a number, a :class:`Schedule` or a plain callable into a :class:`Schedule`.

    Numbers are validated here (``name`` names the argument in the error); a plain callable is
    validated at every step it is evaluated.
    """
    if isinstance(value, Schedule):
        return value
    if callable(value):
        return _Callable(value, name, allow_zero)
    return Constant(value, name=name, allow_zero=allow_zero)
