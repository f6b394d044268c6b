"""Seeds: the global generators seeded at once, and a block of code run under a seed.

Every stochastic entry point takes ``seed`` (an int in ``[0, 2**63)``, checked by
``bayesdepth._validation.check_seed``) or ``None`` (fresh randomness); :func:`seeded` runs a
block with torch's global generator seeded and restores its state afterwards, so seeding one
computation never changes another's random numbers.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

from ._validation import check_seed

__all__ = ["seed_everything", "seeded"]


def seed_everything(seed: int) -> None:
    """Seed torch's, NumPy's and Python's global generators, as ``pyro.set_rng_seed`` does, for
    any seed in ``[0, 2**63)`` (NumPy's legacy generator takes ``seed mod 2**32``)."""
    seed = check_seed(seed)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (Pyro's own samplers draw from the legacy one)


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device | str | None = None) -> Iterator[None]:
    """Run a block with torch's global RNG seeded by ``seed``, restoring its state afterwards.

    ``seed=None`` leaves the global random state alone (fresh randomness). ``device``: a CUDA
    device whose generator is seeded (and restored) too.
    """
    if check_seed(seed) is None:
        yield
        return
    device = torch.device("cpu" if device is None else device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
