"""Validation and eigenbasis helpers shared by the Langevin closed forms (private).

Every closed form of THEORY sections 1-3 is a Lyapunov (or Stein) equation whose coefficients are
functions of one symmetric matrix. In the eigenbasis ``A = U diag(a) U^T`` they decouple into
``d^2`` scalar (or 2x2) equations, so one ``eigh`` (O(d^3)) solves them in torch on any device.
"""

from __future__ import annotations

from typing import Any

import torch

from bayesdepth._validation import check_tensor

__all__ = ["as_float64", "check_square", "check_symmetric", "eig_basis", "sqrt_psd"]


def as_float64(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float64 on its own device (closed forms are evaluated in double precision)."""
    return x.to(torch.float64)


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
    """Return ``value`` in float64 after checking symmetry (and positive semi-definiteness).

    Raises:
        ValueError: naming the largest asymmetry ``max |M - M^T|`` or the smallest eigenvalue.
    """
    m = as_float64(check_square(name, value, size))
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


def eig_basis(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and orthonormal eigenvectors of the symmetric matrix ``a``."""
    return torch.linalg.eigh(a)


def sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (by ``eigh``)."""
    w, u = torch.linalg.eigh(m)
    return (u * w.clamp_min(0).sqrt()) @ u.T
