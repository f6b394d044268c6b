"""Checkpoint files of :func:`~bayesdepth.inference.sample`: one ``checkpoint.pt`` per folder.

A checkpoint holds the sampler state, the generator state, the loop counters and the draws so
far (all on the CPU); it is written to a temporary file and renamed, so a killed run never leaves
a half-written checkpoint. Loading uses ``weights_only=True`` (no arbitrary unpickling).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["CHECKPOINT", "load_checkpoint", "save_checkpoint", "state_dict", "to_device"]

CHECKPOINT = "checkpoint.pt"


def to_device(tree: Any, device: torch.device) -> Any:
    """Every tensor of a tree of dicts moved to ``device``."""
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, Mapping):
        return {k: to_device(v, device) for k, v in tree.items()}
    return tree


def state_dict(state: Any) -> dict[str, Any]:
    """The fields of a sampler state (a frozen dataclass) as a dict."""
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(to_device(payload, torch.device("cpu")), tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, sampler_name: str, num_chains: int) -> dict[str, Any]:
    """Read the checkpoint at ``path`` and check that it is a run of ``num_chains`` chains of the
    sampler class ``sampler_name``.

    Raises:
        ValueError: naming the file, what it holds and what this run asks for.
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt["num_chains"] != num_chains or ckpt["sampler"] != sampler_name:
        raise ValueError(
            f"checkpoint {path} holds {ckpt['num_chains']} chains of {ckpt['sampler']}, "
            f"but this run asks for {num_chains} chains of {sampler_name}; "
            "use another folder or resume=False"
        )
    return ckpt
