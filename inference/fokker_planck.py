r"""Fokker–Planck in one dimension: stationary density, basin masses and the spectral gap.

For ``d theta = -L'(theta) dt + sqrt(2 D(theta)) dW`` on an interval with reflecting ends (SGD
with learning rate ``eta``, batch size ``B`` and gradient-noise variance ``c(theta)`` has
``D = eta c / (2 B)`` in time ``t = eta k``, :func:`sgd_diffusion`), the density evolves by

.. math:: \partial_t p = \partial_\theta\big(L' p + \partial_\theta (D p)\big),

whose zero-flux stationary solution is ``p ∝ e^{-Phi} / D`` with ``Phi' = L' / D``
(docs/theory.md §13.3). Its mass in each basin of attraction of ``-L'`` says which minimum SGD
prefers: at low temperature the mass ratio of two equally deep minima tends to
``sqrt(L''_b / L''_a)``, the flatter one winning (Dai and Zhu, "On large batch training and sharp
minima: a Fokker–Planck perspective", arXiv 2112.00987). The generator
``G f = D f'' - L' f' = (1/p)(p D f')'`` is self-adjoint in ``L^2(p)``; on a uniform grid its
finite-difference version is a reversible birth–death chain, symmetrised by ``p^{1/2}`` into a
tridiagonal matrix (scipy's ``eigh_tridiagonal``). Its smallest non-zero eigenvalue, the
**spectral gap**, is the relaxation rate between basins and tends to the sum of the
Eyring–Kramers rates out of them (:func:`.escape.eyring_kramers_rate`).

The gap is exponentially small while the matrix norm is ``~ D / h^2``, below the eigensolver's
absolute accuracy at low temperature, so the eigenvector (accurate) is turned into the eigenvalue
by its Rayleigh quotient in the flux form ``sum_e w_e (f_{e+1} - f_e)^2 / sum_i p_i f_i^2``,
which has no cancellation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from scipy import linalg, optimize

from bayesdepth._validation import check_positive, check_positive_int

__all__ = [
    "BasinMasses",
    "StationaryDensity",
    "basin_masses",
    "sgd_diffusion",
    "spectral_gap",
    "stationary_density",
]

F64 = torch.float64
Function = Callable[[torch.Tensor], torch.Tensor]


class StationaryDensity(NamedTuple):
    """The stationary density on the grid (numpy float64)."""

    x: np.ndarray  #: grid points (n,)
    density: np.ndarray  #: ``p(x)``, integrating to 1 over the interval


class BasinMasses(NamedTuple):
    """The stationary mass of each basin of attraction of ``-L'`` (ordered left to right)."""

    minima: np.ndarray  #: the local minima of ``L``
    boundaries: np.ndarray  #: the local maxima between them (one fewer)
    masses: np.ndarray  #: stationary probability of each basin, summing to 1


class _Grid(NamedTuple):
    x: np.ndarray  # nodes and midpoints (2n - 1,), spacing h / 2
    step: float  # h, the node spacing
    phi: np.ndarray  # Phi - min Phi on the half-step grid
    log_p: np.ndarray  # log of the unnormalised density e^{-Phi} / D on the half-step grid


def sgd_diffusion(
    lr: float, batch_size: int, noise_var: float | Function
) -> float | Function:
    r"""``D = eta c / (2 B)``: the diffusion of SGD's SDE in time ``t = eta k`` (§13.3).

    ``noise_var`` is the per-example gradient-noise variance ``c`` (a number or a function of
    ``theta``); the stationary law depends on ``eta`` and ``B`` only through ``eta / B``.
    """
    scale = check_positive("lr", lr) / (2 * check_positive_int("batch_size", batch_size))
    if callable(noise_var):
        return lambda x: scale * noise_var(x)
    return scale * check_positive("noise_var", noise_var)


