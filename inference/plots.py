"""Figures of the SGD-as-a-sampler theory: covariance ellipses, MSD, SVAG gap, noise-to-signal.

Every function draws one figure, writes it as PNG with :func:`bayesdepth.plotting.save_figure`
(parent folders created, figure closed) and returns the path. matplotlib is imported only when a
figure is drawn, and the backend is never changed: scripts and tests choose it (for example
``MPLBACKEND=Agg``). ArviZ plots of chains are in :mod:`.diagnostics`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .statistics import as_draws, chain_covariance, diffusion_exponent

__all__ = ["plot_covariance_ellipses", "plot_msd", "plot_noise_to_signal", "plot_svag_gap"]


def _axes(figsize: tuple[float, float]):
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)


def _save(fig: Any, path: str | Path) -> Path:
    from bayesdepth.plotting import save_figure

    return save_figure(fig, path)


def _ellipse(ax, cov2, centre, **kw) -> None:
    """The 2-sd ellipse of a 2x2 covariance."""
    from matplotlib.patches import Ellipse

    w, v = np.linalg.eigh(np.asarray(cov2))
    angle = math.degrees(math.atan2(v[1, 1], v[0, 1]))
    ax.add_patch(Ellipse(centre, 4 * math.sqrt(w[1]), 4 * math.sqrt(w[0]), angle=angle,
                         fill=False, **kw))


def plot_covariance_ellipses(
    draws: Any,
    predicted: Any,
    path: str | Path,
    *,
    dims: tuple[int, int] = (0, 1),
    mean: Any = None,
    others: dict[str, Any] | None = None,
    title: str = "",
) -> Path:
    """Scatter of draws with 2-sd ellipses: empirical (SGD) against predicted covariance.

    Args:
        draws: (chains, draws, d) draws (see :func:`.statistics.as_draws`).
        predicted: the predicted (d, d) covariance (dashed).
        path: the PNG file.
        dims: the two coordinates shown.
        mean: the centre (default: the draws' mean); also the centre of the empirical covariance.
        others: more covariances to draw (dotted), by label, e.g. the posterior.
        title: the figure's title.
    """
    x = as_draws(draws)
    i, j = dims
    idx = [i, j]
    emp, _ = chain_covariance(x, mean=mean)
    centre = x.mean((0, 1)) if mean is None else torch.as_tensor(mean, dtype=torch.float64)
    fig, ax = _axes((5, 5))
    pts = x[:, :, idx].reshape(-1, 2)
    pts = pts[torch.linspace(0, pts.shape[0] - 1, min(4000, pts.shape[0])).long()]
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.3, color="grey", label="SGD iterates")
    c2 = centre.cpu()[idx].numpy()
    _ellipse(ax, emp[idx][:, idx], c2, color="C0", lw=2, label="SGD covariance (2 sd)")
    pred = torch.as_tensor(predicted, dtype=torch.float64).cpu()
    _ellipse(ax, pred[idx][:, idx], c2, color="C3", lw=2, ls="--", label="predicted")
    for k, (name, cov) in enumerate((others or {}).items()):
        cov = torch.as_tensor(cov, dtype=torch.float64).cpu()
        _ellipse(ax, cov[idx][:, idx], c2, color=f"C{k + 1}", lw=1.5, ls=":", label=name)
    ax.set_xlabel(f"theta[{i}]")
    ax.set_ylabel(f"theta[{j}]")
    ax.set_title(title or "SGD stationary covariance")
    ax.legend(fontsize=8)
    ax.autoscale_view()
    return _save(fig, path)


def plot_msd(
    lags: Any,
    msd: Any,
    path: str | Path,
    *,
    predicted: Any = None,
    window: tuple[float, float] | None = None,
    title: str = "",
) -> Path:
    """MSD against lag on log-log axes with the fitted diffusion exponent (and a closed form)."""
    t = np.asarray(torch.as_tensor(lags, dtype=torch.float64))
    m = np.asarray(torch.as_tensor(msd, dtype=torch.float64))
    gamma = diffusion_exponent(t, m, window)
    fig, ax = _axes((5, 4))
    ax.loglog(t, m, "o", label=f"MSD (fitted exponent {gamma:.2f})")
    if predicted is not None:
        ax.loglog(t, np.asarray(torch.as_tensor(predicted).cpu()), "-", label="closed form")
    ax.set_xlabel("lag tau (steps)")
    ax.set_ylabel("E|theta(t+tau) - theta(t)|^2")
    ax.set_title(title or "mean squared displacement")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_svag_gap(
    ls: Any,
    gaps: Any,
    path: str | Path,
    *,
    simulated: Any = None,
    errors: Any = None,
    title: str = "",
) -> Path:
    """SVAG's distance to the SDE against l on log-log axes, with a 1/l reference line.

    ``gaps`` is the closed-form gap; ``simulated`` (with optional ``errors``, standard errors)
    the gap measured on SVAG chains at the same ``ls``.
    """
    ls = np.asarray(ls, dtype=float)
    gaps = np.asarray(gaps, dtype=float)
    fig, ax = _axes((5, 4))
    ax.loglog(ls, gaps, "o-", label="gap to SDE (closed form)")
    if simulated is not None:
        ax.errorbar(ls, np.asarray(simulated, dtype=float), yerr=errors, fmt="s", capsize=3,
                    label="gap to SDE (SVAG chains)")
    ax.loglog(ls, gaps[0] * ls[0] / ls, "k:", label="1/l")
    ax.set_xlabel("amplification l")
    ax.set_ylabel("relative covariance gap")
    ax.set_title(title or "SVAG converges to the SDE")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_noise_to_signal(steps: Any, ratio: Any, path: str | Path, *, title: str = "") -> Path:
    """``G/N`` along a run (log y axis)."""
    fig, ax = _axes((5, 4))
    ax.semilogy(np.asarray(steps), np.asarray(torch.as_tensor(ratio).cpu()), "-")
    ax.set_xlabel("step")
    ax.set_ylabel("G / N")
    ax.set_title(title or "noise-to-signal ratio along training")
    return _save(fig, path)
