"""Tiny helpers over sampler parameters: a tensor, or a dict of tensors, with a chain dimension."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Union

import torch

from bayesdepth._validation import check_tensor

from .streams import chain_draw

Params = Union[torch.Tensor, Mapping[str, torch.Tensor]]  # noqa: UP007 (runtime alias on 3.10)


def tree_map(fn: Callable[..., torch.Tensor], tree: Params, *rest: Params) -> Params:
    """Apply ``fn`` leaf-wise to one or more trees of the same structure."""
    if isinstance(tree, torch.Tensor):
        return fn(tree, *rest)
    return {k: fn(v, *(r[k] for r in rest)) for k, v in tree.items()}


def leaves(tree: Params) -> list[torch.Tensor]:
    return [tree] if isinstance(tree, torch.Tensor) else list(tree.values())


def chain_sq_norm(tree: Params) -> torch.Tensor:
    """Squared Euclidean norm per chain, shape (chains,)."""
    return sum(x.reshape(x.shape[0], -1).pow(2).sum(-1) for x in leaves(tree))


def randn_like(tree: Params, generator: torch.Generator | None) -> Params:
    """Standard normal noise with the structure, dtype and device of ``tree``.

    Leaves that share a dtype and device are drawn in one generator call, chain by chain (a
    (chains, numbers per chain) draw, parameters in dict order within a chain), and split, so a
    step costs one random-number kernel rather than one per parameter. With a
    :class:`~.streams.ChainStream` the draw covers all of the run's chains and keeps this
    process's (:func:`~.streams.chain_draw`).
    """
    parts = leaves(tree)
    first = parts[0]
    if any(p.dtype != first.dtype or p.device != first.device for p in parts):
        return tree_map(lambda x: chain_draw(torch.randn, tuple(x.shape), generator,
                                             dtype=x.dtype, device=x.device), tree)
    sizes = [p[0].numel() for p in parts]
    flat = chain_draw(torch.randn, (first.shape[0], sum(sizes)), generator, dtype=first.dtype,
                      device=first.device)
    chunks = [c.reshape(p.shape) for c, p in zip(flat.split(sizes, dim=1), parts)]
    if isinstance(tree, torch.Tensor):
        return chunks[0]
    return dict(zip(tree.keys(), chunks))


def check_params(params: Any, name: str = "params") -> int:
    """Validate a parameter tree and return its number of chains (the leading dimension)."""
    if isinstance(params, Mapping):
        if not params:
            raise ValueError(f"{name} must not be an empty dict")
        items = [(f"{name}[{k!r}]", v) for k, v in params.items()]
    else:
        items = [(name, params)]
    num_chains = None
    for label, value in items:
        check_tensor(label, value, floating=True)
        if value.dim() < 1:
            raise ValueError(f"{label} must have a leading chain dimension, got a scalar tensor")
        if num_chains is None:
            num_chains = value.shape[0]
        elif value.shape[0] != num_chains:
            raise ValueError(
                f"{label} has {value.shape[0]} chains (leading dimension) but other entries "
                f"have {num_chains}"
            )
    return num_chains


def chain_where(mask: torch.Tensor, new: Any, old: Any) -> Any:
    """Per chain, take ``new`` where ``mask`` is True, else ``old`` (tensors or dicts of them)."""
    if isinstance(new, torch.Tensor):
        m = mask.reshape(mask.shape + (1,) * (new.dim() - 1))
        return torch.where(m, new, old)
    if isinstance(new, Mapping):
        return {k: chain_where(mask, v, old[k]) for k, v in new.items()}
    return new
