"""The runner's recorder: draws and statistics kept on the device, copied to the host in chunks."""

from __future__ import annotations

import torch

__all__ = ["Recorder"]


class Recorder:
    """Collects one ``{key: (chains, ...)}`` record per kept draw; every ``chunk_size`` records
    are stacked along a new draw axis (dimension 1) and copied to the CPU, so device memory does
    not grow with the number of draws.

    Args:
        chunk_size: records kept on the device before a copy.
        host: records already on the host (``{key: [tensor (chains, draws, ...)]}``), e.g. from a
            checkpoint.
    """

    def __init__(self, chunk_size: int, host: dict[str, list[torch.Tensor]] | None = None):
        self.chunk_size = chunk_size
        self.pending: dict[str, list[torch.Tensor]] = {}
        self.host: dict[str, list[torch.Tensor]] = host or {}
        self.count = sum(x.shape[1] for x in next(iter(self.host.values()), []))

    def add(self, values: dict[str, torch.Tensor]) -> None:
        """Keep one record (one draw of every chain)."""
        for k, v in values.items():
            self.pending.setdefault(k, []).append(v.detach())
        self.count += 1
        if len(next(iter(self.pending.values()))) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        """Copy the pending records to the host."""
        for k, v in self.pending.items():
            self.host.setdefault(k, []).append(torch.stack(v, dim=1).cpu())
        self.pending = {}

    def result(self) -> dict[str, torch.Tensor]:
        """Every record, ``{key: (chains, draws, ...)}`` on the CPU."""
        self.flush()
        # one chunk is returned as it is: a copy of every draw would double the peak memory
        return {k: v[0] if len(v) == 1 else torch.cat(v, dim=1) for k, v in self.host.items()}
