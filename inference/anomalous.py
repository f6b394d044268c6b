r"""The anomalous-diffusion exponent of SGD, predicted from the Hessian and gradient-noise spectra.

Kunin et al. (2021) observe that past convergence the mean squared displacement of SGD grows as a
power of the lag, ``MSD(tau) ∝ tau^gamma``. On a quadratic whose Hessian eigenvalues follow
``a_i ∝ i^-p`` and whose gradient-noise variances along the eigenvectors follow ``c_i ∝ a_i^q``,
every mode relaxes like an AR(1) process, and summing the modes gives, over the intermediate lags
between the relaxation times of the fastest and the slowest mode (:func:`relaxation_time`, about
``(1 - beta) / (eta a_i)`` steps),

.. math::

    \gamma = 1 + \frac{1}{p} - q, \qquad \text{valid when } p q > 1 \text{ and } 1 + p (1 - q) > 0

(docs/theory.md §14.6). :func:`predicted_msd_exponent` returns it and refuses the cases where the
sum is dominated by one end of the spectrum; :func:`fit_power_law_spectrum` measures ``p`` and
``q`` from a Hessian and a noise covariance (for instance of a network at a minimum, with
:func:`.noise.per_example_grads`). The MSD itself is :func:`.momentum.msd_curve` (exact) and
:func:`.statistics.empirical_msd` (from chains).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from bayesdepth._validation import check_positive, check_positive_int, check_tensor

from .problem import SGDProblem, check_momentum
from .statistics import loglog_slope

__all__ = [
    "PowerLawSpectrum",
    "fit_power_law_spectrum",
    "power_law_problem",
    "predicted_msd_exponent",
    "relaxation_time",
]

F64 = torch.float64


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def predicted_msd_exponent(p: float, q: float) -> float:
    r"""``gamma = 1 + 1/p - q`` for ``a_i ∝ i^-p``, ``c_i ∝ a_i^q`` (docs/theory.md §14.6).

    Raises:
        ValueError: when the formula does not hold, saying what the MSD does instead:
            ``p q <= 1`` (the modes with the smallest eigenvalues, still in their linear regime,
            dominate: the MSD is close to linear, ``gamma -> 1``) or ``1 + p (1 - q) <= 0`` (the
            stationary variances ``a_i^(q-1)`` are dominated by the largest eigenvalues: the MSD
            saturates at a plateau after a few steps, ``gamma`` near 0).
    """
    p = check_positive("p", _finite("p", p))
    q = _finite("q", q)
    if p * q <= 1:
        raise ValueError(
            f"no anomalous power law for p = {p:.4g}, q = {q:.4g}: p q = {p * q:.4g} <= 1, so "
            f"sum_i a_i^q over the slow modes grows with the dimension; the MSD is dominated by "
            f"the smallest eigenvalues (modes still in their linear regime) and is close to "
            f"linear in tau (gamma -> 1), not tau^(1 + 1/p - q)"
        )
    if 1 + p * (1 - q) <= 0:
        raise ValueError(
            f"no anomalous power law for p = {p:.4g}, q = {q:.4g}: 1 + p (1 - q) = "
            f"{1 + p * (1 - q):.4g} <= 0, so the stationary variances a_i^(q - 1) are dominated "
            f"by the largest eigenvalues; the MSD reaches a plateau after a few steps (gamma "
            f"near 0), not tau^(1 + 1/p - q)"
        )
    return 1 + 1 / p - q


@dataclass(frozen=True)
class PowerLawSpectrum:
    """``a_i ∝ i^-p`` and ``c_i ∝ a_i^q``, fitted over ranks ``lo..hi`` (1-based, inclusive).

    Attributes:
        p: decay exponent of the Hessian eigenvalues with their rank.
        q: exponent of the noise variances along the eigenvectors against the eigenvalues.
        eigenvalues: the positive Hessian eigenvalues, descending (float64).
        noise: the noise variances ``u_i^T C u_i`` along their eigenvectors.
        ranks: the fitted ranks ``(lo, hi)``.
    """

    p: float
    q: float
    eigenvalues: torch.Tensor
    noise: torch.Tensor
    ranks: tuple[int, int]

    def msd_exponent(self) -> float:
        """:func:`predicted_msd_exponent` of ``(p, q)`` (raises where it does not hold)."""
        return predicted_msd_exponent(self.p, self.q)

    def lag_window(self, lr: float, momentum: float = 0.0) -> tuple[float, float]:
        """The relaxation times of the modes at ranks ``lo`` and ``hi``: where the power law holds.

        See :func:`relaxation_time`; about ``(1 - beta) / (eta a)`` for slow modes.
        """
        lo, hi = self.ranks
        a = self.eigenvalues[[lo - 1, hi - 1]]
        times = relaxation_time(a, lr, momentum)
        return float(times[0]), float(times[1])


def relaxation_time(eigenvalues: Any, lr: float, momentum: float = 0.0) -> torch.Tensor:
    r"""Steps over which a mode of curvature ``a`` forgets, ``-1 / log r``, for ``torch.optim.SGD``.

    ``r`` is the spectral radius of the mode's transition matrix
    ``[[1 - eta a, -eta beta], [a, beta]]`` (docs/theory.md §2.1), the larger modulus of the
    roots of ``z^2 - (1 + beta - eta a) z + beta``: about ``(1 - beta) / (eta a)`` steps for slow
    modes, but at most ``-2 / log beta`` (about ``2 / (1 - beta)``) for the underdamped ones
    (``eta a > (1 - sqrt(beta))^2``), whose roots have modulus ``sqrt(beta)``
    (docs/theory.md §14.6).
    """
    eta = check_positive("lr", lr)
    beta = check_momentum(momentum)
    a = torch.as_tensor(eigenvalues, dtype=F64)
    trace = 1 + beta - eta * a
    disc = trace * trace - 4 * beta
    radius = torch.where(disc >= 0, (trace.abs() + disc.clamp_min(0).sqrt()) / 2,
                         torch.full_like(a, beta).sqrt())
    if bool((radius >= 1).any()):
        raise ValueError(
            f"lr = {eta:.4g}, momentum = {beta:.4g} is unstable for some eigenvalue "
            f"(max {float(a.max()):.4g}): no relaxation"
        )
    return -1 / radius.log()


def fit_power_law_spectrum(
    hessian: torch.Tensor, noise_cov: torch.Tensor, *, ranks: tuple[int, int] | None = None
) -> PowerLawSpectrum:
    r"""Fit ``a_i ∝ i^-p`` and ``c_i ∝ a_i^q`` to a Hessian and a gradient-noise covariance.

    ``A = U diag(a) U^T`` (eigenvalues descending; only the positive ones are kept) and
    ``c_i = u_i^T C u_i``; ``p`` is minus the least-squares slope of ``log a_i`` on ``log i`` and
    ``q`` the slope of ``log c_i`` on ``log a_i``, both over ``ranks`` (docs/theory.md §14.6).

    Args:
        hessian: (d, d) symmetric, or its eigenvalues (d,) (then ``noise_cov`` holds the
            variances along the same eigenvectors, (d,)).
        noise_cov: (d, d) symmetric positive semi-definite, or (d,) as above.
        ranks: ``(lo, hi)``, 1-based and inclusive, among the positive eigenvalues (default: all).
    """
    h = check_tensor("hessian", hessian, ndim=(1, 2), floating=True).to(F64)
    c = check_tensor("noise_cov", noise_cov, ndim=h.dim(), floating=True).to(F64)
    if h.dim() == 2:
        if h.shape[0] != h.shape[1] or c.shape != h.shape:
            raise ValueError(
                f"hessian and noise_cov must be square of one size, got {tuple(h.shape)} and "
                f"{tuple(c.shape)}"
            )
        values, vectors = torch.linalg.eigh((h + h.T) / 2)
        noise = torch.einsum("ji,jk,ki->i", vectors, (c + c.T) / 2, vectors)
    else:
        if c.shape != h.shape:
            raise ValueError(
                f"noise_cov must have the shape {tuple(h.shape)} of the eigenvalues, got "
                f"{tuple(c.shape)}"
            )
        values, noise = h, c
    order = torch.argsort(values, descending=True)
    values, noise = values[order], noise[order]
    keep = values > 0
    values, noise = values[keep], noise[keep]
    count = values.shape[0]
    lo, hi = (1, count) if ranks is None else ranks
    lo = check_positive_int("ranks[0]", lo)
    hi = check_positive_int("ranks[1]", hi)
    if not lo < hi <= count:
        raise ValueError(
            f"ranks must satisfy 1 <= lo < hi <= {count} (the number of positive eigenvalues), "
            f"got {(lo, hi)}"
        )
    idx = torch.arange(1, count + 1, dtype=F64)
    sl = slice(lo - 1, hi)
    p = -loglog_slope(idx[sl], values[sl])
    q = loglog_slope(values[sl], noise[sl])
    return PowerLawSpectrum(p, q, values, noise, (lo, hi))


def power_law_problem(
    dim: int,
    p: float,
    q: float,
    *,
    lr: float,
    batch_size: int = 1,
    momentum: float = 0.0,
    device: torch.device | str | None = None,
) -> SGDProblem:
    """The quadratic with ``A = diag(i^-p)`` and ``C = diag(a_i^q)`` (``a_1 = 1``), float64."""
    dim = check_positive_int("dim", dim)
    a = torch.arange(1, dim + 1, dtype=F64, device=device) ** -check_positive("p", p)
    c = a ** _finite("q", q)
    return SGDProblem(torch.diag(a), torch.diag(c), lr=lr, batch_size=batch_size,
                      momentum=momentum)
