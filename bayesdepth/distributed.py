"""Several processes, one computation: the few ``torch.distributed`` operations bayesdepth needs.

Processes are started by ``torchrun`` (``torchrun --nproc_per_node=N script.py``, or with
``--nnodes`` and ``--rdzv-endpoint`` across machines), which gives every process its rank, the
group's size and the rendezvous address through environment variables. :func:`process_group`
joins that group (gloo on CPUs, NCCL when the data live on CUDA devices) or reuses one the caller
already set up; nothing here opens sockets of its own or chooses addresses.

Collectives run with a timeout: when a rank dies, ``torchrun`` stops the others, and a rank
blocked in a collective gets a :class:`RankFailure` naming itself and the step instead of hanging.
"""

from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ._validation import check_seed

__all__ = ["Group", "RankFailure", "process_group", "rank_generator", "shared_seed"]

_LAUNCH = "torchrun --nproc_per_node=2 your_script.py"


class RankFailure(RuntimeError):
    """A collective operation failed: another rank died, or the group timed out."""


@dataclass(frozen=True)
class Group:
    """This process's place in the group: ``rank`` in ``[0, world_size)``, its ``local_rank``
    on its machine, and the backend in use."""

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and prints; the others compute."""
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """Where this rank's collectives run: ``cuda:<local_rank>`` with NCCL, else the CPU."""
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else \
            torch.device("cpu")

    def all_mean(self, tensors: list[torch.Tensor], what: str) -> None:
        """Replace every tensor by its mean over the ranks (one flattened all-reduce)."""
        if not tensors:
            return
        flat = torch.cat([t.reshape(-1).to(self.device, tensors[0].dtype) for t in tensors])
        self._run(lambda: dist.all_reduce(flat, op=dist.ReduceOp.SUM), what)
        flat /= self.world_size
        offset = 0
        for t in tensors:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()

    def agree(self, flag: bool, what: str) -> bool:
        """True on every rank when ``flag`` is True on any rank."""
        votes = torch.tensor([float(flag)], device=self.device)
        self._run(lambda: dist.all_reduce(votes, op=dist.ReduceOp.MAX), what)
        return bool(votes[0] > 0)

    def gather(self, obj: Any, what: str) -> list[Any] | None:
        """Every rank's ``obj`` (picklable, on the CPU) in rank order on rank 0; None elsewhere.

        Rank 0's own ``obj`` is not serialised (only the others' travel), so gathering large draws
        holds one copy of them on rank 0, not three.
        """
        if self.world_size == 1:
            return [obj]
        out = [None] * self.world_size if self.is_main else None
        self._run(lambda: dist.gather_object(None if self.is_main else obj, out, dst=0), what)
        if out is not None:
            out[0] = obj
        return out

    def broadcast(self, tensor: torch.Tensor, what: str) -> torch.Tensor:
        """Rank 0's ``tensor`` on every rank."""
        self._run(lambda: dist.broadcast(tensor, src=0), what)
        return tensor

    def _run(self, op, what: str) -> None:
        try:
            op()
        except (RuntimeError, dist.DistError) as exc:
            raise RankFailure(
                f"rank {self.rank} of {self.world_size}: {what} failed, another rank probably "
                f"stopped ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
            ) from None


def process_group(device: torch.device | str | None = None, timeout_s: float = 120.0) -> Group:
    """Join the process group ``torchrun`` describes (or use the one already initialised).

    Args:
        device: where this rank's data live; CUDA selects the NCCL backend, anything else gloo.
        timeout_s: how long a collective may wait for the other ranks.

    Raises:
        RuntimeError: not started by ``torchrun`` (the ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``
            variables are missing), or ``torch.distributed`` is not available.
    """
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this PyTorch build")
    if not dist.is_initialized():
        missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
                   if v not in os.environ]
        if missing:
            raise RuntimeError(
                f"distributed=True needs a process group: start the processes with torchrun "
                f"(e.g. {_LAUNCH}); missing environment variable(s) {', '.join(missing)}"
            )
        cuda = device is not None and torch.device(device).type == "cuda"
        dist.init_process_group("nccl" if cuda else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
        atexit.register(_leave)
    return Group(rank=dist.get_rank(), world_size=dist.get_world_size(),
                 local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
                 backend=str(dist.get_backend()))


def _leave() -> None:
    """Destroy the group this module started, at exit: a gloo group left to the interpreter's
    teardown can abort the process while its threads still run."""
    if dist.is_initialized():
        dist.destroy_process_group()


def shared_seed(seed: int | None, group: Group) -> int:
    """``seed``, or (for None) a fresh seed drawn on rank 0, the same on every rank."""
    if check_seed(seed) is not None:
        return seed
    fresh = torch.randint(0, 2**62, (1,), dtype=torch.int64, device=group.device)
    return int(group.broadcast(fresh, "agreeing on a seed")[0])


def rank_generator(seed: int, rank: int) -> torch.Generator:
    """A CPU generator whose stream is this rank's own (seeded from ``seed`` and ``rank``)."""
    mixed = (check_seed(seed) * 0x9E3779B97F4A7C15 + rank + 1) % 2**63
    return torch.Generator().manual_seed(mixed)
