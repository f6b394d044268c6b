"""Pyro keeps global state (its parameter store and its stack of effect handlers), so two threads
running Pyro code at once would corrupt each other's traces. bayesdepth's Pyro entry points
(:func:`bayesdepth.fit`, every model's ``model``, ``guide`` and ``predict``) therefore refuse to
run in a second thread while another one is inside them, with an error that says so. Run
concurrent fits in separate processes instead.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["pyro_exclusive"]

_LOCK = threading.RLock()  # re-entrant: one thread may nest entry points freely


@contextlib.contextmanager
def pyro_exclusive(entry: str) -> Iterator[None]:
    """Hold the process-wide Pyro lock for ``entry``; raise at once if another thread holds it."""
    if not _LOCK.acquire(blocking=False):
        raise RuntimeError(
            f"{entry} was called while another thread is running Pyro code: Pyro's global state "
            "(its parameter store and effect-handler stack) cannot be shared between threads; "
            "run concurrent fits in separate processes"
        )
    try:
        yield
    finally:
        _LOCK.release()