def _grad(loss: Function, x: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        return torch.autograd.grad(loss(x).sum(), x)[0].detach()


def _diffusion(diffusion: float | Function, x: torch.Tensor) -> torch.Tensor:
    d = diffusion(x) if callable(diffusion) else torch.full_like(x, float(diffusion))
    d = torch.as_tensor(d, dtype=F64).expand_as(x)
    if not bool((d > 0).all()) or not bool(torch.isfinite(d).all()):
        low = float(d.min())
        raise ValueError(f"diffusion must be finite and > 0 on the interval, minimum {low:.3g}")
    return d


def _grid(
    loss: Function, diffusion: float | Function, interval: tuple[float, float], num_points: int
) -> _Grid:
    """``Phi`` and ``log p`` on the nodes and midpoints (``Phi`` by Simpson's rule per cell)."""
    if not callable(loss):
        raise TypeError(f"loss must be callable on a float64 tensor, got {type(loss).__name__}")
    lo, hi = (float(v) for v in interval)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"interval must be finite with lo < hi, got {interval!r}")
    n = check_positive_int("num_points", num_points, 3)
    x = torch.linspace(lo, hi, 2 * n - 1, dtype=F64)
    h = (hi - lo) / (n - 1)
    d = _diffusion(diffusion, x)
    if callable(diffusion):
        g = (_grad(loss, x) / d).numpy()
        g0, gm, g1 = g[0:-2:2], g[1::2], g[2::2]
        cell = h / 6 * (g0 + 4 * gm + g1)  # Simpson over [x_i, x_{i+1}]
        left = h / 24 * (5 * g0 + 8 * gm - g1)  # the quadratic through them over [x_i, x_i+1/2]
        nodes = np.concatenate([[0.0], np.cumsum(cell)])
        phi = np.empty(2 * n - 1)
        phi[::2], phi[1::2] = nodes, nodes[:-1] + left
    else:
        phi = (loss(x) / float(d[0])).numpy()
    if not np.isfinite(phi).all():
        raise ValueError("loss or its derivative is not finite on the interval")
    phi = phi - phi.min()
    return _Grid(x.numpy(), h, phi, -phi - np.log(d.numpy()))


