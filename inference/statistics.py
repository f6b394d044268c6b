r"""Statistics of SGD and SG-MCMC chains: covariance with standard errors, MSD, diffusion exponent.

Draws are arrays of shape (chains, draws, d) (torch tensors or numpy arrays), a dict of such
arrays (flattened and concatenated in order), or the :class:`~bayesdepth.inference.Chains` that
the runner returns. Standard errors come from the spread *between* independent chains, so they are
valid whatever the autocorrelation inside a chain (docs/theory.md §7.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "as_draws",
    "chain_covariance",
    "chain_mean",
    "diffusion_exponent",
    "empirical_msd",
    "loglog_slope",
    "relative_frobenius_error",
]


def as_draws(draws: Any) -> torch.Tensor:
    """(chains, draws, d) float64 from a tensor, an array, a dict of such or a ``Chains``.

    A (draws, d) array is one chain.
    """
    if hasattr(draws, "draws") and isinstance(draws.draws, dict):
        draws = draws.draws
    if isinstance(draws, dict):
        parts = [torch.as_tensor(v) for v in draws.values()]
        draws = torch.cat([p.reshape(p.shape[0], p.shape[1], -1) for p in parts], -1)
    x = torch.as_tensor(np.asarray(draws) if not isinstance(draws, torch.Tensor) else draws)
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3:
        raise ValueError(f"draws must have shape (chains, draws, d), got {tuple(x.shape)}")
    return x.to(torch.float64)


def chain_covariance(
    draws: Any, mean: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled covariance of (chains, draws, d) draws and its Monte-Carlo standard error.

    Every chain's second moment about the pooled (or given) mean is one independent estimate; the
    result is their average and the standard error their standard deviation / sqrt(chains)
    (NaN for a single chain) (docs/theory.md §7.2).
    """
    x = as_draws(draws)
    m = x.mean((0, 1)) if mean is None else torch.as_tensor(mean, dtype=x.dtype)
    xc = x - m
    per = torch.einsum("ktd,kte->kde", xc, xc) / x.shape[1]
    k = x.shape[0]
    se = per.std(0) / math.sqrt(k) if k > 1 else torch.full_like(per[0], math.nan)
    return per.mean(0), se


def relative_frobenius_error(estimate: Any, reference: Any) -> float:
    """``||estimate - reference||_F / ||reference||_F``."""
    e = torch.as_tensor(estimate, dtype=torch.float64)
    r = torch.as_tensor(reference, dtype=torch.float64)
    if e.shape != r.shape:
        raise ValueError(f"shapes differ: {tuple(e.shape)} vs {tuple(r.shape)}")
    return float(torch.linalg.norm(e - r) / torch.linalg.norm(r))


def empirical_msd(draws: Any, lags: Sequence[int]) -> torch.Tensor:
    """``E|theta_{t+tau} - theta_t|^2`` averaged over chains and start times, for each lag.

    The estimator of the stationary mean squared displacement (docs/theory.md §2.6).
    """
    x = as_draws(draws)
    out = []
    for tau in lags:
        tau = int(tau)
        if not 0 <= tau < x.shape[1]:
            raise ValueError(f"lag {tau} must lie in [0, {x.shape[1]})")
        out.append(((x[:, tau:] - x[:, : x.shape[1] - tau]) ** 2).sum(-1).mean())
    return torch.stack(out)


def chain_mean(values: Any) -> tuple[float, float]:
    """Mean of (chains, draws) values and its between-chain standard error (docs/theory.md §7.2).

    Each chain's time average is one independent estimate; the standard error is their standard
    deviation / sqrt(chains) (NaN for a single chain).
    """
    v = torch.as_tensor(values, dtype=torch.float64)
    if v.dim() != 2:
        raise ValueError(f"values must have shape (chains, draws), got {tuple(v.shape)}")
    per = v.mean(1)
    k = per.shape[0]
    se = float(per.std() / math.sqrt(k)) if k > 1 else math.nan
    return float(per.mean()), se


def loglog_slope(x: Any, y: Any, window: tuple[float, float] | None = None) -> float:
    """Least-squares slope of ``log y`` on ``log x`` over the positive pairs (inside ``window``).

    The one power-law fit of the package: MSD exponents (:func:`diffusion_exponent`) and the
    spectral exponents of :mod:`.anomalous`.
    """
    t = np.asarray(torch.as_tensor(x, dtype=torch.float64).cpu())
    m = np.asarray(torch.as_tensor(y, dtype=torch.float64).cpu())
    if t.shape != m.shape or t.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got {t.shape} and {m.shape}")
    keep = (t > 0) & (m > 0)
    if window is not None:
        keep &= (t >= window[0]) & (t <= window[1])
    if keep.sum() < 2:
        raise ValueError(
            f"need at least two positive points (inside the window {window}) to fit a power "
            f"law, got {int(keep.sum())}"
        )
    return float(np.polyfit(np.log(t[keep]), np.log(m[keep]), 1)[0])


def diffusion_exponent(
    lags: Any, msd: Any, window: tuple[float, float] | None = None
) -> float:
    r"""Least-squares slope of ``log MSD`` against ``log tau`` (inside ``window`` if given).

    ``MSD ∝ tau^gamma``: ``gamma = 1`` is ordinary diffusion, ``gamma < 1`` sub-diffusion
    (Kunin et al. 2021 report anomalous diffusion of SGD past convergence; docs/theory.md §2.6).
    The exponent predicted from the spectrum is :func:`.anomalous.predicted_msd_exponent`
    (docs/theory.md §14.6).
    """
    return loglog_slope(lags, msd, window)
