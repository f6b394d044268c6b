"""Figures shared by the command line, the demo, the examples and ``bayesdepth.inference``.

matplotlib is imported when a figure is drawn, and its backend is never switched here (a notebook
keeps its own; the command line selects ``Agg``). :func:`save_figure` is the one way every figure
of the package is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["loss_curve", "predictive_band", "save_figure"]


def predictive_band(
    x: torch.Tensor,
    y: torch.Tensor,
    x_test: torch.Tensor,
    mean: torch.Tensor,
    sd: torch.Tensor,
    path: str | Path,
    title: str = "posterior predictive",
    samples: torch.Tensor | None = None,
) -> Path:
    """Data points, predictive mean and a +/- 2 sd band on a 1-D test grid; saved as PNG.

    ``samples`` (k, m), if given, draws k function samples on the grid as thin lines.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    grid, mu, s = (t.detach().cpu().reshape(-1) for t in (x_test, mean, sd))
    order = grid.argsort()
    grid, mu, s = grid[order], mu[order], s[order]
    ax.fill_between(grid, mu - 2 * s, mu + 2 * s, color="C0", alpha=0.25, label="mean ± 2 sd")
    if samples is not None:
        for row in samples.detach().cpu()[:, order]:
            ax.plot(grid, row, color="C0", lw=0.5, alpha=0.4)
    ax.plot(grid, mu, color="C0", lw=2, label="predictive mean")
    ax.scatter(x.detach().cpu().reshape(-1), y.detach().cpu().reshape(-1), s=12, color="k",
               zorder=3, label="data")
    ax.set_xlabel("x (normalised)")
    ax.set_ylabel("y")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    return save_figure(fig, path)


def loss_curve(values: Sequence[float], path: str | Path, ylabel: str = "-ELBO") -> Path:
    """A training curve (log y axis when every value is positive)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(values) + 1), values, lw=1)
    if min(values) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def save_figure(fig: Any, path: str | Path, *, dpi: int = 110) -> Path:
    """Save the matplotlib figure ``fig`` as a PNG (parent folders created), close it, and
    return the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path
