"""What every example shares: the command-line options every script has, and figure output.

Each script is run as ``python examples/<name>.py [--quick] [--out DIR] [--seed S]``; the tests
run every script with ``--quick``. The figures are written with ``bayesdepth.plotting.save_figure``
on matplotlib's Agg backend (the examples write files, they never open windows).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch

from bayesdepth.plotting import save_figure

__all__ = ["example_parser", "save", "start"]


def example_parser(doc: str, name: str) -> argparse.ArgumentParser:
    """A parser with ``--quick``, ``--out`` (default ``runs/<name>``) and ``--seed``."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run for tests (seconds)")
    parser.add_argument("--out", type=Path, default=Path("runs") / name, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return parser


def start(args: argparse.Namespace) -> Path:
    """One torch thread (these models are small), the output folder created; returns it."""
    torch.set_num_threads(int(os.environ.get("BAYESDEPTH_THREADS", "1")))
    args.out.mkdir(parents=True, exist_ok=True)
    return args.out


def save(fig, args: argparse.Namespace, filename: str) -> Path:
    """Write ``fig`` to ``<out>/<filename>`` (PNG), close it and say so."""
    path = save_figure(fig, args.out / filename)
    print(f"wrote {path}")
    return path