def _normalised(grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """The density on the half-step grid and the mass of each cell (Simpson), summing to 1."""
    p = np.exp(grid.log_p - grid.log_p.max())
    cells = grid.step / 6 * (p[0:-2:2] + 4 * p[1::2] + p[2::2])
    total = cells.sum()
    return p / total, cells / total


def stationary_density(
    loss: Function,
    diffusion: float | Function,
    interval: tuple[float, float],
    *,
    num_points: int = 4001,
) -> StationaryDensity:
    r"""``p ∝ e^{-Phi} / D``, ``Phi' = L'/D``, on ``num_points`` grid points (§13.3).

    Args:
        loss: ``L``, vectorised over a float64 tensor of points (``L'`` by autograd).
        diffusion: ``D`` > 0, a number (then ``Phi = L / D``) or a vectorised function.
        interval: ``(lo, hi)``, reflecting ends; choose it where ``p`` is negligible outside.
        num_points: grid size (``Phi`` and the normalisation by Simpson's rule).
    """
    grid = _grid(loss, diffusion, interval, num_points)
    p, _ = _normalised(grid)
    return StationaryDensity(grid.x[::2], p[::2])


def _critical_points(loss: Function, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local minima and maxima of ``L`` inside the grid, refined by ``brentq`` on ``L'``."""
    g = _grad(loss, torch.as_tensor(x, dtype=F64)).numpy()

    def slope(t: float) -> float:
        return float(_grad(loss, torch.tensor([t], dtype=F64))[0])

    minima, maxima = [], []
    for i in np.flatnonzero(np.sign(g[:-1]) != np.sign(g[1:])):
        if g[i] == 0:
            root = float(x[i])
        else:
            root = optimize.brentq(slope, float(x[i]), float(x[i + 1]), xtol=1e-14)
        (minima if g[i] < 0 or g[i + 1] > 0 else maxima).append(root)
    return np.unique(np.array(minima)), np.unique(np.array(maxima))


def basin_masses(
    loss: Function,
    diffusion: float | Function,
    interval: tuple[float, float],
    *,
    num_points: int = 4001,
) -> BasinMasses:
    r"""Stationary mass of each basin of attraction of ``-L'`` (§13.3).

    Basins are separated by the local maxima of ``L`` (found on the grid and refined with
    ``scipy.optimize.brentq``); masses are ``int p`` over each, by Simpson's rule per cell and
    linear interpolation of the cumulative mass at the boundaries (where ``p`` is smallest). For
    two equally deep minima ``a``, ``b`` the ratio tends to ``sqrt(L''(b) / L''(a))`` as the
    temperature ``D`` falls; with SGD's ``D = eta c / (2 B)`` it depends on ``eta`` and ``B``
    only through ``eta / B``. Arguments as for :func:`stationary_density`.

    Raises:
        ValueError: unless the critical points alternate minimum, maximum, ..., minimum (choose
            an interval on which ``L`` rises towards both ends).
    """
    grid = _grid(loss, diffusion, interval, num_points)
    nodes = grid.x[::2]
    minima, maxima = _critical_points(loss, nodes)
    between = len(maxima) == len(minima) - 1 and bool(
        np.all(minima[:-1] < maxima) and np.all(maxima < minima[1:])
    )
    if len(minima) == 0 or not between:
        raise ValueError(
            f"basins need minima separated by maxima inside the interval; found minima "
            f"{minima.round(6).tolist()} and maxima {maxima.round(6).tolist()} on {interval}"
        )
    cdf = np.concatenate([[0.0], np.cumsum(_normalised(grid)[1])])
    cuts = np.concatenate([[0.0], np.interp(maxima, nodes, cdf), [1.0]])
    return BasinMasses(minima, maxima, np.diff(cuts))


def spectral_gap(
    loss: Function,
    diffusion: float | Function,
    interval: tuple[float, float],
    *,
    num_points: int = 4001,
) -> float:
    r"""Smallest non-zero eigenvalue of the generator ``G f = D f'' - L' f'`` (§13.3).

    Finite differences on a uniform grid with reflecting ends: a birth–death chain with edge
    weights ``w_e = e^{-Phi(x_e)} / h^2`` at the midpoints and masses ``p_i = e^{-Phi(x_i)} / D_i``,
    ``(G f)_i = [w_{i+1/2}(f_{i+1} - f_i) - w_{i-1/2}(f_i - f_{i-1})] / p_i``, symmetrised by
    ``p^{1/2}`` and solved for its two lowest modes by ``scipy.linalg.eigh_tridiagonal``; the
    gap is the Rayleigh quotient of the second mode in flux form (accurate when the gap is far
    below ``eps * D / h^2``). Arguments as for :func:`stationary_density`.
    """
    grid = _grid(loss, diffusion, interval, num_points)
    h, top = grid.step, grid.log_p.max()
    log_p = grid.log_p[::2] - top
    log_w = -grid.phi[1::2] - 2 * math.log(h) - top
    right = np.exp(log_w - log_p[:-1])  # w_e / p_i
    left = np.exp(log_w - log_p[1:])  # w_e / p_{i+1}
    diag = np.zeros(len(log_p))
    diag[:-1] += right
    diag[1:] += left
    _, vectors = linalg.eigh_tridiagonal(diag, -np.sqrt(right * left), select="i",
                                         select_range=(0, 1))
    p = np.exp(log_p)
    f = vectors[:, 1] * np.exp(-log_p / 2)
    f = f - (p * f).sum() / p.sum()  # orthogonal to the constant mode in L^2(p)
    return float((np.exp(log_w) * np.diff(f) ** 2).sum() / (p * f * f).sum())
