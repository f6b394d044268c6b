"""Figures shared by the command line, the demo and the examples (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
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
    """A training curve (symlog y axis when the values change sign)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(values) + 1), values, lw=1)
    if min(values) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Save ``fig`` as a PNG (parent folders created), close it, and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
