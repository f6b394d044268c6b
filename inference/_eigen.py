r"""An :class:`~.problem.SGDProblem` in the eigenbasis of its Hessian (private).

Every closed form of docs/theory.md §1-§3 is a Lyapunov or Stein equation whose coefficients are
functions of one symmetric matrix, ``A~ = A + lambda I``. In its eigenbasis
``A~ = U diag(a) U^T`` the equations decouple into ``d^2`` scalar (or 2x2) ones, so one ``eigh``
(O(d^3) time, O(d^2) memory, float64 on the problem's device) solves them. A preconditioner ``H``
is absorbed by ``S = T S~ T`` with ``T = H^{1/2}``: ``A~ -> T A~ T``, ``C -> T C T``
(docs/theory.md §1.3).

A positive *semi*-definite ``A~`` (a degenerate minimum, docs/theory.md §13.1) is accepted:
eigenvalues below ``NULL_TOLERANCE * max |a|`` count as zero, ``Eigenbasis.range`` marks the
others, and the closed forms solve their equations on the range only, where a stationary law
exists; along the null space SGD diffuses freely (:mod:`.degenerate`).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch

from ._linalg import sqrt_psd
from .problem import DegenerateMinimumWarning, SGDProblem

__all__ = [
    "NULL_TOLERANCE",
    "Eigenbasis",
    "check_stable",
    "eigenbasis",
    "free_diffusion",
    "from_eigenbasis",
    "pair_mask",
]

#: eigenvalues of ``A~`` with ``|a| <= NULL_TOLERANCE * max |a|`` span the null space
NULL_TOLERANCE = 1e-10


class Eigenbasis(NamedTuple):
    """A problem in the eigenbasis of ``T A~ T`` (``T = H^{1/2}``, or the identity)."""

    values: torch.Tensor  #: eigenvalues ``a_i``, ascending; exactly 0 on the null space
    vectors: torch.Tensor  #: orthonormal eigenvectors ``U`` (columns)
    noise: torch.Tensor  #: ``C' = U^T T C T U``, the per-example noise (not scaled by 1/B)
    root: torch.Tensor | None  #: ``T``, or None without a preconditioner
    range: torch.Tensor  #: bool (d,): True where ``a_i > 0`` (the range of ``A~``)

    @property
    def degenerate(self) -> bool:
        """Whether ``A~`` has a null space."""
        return not bool(self.range.all())


def eigenbasis(problem: SGDProblem, *, warn: bool = True, stacklevel: int = 3) -> Eigenbasis:
    """Transform ``problem``; raises unless ``A + weight_decay I`` is positive semi-definite.

    With a null space and ``warn=True`` a :class:`~.problem.DegenerateMinimumWarning` says its
    dimension and the free-diffusion rate along it (docs/theory.md §13.1), attributed to the
    caller ``stacklevel`` frames up.
    """
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
    zero = NULL_TOLERANCE * float(w.abs().max()) if w.numel() else 0.0
    low = float(w[0])
    if low < -zero:
        raise ValueError(
            f"no stationary law: hessian + weight_decay I must be positive semi-definite (a "
            f"minimum, possibly degenerate), smallest eigenvalue {low:.6g}"
        )
    keep = w > zero
    w = torch.where(keep, w, torch.zeros_like(w))
    basis = Eigenbasis(w, u, u.T @ c @ u, root, keep)
    if warn and basis.degenerate:
        null, rate = free_diffusion(basis, problem)
        warnings.warn(
            f"hessian + weight_decay I has a {null.shape[1]}-dimensional null space: the law "
            f"returned is the stationary law on its range; along the null space SGD diffuses "
            f"freely, the trace of its covariance growing by {float(torch.trace(rate)):.6g} per "
            f"step (bayesdepth.inference.degenerate.null_space_diffusion gives the basis and the "
            f"rate matrix)",
            DegenerateMinimumWarning,
            stacklevel=stacklevel,
        )
    return basis


def free_diffusion(basis: Eigenbasis, problem: SGDProblem) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Orthonormal basis (d, k) of the null space of ``A~`` and the rate ``D`` (d, d) per step.

    ``D = eta^2 phi / (1 - beta)^2 Pi C Pi^T`` with ``Pi = T U_0 U_0^T T`` (``U_0`` the null
    eigenvectors of ``T A~ T``): the free part ``T U_0 U_0^T T^{-1} theta`` of the iterate moves by
    ``eta Pi xi`` per step, ``Cov xi = phi C`` (docs/theory.md §13.1).
    """
    null = basis.vectors[:, ~basis.range]
    root = basis.root
    lift = null if root is None else root @ null  # theta-space directions of the free modes
    proj = lift @ null.T if root is None else lift @ (root @ null).T
    c = problem.noise_cov.to(torch.float64)
    scale = problem.lr**2 * problem.noise_factor / (1 - problem.momentum) ** 2
    rate = scale * proj @ ((c + c.T) / 2) @ proj.T
    orth = torch.linalg.qr(lift).Q if root is not None and lift.shape[1] else lift
    return orth, (rate + rate.T) / 2


def pair_mask(basis: Eigenbasis) -> torch.Tensor:
    """``range_i and range_j`` (d, d) as float64: 1 on the range block, 0 elsewhere."""
    r = basis.range.to(basis.values.dtype)
    return r[:, None] * r[None, :]


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
