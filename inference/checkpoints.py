"""Checkpoint files of :func:`~bayesdepth.inference.sample`, bound to the run that wrote them.

A checkpoint holds the sampler state, the generator state, the loop counters and the draws so
far, together with the run's fingerprint (:func:`~.fingerprint.run_fingerprint`: what determines
the draws) and a SHA-256 checksum of its payload. It is written to a temporary file and renamed,
so a killed run never leaves a half-written checkpoint; it is read with ``weights_only=True``, so
nothing but tensors and containers is unpickled. Resuming checks, in this order: that the file is
a checkpoint at all and intact (one error naming the file otherwise), that it belongs to this run
(an error naming the settings that differ), and that the number of draws asked for is one it can
give (:func:`check_resume`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckpointMismatch",
    "check_resume",
    "checkpoint_file",
    "load_checkpoint",
    "save_checkpoint",
    "state_dict",
    "to_device",
]

_FORMAT = "bayesdepth.chains"
_VERSION = 2


class CheckpointMismatch(ValueError):
    """The checkpoint holds another run, or more draws than this run asks for."""


def checkpoint_file(folder: str | os.PathLike, rank: int = 0, world_size: int = 1) -> Path:
    """``folder/checkpoint.pt``, or ``folder/checkpoint-rank<r>-of-<R>.pt`` for one process of a
    distributed run."""
    name = "checkpoint.pt" if world_size == 1 else f"checkpoint-rank{rank}-of-{world_size}.pt"
    return Path(folder) / name


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


def save_checkpoint(path: Path, fingerprint: dict[str, str], payload: dict[str, Any]) -> None:
    """Write the run's ``payload`` with its ``fingerprint`` and checksum to ``path``, atomically
    (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(to_device(payload, torch.device("cpu")), buffer)
    body = buffer.getvalue()
    record = {"format": _FORMAT, "version": _VERSION, "fingerprint": dict(fingerprint),
              "sha256": hashlib.sha256(body).hexdigest(), "payload": body}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(record, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """``(fingerprint, payload)`` of the checkpoint at ``path``.

    Raises:
        ValueError: the file is not a bayesdepth chain checkpoint, is truncated, or fails its
            checksum (one message naming the file).
    """
    def refuse(why: str) -> ValueError:
        return ValueError(f"checkpoint {path} cannot be used: {why}; delete it, use another "
                          "folder, or pass overwrite=True to start afresh")

    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, corrupt or foreign: all the same to the user
        raise refuse(f"it is not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise refuse("it is not a bayesdepth chain checkpoint")
    if record.get("version") != _VERSION:
        raise refuse(f"it has format version {record.get('version')}, not {_VERSION}")
    body = record.get("payload")
    if not isinstance(body, bytes) or hashlib.sha256(body).hexdigest() != record.get("sha256"):
        raise refuse("its checksum does not match its content (the file was changed or damaged)")
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise refuse(f"its content is not readable ({type(exc).__name__})") from None
    return record["fingerprint"], payload


def check_resume(path: Path, stored: dict[str, str], current: dict[str, str], held: int,
                 target: int, num_draws: int, extend: bool) -> None:
    """Raise unless the run that wrote ``path`` (fingerprint ``stored``, ``held`` draws of a
    ``target``) is this run (``current``) and can give ``num_draws`` draws.

    Raises:
        ValueError: naming every setting that differs; or when the checkpoint holds more draws
            than asked for; or when more are asked for than the run it holds was started with
            and ``extend`` is False.
    """
    differ = [k for k in sorted(set(stored) | set(current)) if stored.get(k) != current.get(k)]
    if differ:
        details = "; ".join(f"{k}: {stored.get(k)!r} there, {current.get(k)!r} here"
                            for k in differ)
        raise CheckpointMismatch(
            f"checkpoint {path} belongs to another run ({', '.join(differ)} differ: {details}); "
            "use another folder, or overwrite=True to start afresh"
        )
    if num_draws < held:
        raise CheckpointMismatch(
            f"checkpoint {path} holds {held} draws, but this run asks for num_draws="
            f"{num_draws}; ask for at least {held}, use another folder, or overwrite=True"
        )
    if num_draws > target and not extend:
        raise ValueError(
            f"checkpoint {path} is a run of {target} draws ({held} done), but this run asks for "
            f"num_draws={num_draws}; pass extend=True to extend it, or use another folder"
        )
