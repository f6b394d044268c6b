r"""A stable step size for the data at hand: a short pilot over a geometric grid.

A fixed default step size cannot suit every data set: SG-MCMC acts on the potential
``U = -log p(theta) - sum_n log p(x_n | theta)``, whose curvature grows with the number of data
points, and SGLD is stable only for ``eps lambda_max(grad^2 U) < 4`` (docs/theory.md §5.2).
:func:`find_step_size` runs the sampler for a few hundred steps at each step size of a
geometric grid, largest first, from the same start, and keeps the largest one whose pilot stays
*stable*: every potential, gradient and state finite (and no ODE solve of the model failing), and
the potential in the second half of the pilot not above its start by more than ``tolerance`` (a
diverging chain grows geometrically, a stable one relaxes towards ``U_min + d T / 2``). The step
size returned is that one divided by ``backoff`` (default ``sqrt(10)``, one grid point), so the
run keeps a margin to the edge of the stable region: the curvature changes as the chains move (a
noise scale that shrinks towards its posterior sharpens the likelihood), and the discretisation
bias (``(I - eps P / 4)^{-1}`` for SGLD on a Gaussian) grows near the edge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bayesdepth._validation import check_positive, check_positive_int
from bayesdepth.anode import ODESolverError

from .checkpoints import to_device
from .potentials import Potential
from .samplers._tree import leaves
from .samplers.base import Sampler

__all__ = ["StepSizeChoice", "find_step_size", "geometric_grid"]


def geometric_grid(high: float = 1.0, low: float = 1e-8, per_decade: int = 2) -> list[float]:
    """``high, high / 10^(1/k), ...`` down to ``low`` (``k = per_decade``), largest first."""
    high, low = check_positive("high", high), check_positive("low", low)
    per_decade = check_positive_int("per_decade", per_decade)
    if low > high:
        raise ValueError(f"low must be <= high, got low={low!r} and high={high!r}")
    count = math.floor(per_decade * math.log10(high / low) + 1e-9) + 1
    return [high * 10 ** (-i / per_decade) for i in range(count)]


@dataclass(frozen=True)
class StepSizeChoice:
    """What :func:`find_step_size` found.

    Attributes:
        lr: the chosen step size (the largest stable one divided by ``backoff``).
        largest_stable: the largest step size of the grid whose pilot was stable.
        tried: ``(step size, verdict)`` for every pilot run, largest first; the verdict is
            ``"stable"``, ``"non-finite at step s"`` or ``"potential grew by x"``.
        steps: pilot steps per step size.
    """

    lr: float
    largest_stable: float
    tried: tuple[tuple[float, str], ...]
    steps: int

    def __str__(self) -> str:
        return (
            f"step size {self.lr:.3g}: the largest stable step size of a {self.steps}-step "
            f"pilot over a geometric grid was {self.largest_stable:.3g} "
            f"({len(self.tried)} tried, from {self.tried[0][0]:.3g}), divided by "
            f"{self.largest_stable / self.lr:.3g}"
        )


def _pilot(potential: Potential, sampler: Sampler, params: Any, num_chains: int, steps: int,
           generator: torch.Generator, tolerance: float) -> str:
    """Run ``steps`` steps from ``params``; the verdict of :class:`StepSizeChoice`."""
    state = sampler.init(params)
    grad_fn = potential.grad_fn(num_chains)
    start, late = None, None
    for step in range(steps):
        try:
            state, info = sampler.step(state, grad_fn, generator)
        except (FloatingPointError, ODESolverError):  # how the models report a blow-up
            return f"non-finite at step {step}"
        values = [info["potential"], info["grad_norm"], *leaves(state.params)]
        if not all(bool(torch.isfinite(v).all()) for v in values):
            return f"non-finite at step {step}"
        if start is None:
            start = info["potential"].clone()
        if step >= steps // 2:
            late = info["potential"] if late is None else torch.maximum(late, info["potential"])
    growth = float((late - start).max()) if late is not None else 0.0
    if growth > tolerance:
        return f"potential grew by {growth:.3g}"
    return "stable"


def find_step_size(
    potential: Potential,
    make_sampler: Callable[[float], Sampler],
    *,
    num_chains: int = 4,
    init: Any = None,
    grid: Sequence[float] | None = None,
    steps: int = 300,
    backoff: float = 10**0.5,
    tolerance: float | None = None,
    seed: int = 0,
) -> StepSizeChoice:
    """The largest stable step size of a short pilot over a geometric grid, divided by ``backoff``.

    Args:
        potential: the potential the run will sample.
        make_sampler: ``lr -> sampler`` (e.g. ``lambda lr: SGLD(lr, temperature=T)``).
        num_chains: pilot chains (every one must stay stable).
        init: the run's start ``{name: (chains, *shape)}`` (unconstrained); None draws one with
            ``potential.init`` from a generator seeded with ``seed``.
        grid: step sizes to try (sorted largest first here); default
            :func:`geometric_grid` ``(1, 1e-8)``, two per decade.
        steps: pilot steps per step size (at least 4).
        backoff: the returned step size is the largest stable one divided by this (>= 1).
        tolerance: how far the potential may rise above its start in the second half of the
            pilot; default ``max(10, d) + 0.1 |U_start|`` (``d`` parameters per chain).
        seed: seeds the pilot (its start, minibatches and noise).

    Returns:
        :class:`StepSizeChoice`.

    Raises:
        FloatingPointError: when no step size of the grid gives a stable pilot.
    """
    num_chains = check_positive_int("num_chains", num_chains)
    steps = check_positive_int("steps", steps, minimum=4)
    backoff = check_positive("backoff", backoff)
    if backoff < 1:
        raise ValueError(f"backoff must be >= 1, got {backoff!r}")
    grid = sorted((check_positive("grid", g) for g in (grid or geometric_grid())), reverse=True)
    device = potential.device or torch.device("cpu")
    generator = torch.Generator(device=device).manual_seed(seed)
    params = (potential.init(num_chains, generator) if init is None
              else to_device(potential.check_init(init, num_chains), device))
    if tolerance is None:
        dim = sum(leaf[0].numel() for leaf in leaves(params))
        with torch.no_grad():
            start, _ = potential(params, potential.sample_batch(num_chains, generator))
        tolerance = max(10.0, dim) + 0.1 * float(start.abs().max())
    tried = []
    for lr in grid:
        run = torch.Generator(device=device).manual_seed(seed + 1)
        verdict = _pilot(potential, make_sampler(lr), params, num_chains, steps, run, tolerance)
        tried.append((lr, verdict))
        if verdict == "stable":
            return StepSizeChoice(lr / backoff, lr, tuple(tried), steps)
    raise FloatingPointError(
        f"no step size in [{grid[-1]:.3g}, {grid[0]:.3g}] kept a {steps}-step pilot of "
        f"{num_chains} chains finite and bounded (last: {tried[-1][1]}); check the model and "
        "its data, or pass a step size"
    )
