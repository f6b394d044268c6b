r"""An :class:`~.problem.SGDProblem` in the eigenbasis of its Hessian (private).

Every closed form of docs/theory.md §1-§3 is a Lyapunov or Stein equation whose coefficients are
functions of one symmetric matrix, ``A~ = A + lambda I``. In its eigenbasis
``A~ = U diag(a) U^T`` the equations decouple into ``d^2`` scalar (or 2x2) ones, so one ``eigh``
(O(d^3) time, O(d^2) memory, float64 on the problem's device) solves them. A preconditioner ``H``
is absorbed by ``S = T S~ T`` with ``T = H^{1/2}``: ``A~ -> T A~ T``, ``C -> T C T``
(docs/theory.md §1.3).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._linalg import sqrt_psd
from .problem import SGDProblem

__all__ = ["Eigenbasis", "check_stable", "eigenbasis", "from_eigenbasis"]


class Eigenbasis(NamedTuple):
    """A problem in the eigenbasis of ``T A~ T`` (``T = H^{1/2}``, or the identity)."""

    values: torch.Tensor  #: eigenvalues ``a_i``, ascending
    vectors: torch.Tensor  #: orthonormal eigenvectors ``U`` (columns)
    noise: torch.Tensor  #: ``C' = U^T T C T U``, the per-example noise (not scaled by 1/B)
    root: torch.Tensor | None  #: ``T``, or None without a preconditioner


def eigenbasis(problem: SGDProblem) -> Eigenbasis:
    """Transform ``problem`` (raises unless ``A + weight_decay I`` is positive definite)."""
    a = problem.regularised_hessian
    c = problem.noise_cov.to(torch.float64)
    c = (c + c.T) / 2
    h = problem.preconditioner_matrix
    root = None
    if h is not None:
        root = sqrt_psd(h)
        a, c = root @ a @ root, root @ c @ root
        a, c = (a + a.T) / 2, (c + c.T) / 2
    w, u = torch.linalg.eigh(a)
    low = float(w[0])
    if low <= 0:
        raise ValueError(
            f"no stationary law: hessian + weight_decay I must be positive definite, smallest "
            f"eigenvalue {low:.6g}"
        )
    return Eigenbasis(w, u, u.T @ c @ u, root)


def from_eigenbasis(sp: torch.Tensor, basis: Eigenbasis, problem: SGDProblem) -> torch.Tensor:
    """``S = T U S' U^T T``, symmetrised, in the Hessian's dtype and device."""
    s = basis.vectors @ sp @ basis.vectors.T
    if basis.root is not None:
        s = basis.root @ s @ basis.root
    return ((s + s.T) / 2).to(dtype=problem.hessian.dtype, device=problem.hessian.device)


def check_stable(
    values: torch.Tensor, step: float, *, momentum: float = 0.0, step_name: str = "lr"
) -> None:
    """Raise unless ``step * a < 2 (1 + momentum)`` for every eigenvalue ``a`` (SGD's stability)."""
    high = float(values.max())
    bound = 2 * (1 + momentum)
    if step * high < bound:
        return
    limit = "2" if momentum == 0 else f"2 (1 + momentum) = {bound:.6g}"
    raise ValueError(
        f"no stationary law: {step_name} * lambda_max = {step:.6g} * {high:.6g} = "
        f"{step * high:.6g} >= {limit} (SGD is stable only for {step_name} * lambda < {limit} "
        f"for every eigenvalue lambda of hessian + weight_decay I)"
    )
