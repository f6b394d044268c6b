"""The random stream of a run whose chains are split across processes.

A run of K chains draws its random numbers (injected noise, minibatch indices, initial values)
for all K chains at once from one generator. When the chains are split across processes,
process r keeps chains ``[lo, hi)``; :class:`ChainStream` is a ``torch.Generator`` that knows that
slice, and the few places that draw per-chain random numbers (:func:`chain_draw`) draw for all
K chains and keep the slice. Every process then sees exactly the random numbers its chains would
see in a single-process run with the same seed, so the draws are the same bit for bit; the
random-number work (cheap) is repeated on every process, the gradient work (expensive) is split.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["ChainStream", "chain_draw", "chain_slice", "local"]


class ChainStream(torch.Generator):
    """A generator for chains ``[lo, hi)`` of a run of ``total`` chains (see the module doc)."""

    lo: int = 0
    hi: int = 0
    total: int = 0

    @classmethod
    def create(cls, device: torch.device, lo: int, hi: int, total: int) -> ChainStream:
        if not 0 <= lo < hi <= total:
            raise ValueError(f"a chain slice needs 0 <= lo < hi <= total, got {lo}, {hi}, {total}")
        stream = cls(device=device)
        stream.lo, stream.hi, stream.total = lo, hi, total
        return stream


def chain_slice(generator: torch.Generator | None, num_chains: int) -> tuple[int, int, int]:
    """``(lo, hi, total)``: the chains ``generator`` draws for; ``(0, K, K)`` for a plain one."""
    if isinstance(generator, ChainStream):
        if generator.hi - generator.lo != num_chains:
            raise ValueError(f"the stream is for {generator.hi - generator.lo} chains, the draw "
                             f"for {num_chains}")
        return generator.lo, generator.hi, generator.total
    return 0, num_chains, num_chains


def local(tree: Any, lo: int, hi: int, total: int) -> Any:
    """The chains ``[lo, hi)`` of every tensor leaf (leading chain dimension) of a tree."""
    if (lo, hi) == (0, total) or tree is None:
        return tree
    if isinstance(tree, torch.Tensor):
        return tree[lo:hi]
    if isinstance(tree, dict):
        return {k: local(v, lo, hi, total) for k, v in tree.items()}
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a NamedTuple batch
        return type(tree)(*(local(v, lo, hi, total) for v in tree))
    if isinstance(tree, tuple | list):
        return type(tree)(local(v, lo, hi, total) for v in tree)
    return tree


def chain_draw(draw: Callable[..., torch.Tensor], shape: tuple[int, ...],
               generator: torch.Generator | None, **kwargs: Any) -> torch.Tensor:
    """``draw(shape, generator=generator, **kwargs)`` for the local chains ``shape[0]`` of a run:
    drawn for all of the run's chains and sliced (e.g. ``chain_draw(torch.randn, (k, d), g)``)."""
    lo, hi, total = chain_slice(generator, shape[0])
    out = draw((total, *shape[1:]), generator=generator, **kwargs)
    return local(out, lo, hi, total)
