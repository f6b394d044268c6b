r"""SGD at a degenerate minimum: the null space of the Hessian and the free diffusion along it.

Over-parameterised models have singular Hessians at their minima. On the quadratic
``L = theta^T A theta / 2`` with ``A~ = A + lambda I`` positive *semi*-definite, split ``theta`` in
the eigenbasis of ``T A~ T`` (``T = H^{1/2}`` with a preconditioner, else ``I``): the range
coordinates are an Ornstein–Uhlenbeck process with the stationary laws of :mod:`.langevin` and
:mod:`.momentum` (which those functions return, restricted to the range), while the null
coordinates receive the gradient noise and no restoring force. They perform a random walk:

.. math:: \operatorname{Cov}\theta_k = \text{const} + k\,D + o(k), \qquad
          D = \frac{\eta^2\phi}{(1-\beta)^2}\,\Pi C \Pi^T, \quad \Pi = T U_0 U_0^T T,

``U_0`` the orthonormal null eigenvectors (docs/theory.md §13.1). Without momentum the growth
is exactly ``k D`` from a start on the minimum.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._eigen import eigenbasis, free_diffusion
from .problem import SGDProblem

__all__ = ["NullSpaceDiffusion", "null_space_diffusion"]


class NullSpaceDiffusion(NamedTuple):
    """What :func:`null_space_diffusion` returns (Hessian's dtype and device)."""

    basis: torch.Tensor  #: (d, k) orthonormal basis of the null space of ``A + weight_decay I``
    rate: torch.Tensor  #: (d, d) ``D``: ``Cov theta_k`` grows by ``D`` per step


def null_space_diffusion(problem: SGDProblem) -> NullSpaceDiffusion:
    r"""The null space of ``A~ = A + weight_decay I`` and SGD's free-diffusion rate along it.

    ``D = eta^2 phi / (1 - beta)^2 Pi C Pi^T`` with ``Pi = T U_0 U_0^T T`` (docs/theory.md
    §13.1). Plain SGD started on the minimum of the quadratic has exactly
    ``Cov(F theta_k) = k D`` for its free component ``F theta = T U_0 U_0^T T^{-1} theta`` (the
    orthogonal projection onto the null space when ``H = I``), while the rest relaxes to the
    law of :func:`.langevin.stationary_covariance`; with momentum the growth tends to ``D`` per
    step after the buffer's transient. A positive definite ``A~`` gives ``k = 0`` and ``D = 0``.

    Raises:
        ValueError: unless ``A + weight_decay I`` is positive semi-definite.
    """
    basis = eigenbasis(problem, warn=False)
    null, rate = free_diffusion(basis, problem)
    like = {"dtype": problem.hessian.dtype, "device": problem.hessian.device}
    return NullSpaceDiffusion(null.to(**like), rate.to(**like))
