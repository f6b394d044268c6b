"""What every command needs before it starts: a writable output folder, a device, a way to talk."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

__all__ = ["Reporter", "output_folder", "placement", "resolve_device"]


class Reporter:
    """Prints progress messages unless ``quiet``."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)


def output_folder(path: str | os.PathLike, flag: str) -> Path:
    """Create ``path`` (and its parents) and check that files can be written there, before any
    work starts; errors name the ``flag``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag}: {str(path)!r} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ValueError(f"{flag}: cannot write to {str(path)!r} ({exc.strerror or exc})") from None
    return path


def placement(device: str | None, distributed: bool) -> tuple[torch.device | None, bool]:
    """Where this process computes and whether it writes the files: with ``distributed`` it
    joins the ``torchrun`` group (NCCL on CUDA: ``cuda:<local rank>``) and only rank 0
    writes."""
    place = resolve_device(device)
    if not distributed:
        return place, True
    from bayesdepth import distributed as ddp

    group = ddp.process_group(device=place)
    if group.backend == "nccl":
        torch.cuda.set_device(group.device)
        place = group.device
    return place, group.is_main


def resolve_device(name: str | None) -> torch.device | None:
    """The torch device called ``name`` (None: where the data lie, the CPU), checked to exist."""
    if name is None:
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be cpu, cuda, cuda:<index> or mps, got {name!r}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return device
    if device.type == "mps" and torch.backends.mps.is_available():
        return device
    raise ValueError(f"device {name!r} is not available here; use cpu or cuda")
