"""Validation of square, symmetric and positive (semi-)definite matrices, and their square roots.

Private helpers of :mod:`.problem` and the closed forms (docs/theory.md §0).
"""

from __future__ import annotations

from typing import Any

import torch

from bayesdepth._validation import check_tensor

__all__ = ["check_square", "check_symmetric", "sqrt_psd"]


def check_square(name: str, value: Any, size: int | None = None) -> torch.Tensor:
    """Raise unless ``value`` is a square floating 2-D tensor (of side ``size`` if given)."""
    m = check_tensor(name, value, ndim=2, floating=True)
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {tuple(m.shape)}")
    if size is not None and m.shape[0] != size:
        raise ValueError(f"{name} must have shape ({size}, {size}) to match, got {tuple(m.shape)}")
    if not bool(torch.isfinite(m).all()):
        raise ValueError(f"{name} has non-finite entries")
    return m


def check_symmetric(
    name: str, value: Any, size: int | None = None, psd: bool = True, pd: bool = False
) -> torch.Tensor:
    """Return ``value`` in float64, symmetrised, after checking symmetry (and definiteness).

    Raises:
        ValueError: naming the largest asymmetry ``max |M - M^T|`` or the smallest eigenvalue.
    """
    m = check_square(name, value, size).to(torch.float64)
    scale = float(m.abs().max()) if m.numel() else 0.0
    asym = float((m - m.T).abs().max()) if m.numel() else 0.0
    if asym > 1e-8 * max(scale, 1e-300):
        raise ValueError(
            f"{name} must be symmetric: max |M - M^T| = {asym:.3g} (largest entry {scale:.3g})"
        )
    m = (m + m.T) / 2
    if psd or pd:
        lo = float(torch.linalg.eigvalsh(m).min())
        if pd and lo <= 0:
            raise ValueError(f"{name} must be positive definite: smallest eigenvalue {lo:.6g}")
        if lo < -1e-10 * max(scale, 1e-300):
            raise ValueError(
                f"{name} must be positive semi-definite: smallest eigenvalue {lo:.6g} < 0"
            )
    return m


def sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (by ``eigh``)."""
    w, u = torch.linalg.eigh(m)
    return (u * w.clamp_min(0).sqrt()) @ u.T
