"""``Chains``: what :func:`~bayesdepth.inference.sample` returns, and the subsets a report needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch

__all__ = ["Chains"]


def _cat(trees: list[Any]) -> Any:
    """Trees of the same structure joined along their chains (tensors with a chain dimension)."""
    first = trees[0]
    if isinstance(first, torch.Tensor):
        return torch.cat([t.cpu() for t in trees]) if first.dim() else first
    if isinstance(first, Mapping):
        return {k: _cat([t[k] for t in trees]) for k in first}
    if hasattr(first, "__dataclass_fields__"):
        return replace(first, **{f.name: _cat([getattr(t, f.name) for t in trees])
                                 for f in fields(first)})
    return first


def _take(tree: Any, index: torch.Tensor) -> Any:
    """Rows ``index`` (chains) of every tensor in a tree (dicts, dataclass states, tensors)."""
    if isinstance(tree, torch.Tensor):
        return tree.index_select(0, index.to(tree.device)) if tree.dim() else tree
    if isinstance(tree, Mapping):
        return {k: _take(v, index) for k, v in tree.items()}
    if hasattr(tree, "__dataclass_fields__"):
        return replace(tree, **{f.name: _take(getattr(tree, f.name), index) for f in fields(tree)})
    return tree


@dataclass
class Chains:
    """The result of :func:`~bayesdepth.inference.sample`.

    Attributes:
        draws: ``{name: tensor (chains, draws, *shape)}`` on the CPU, constrained space.
        stats: ``{name: tensor (chains, draws)}``: potential, grad_norm, lr, temperature,
            nonfinite, and any extra statistics the sampler reports (e.g. grad_noise, grad_sq).
        failures: ``(chain, step)`` pairs where a non-finite value stopped a chain.
        observed_data: the potential's observed data, if it knows it.
        state: the sampler state after the last step (on the chains' device); pass it to
            ``sample(state=...)`` to continue from it (a warm start).
        steps: the total number of sampler steps taken.
        potential: the potential the chains ran on (used by ``to_arviz`` for the pointwise
            log-likelihood, derived quantities and predictive draws).
    """

    draws: dict[str, torch.Tensor]
    stats: dict[str, torch.Tensor]
    failures: list[tuple[int, int]] = field(default_factory=list)
    observed_data: dict[str, torch.Tensor] | None = None
    state: Any = None
    steps: int = 0
    potential: Any = field(default=None, repr=False)

    @property
    def num_chains(self) -> int:
        return next(iter(self.draws.values())).shape[0]

    @property
    def num_draws(self) -> int:
        return next(iter(self.draws.values())).shape[1]

    @property
    def failed_chains(self) -> list[int]:
        """The chains a non-finite value stopped, in order."""
        return sorted({chain for chain, _ in self.failures})

    def describe_failures(self) -> str:
        """``chain 0 at step 15, chain 3 at step 19``: where each stopped chain stopped."""
        first: dict[int, int] = {}
        for chain, step in self.failures:
            first.setdefault(chain, step)
        return ", ".join(f"chain {c} at step {s}" for c, s in sorted(first.items()))

    def select(self, chains: Sequence[int]) -> Chains:
        """The given chains only (draws, statistics, state), renumbered from 0 in that order."""
        index = torch.as_tensor(list(chains), dtype=torch.long)
        if index.numel() == 0:
            raise ValueError("chains must name at least one chain")
        if int(index.min()) < 0 or int(index.max()) >= self.num_chains:
            raise ValueError(
                f"chains must lie in [0, {self.num_chains}), got {index.tolist()}"
            )
        new = {int(old): i for i, old in enumerate(index.tolist())}
        return replace(
            self,
            draws=_take(self.draws, index),
            stats=_take(self.stats, index),
            failures=[(new[c], s) for c, s in self.failures if c in new],
            state=_take(self.state, index),
        )

    def detached(self) -> Chains:
        """A copy without the potential and with the state on the CPU (to send elsewhere)."""
        return replace(self, potential=None, state=_cat([self.state]))

    @classmethod
    def concatenate(cls, parts: Sequence[Chains], potential: Any = None) -> Chains:
        """The chains of several runs of one sampler joined (e.g. the blocks of the processes
        of a distributed run, in rank order); ``failures`` are already numbered globally."""
        if not parts:
            raise ValueError("parts must hold at least one Chains")
        first = parts[0]
        return cls(
            draws=_cat([p.draws for p in parts]),
            stats=_cat([p.stats for p in parts]),
            failures=[f for p in parts for f in p.failures],
            observed_data=first.observed_data,
            state=_cat([p.state for p in parts]),
            steps=first.steps,
            potential=potential,
        )

    def healthy(self) -> Chains:
        """The chains that never stopped (raises when every chain stopped)."""
        keep = [c for c in range(self.num_chains) if c not in set(self.failed_chains)]
        if not keep:
            raise FloatingPointError(
                f"all {self.num_chains} chains stopped at a non-finite value "
                f"({self.describe_failures()})"
            )
        return self.select(keep)

    def to_arviz(self, **kwargs: Any) -> Any:
        """ArviZ ``InferenceData`` (see :func:`bayesdepth.inference.diagnostics.to_arviz`)."""
        from .diagnostics import to_arviz

        return to_arviz(self, **kwargs)

