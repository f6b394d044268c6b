"""Run a worker script under ``torchrun`` on loopback, with a port from a fixed range and a
timeout (the multi-process tests use only this)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

PORTS = range(29_650, 29_750)


def free_port() -> int:
    """A port of :data:`PORTS` that nothing listens on now (tried in random order)."""
    for port in random.sample(PORTS, len(PORTS)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def torchrun(script: Path | str, *args: str, nproc: int = 2, timeout: float = 120.0,
             monitor_interval: float = 0.1):
    """``torchrun --nproc_per_node=nproc script args`` on 127.0.0.1 (``script`` a file, or
    ``"-m"`` followed by a module name in ``args``); returns the finished process
    (``returncode``, ``stdout``, ``stderr``). A port taken between the check and the launch is
    retried once with another. ``monitor_interval``: how often (seconds) torchrun looks at its
    workers; after one fails it stops the others at its next look (0.1 is torchrun's default)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    for _ in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}", "--max_restarts=0",
               f"--monitor-interval={monitor_interval}", str(script), *args]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if "address already in use" not in run.stderr.lower():
            break
    return run
