r"""SGD with momentum and weight decay as an underdamped Langevin process (Kunin et al. 2021).

``torch.optim.SGD`` (dampening 0, no Nesterov): ``v <- beta v + g_B + lambda theta``;
``theta <- theta - eta v``. On the quadratic test problem (THEORY section 2) the phase-space state
``z = (theta, v)`` is an exact linear AR(1) process,

.. math::

    z_{k+1} = M_z z_k + G \xi_k, \quad
    M_z = \begin{pmatrix} I - \eta \tilde A & -\eta\beta I \\ \tilde A & \beta I \end{pmatrix},
    \quad G = \begin{pmatrix} -\eta I \\ I \end{pmatrix}, \quad \mathrm{Cov}\,\xi = C / B,

so its stationary covariance solves ``P = M_z P M_z^T + G (C/B) G^T``. Kunin et al.'s continuous
model (time ``t = k eta``) is
``(eta (1+beta)/2) theta'' + (1 - beta) theta' = -grad L_lambda + sqrt(eta/B) C^{1/2} xi(t)``.

Every block of ``M_z`` is a polynomial in ``A~ = A + lambda I``, so in the eigenbasis of ``A~``
both Lyapunov equations split into ``d^2`` independent 2x2 Stein/Sylvester equations, solved as
batched 4x4 linear systems (chunked over rows; O(d^3) for ``eigh`` plus O(d^2) small solves).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from bayesdepth._validation import check_positive

from ._linalg import check_symmetric
from .langevin import batch_noise_factor

__all__ = [
    "isotropic_temperature",
    "modified_loss",
    "msd_curve",
    "phase_space_covariance",
    "probability_current",
    "underdamped_covariance",
]

_CHUNK_PAIRS = 1 << 18  # number of 4x4 systems solved at once


def _setup(hessian, noise_cov, lr, batch_size, momentum, weight_decay, num_data):
    like = (hessian.dtype, hessian.device)
    lr = check_positive("lr", lr)
    beta = check_positive("momentum", momentum, allow_zero=True)
    if beta >= 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
    lam = check_positive("weight_decay", weight_decay, allow_zero=True)
    factor = batch_noise_factor(batch_size, num_data)
    a = check_symmetric("hessian", hessian, psd=False)
    d = a.shape[0]
    c = check_symmetric("noise_cov", noise_cov, size=d, psd=True)
    w, u = torch.linalg.eigh(a + lam * torch.eye(d, dtype=a.dtype, device=a.device))
    lo, hi = float(w.min()), float(w.max())
    if lo <= 0:
        raise ValueError(
            f"no stationary law: hessian + weight_decay I must be positive definite, smallest "
            f"eigenvalue {lo:.6g}"
        )
    return lr, beta, factor, w, u, u.T @ c @ u, like, (lo, hi)


def _check_discrete(lr, beta, hi):
    if lr * hi >= 2 * (1 + beta):
        raise ValueError(
            f"no stationary law: lr * lambda_max = {lr:.6g} * {hi:.6g} = {lr * hi:.6g} >= "
            f"2 (1 + momentum) = {2 * (1 + beta):.6g} (SGD with momentum is stable only for "
            f"0 < lr * lambda < 2 (1 + momentum), lambda the eigenvalues of hessian + weight_decay)"
        )


def _discrete_blocks(w, lr, beta):
    """Per-eigenvalue 2x2 transition matrices ``M_i`` (d, 2, 2) of ``(theta, v)``."""
    one = torch.ones_like(w)
    row0 = torch.stack([1 - lr * w, -lr * beta * one], -1)
    row1 = torch.stack([w, beta * one], -1)
    return torch.stack([row0, row1], -2)


def _solve_pairs(mi, mj, rhs, continuous):
    """Solve ``X = M_i X M_j^T + R`` (or ``F_i X + X F_j^T + R = 0``) for every pair (i, j).

    ``mi`` (d, 2, 2), ``mj`` (d, 2, 2), ``rhs`` (2, 2). Returns (d, d, 2, 2) for unit ``C'_ij``.
    """
    d = mi.shape[0]
    eye2 = torch.eye(2, dtype=mi.dtype, device=mi.device)
    eye4 = torch.eye(4, dtype=mi.dtype, device=mi.device)
    out = torch.empty(d, mj.shape[0], 2, 2, dtype=mi.dtype, device=mi.device)
    b = rhs.reshape(4, 1)
    step = max(1, _CHUNK_PAIRS // max(mj.shape[0], 1))
    for s in range(0, d, step):
        m = mi[s : s + step]
        if continuous:  # row-major vec: vec(F X) = (F kron I) x, vec(X G^T) = (I kron G) x
            k = torch.einsum("ipq,rs->iprqs", m, eye2)[:, None] + torch.einsum(
                "pq,jrs->jprqs", eye2, mj
            )[None]
            k = k.reshape(*k.shape[:2], 4, 4)
            sol = torch.linalg.solve(k, -b.expand(*k.shape[:2], 4, 1))
        else:  # vec(M_i X M_j^T) = (M_i kron M_j) x
            k = torch.einsum("ipq,jrs->ijprqs", m, mj).reshape(m.shape[0], -1, 4, 4)
            sol = torch.linalg.solve(eye4 - k, b.expand(*k.shape[:2], 4, 1))
        out[s : s + step] = sol.reshape(*k.shape[:2], 2, 2)
    return out


def _assemble(blocks, cp, u, like):
    """Phase-space covariance (2d, 2d) from eigenbasis blocks ``blocks * C'_ij``."""
    d = u.shape[0]
    pp = blocks * cp[:, :, None, None]
    full = torch.empty(2 * d, 2 * d, dtype=u.dtype, device=u.device)
    for p in range(2):
        for q in range(2):
            full[p * d : (p + 1) * d, q * d : (q + 1) * d] = u @ pp[:, :, p, q] @ u.T
    full = (full + full.T) / 2
    return full.to(dtype=like[0], device=like[1])


def phase_space_covariance(
    hessian: torch.Tensor,
    noise_cov: torch.Tensor,
    lr: float,
    batch_size: int = 1,
    *,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    num_data: int | None = None,
) -> torch.Tensor:
    r"""Exact stationary covariance ``P`` of ``(theta, v)`` for ``torch.optim.SGD`` on a quadratic.

    Solves ``P = M_z P M_z^T + G (C/B) G^T`` (THEORY section 2; Kunin et al., arXiv 2107.09133).
    Returns a (2d, 2d) matrix; ``P[:d, :d]`` is the parameters' covariance, ``v`` is torch's
    momentum buffer.

    Raises:
        ValueError: unless ``0 < lr * lambda < 2 (1 + momentum)`` for every eigenvalue ``lambda``
            of ``hessian + weight_decay I``, or for non-symmetric / non-PSD inputs.
    """
    lr, beta, factor, w, u, cp, like, (_, hi) = _setup(
        hessian, noise_cov, lr, batch_size, momentum, weight_decay, num_data
    )
    _check_discrete(lr, beta, hi)
    m = _discrete_blocks(w, lr, beta)
    rhs = factor * torch.tensor([[lr * lr, -lr], [-lr, 1.0]], dtype=w.dtype, device=w.device)
    return _assemble(_solve_pairs(m, m, rhs, continuous=False), cp, u, like)


def underdamped_covariance(
    hessian: torch.Tensor,
    noise_cov: torch.Tensor,
    lr: float,
    batch_size: int = 1,
    *,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    num_data: int | None = None,
) -> torch.Tensor:
    r"""Stationary covariance of Kunin et al.'s continuous underdamped model in ``(theta, theta')``.

    With mass ``m = eta (1 + beta) / 2`` and friction ``gamma = 1 - beta`` (time ``t = k eta``):
    ``d theta = u dt``, ``m du = (-gamma u - A~ theta) dt + sqrt(eta/B) C^{1/2} dW``; solves
    ``F P + P F^T + Q = 0``. The ``theta`` block tends to the discrete law as ``eta -> 0``; for
    ``beta = 0`` it is the underdamped (not Mandt's overdamped) continuum.
    """
    lr, beta, factor, w, u, cp, like, _ = _setup(
        hessian, noise_cov, lr, batch_size, momentum, weight_decay, num_data
    )
    mass, gamma = lr * (1 + beta) / 2, 1 - beta
    one = torch.ones_like(w)
    f = torch.stack(
        [torch.stack([0 * one, one], -1), torch.stack([-w / mass, -gamma / mass * one], -1)], -2
    )
    rhs = torch.zeros(2, 2, dtype=w.dtype, device=w.device)
    rhs[1, 1] = lr * factor / mass**2
    return _assemble(_solve_pairs(f, f, rhs, continuous=True), cp, u, like)


def probability_current(
    hessian: torch.Tensor,
    noise_cov: torch.Tensor,
    lr: float,
    batch_size: int = 1,
    *,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> torch.Tensor:
    r"""Lag-1 antisymmetric covariance ``E[theta_{k+1} theta_k^T] - E[theta_k theta_{k+1}^T]``.

    ``(M_z P)_{theta theta} - (M_z P)_{theta theta}^T``; zero iff detailed balance holds. For
    ``momentum = 0`` it equals ``-lr (A S - S A)``: non-zero exactly when ``A~`` and ``C`` do not
    commute (Kunin et al. 2021; THEORY section 2).
    """
    lr, beta, factor, w, u, cp, like, (_, hi) = _setup(
        hessian, noise_cov, lr, batch_size, momentum, weight_decay, None
    )
    _check_discrete(lr, beta, hi)
    m = _discrete_blocks(w, lr, beta)
    rhs = factor * torch.tensor([[lr * lr, -lr], [-lr, 1.0]], dtype=w.dtype, device=w.device)
    blocks = _solve_pairs(m, m, rhs, continuous=False) * cp[:, :, None, None]
    lag = _lag_theta(m, blocks)
    x = u @ lag @ u.T
    return (x - x.T).to(dtype=like[0], device=like[1])


def _lag_theta(m, blocks):
    """``(M_i P_ij)[0, 0]`` for every pair: the theta-theta lag-1 covariance in the eigenbasis."""
    # (M_i P_ij)[0, 0] = M_i[0, 0] P_ij[0, 0] + M_i[0, 1] P_ij[1, 0]
    return m[:, None, 0, 0] * blocks[:, :, 0, 0] + m[:, None, 0, 1] * blocks[:, :, 1, 0]


def msd_curve(
    hessian: torch.Tensor,
    noise_cov: torch.Tensor,
    lr: float,
    batch_size: int = 1,
    lags: Sequence[int] | torch.Tensor = (1, 10, 100),
    *,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> torch.Tensor:
    r"""Stationary mean squared displacement ``MSD(tau) = E|theta_{k+tau} - theta_k|^2``.

    ``MSD(tau) = 2 tr S - 2 tr[(M_z^tau P)_{theta theta}]`` (THEORY section 2). Only the diagonal
    eigen-blocks enter, so after one ``eigh`` each lag costs O(d). With ``C ∝ A`` and a power-law
    spectrum of ``A`` it grows as a power of ``tau`` at intermediate lags (anomalous diffusion).

    Returns:
        (len(lags),) tensor in the Hessian's dtype.
    """
    lr, beta, factor, w, _, cp, like, (_, hi) = _setup(
        hessian, noise_cov, lr, batch_size, momentum, weight_decay, None
    )
    _check_discrete(lr, beta, hi)
    lags_t = torch.as_tensor(lags, device=w.device).long().reshape(-1)
    if bool((lags_t < 0).any()):
        raise ValueError(f"lags must be integers >= 0, got {lags_t.tolist()}")
    m = _discrete_blocks(w, lr, beta)
    rhs = factor * torch.tensor([[lr * lr, -lr], [-lr, 1.0]], dtype=w.dtype, device=w.device)
    diag = _diag_blocks(m, rhs)
    pii = diag * torch.diagonal(cp)[:, None, None]
    tr_s = pii[:, 0, 0].sum()
    out = []
    for tau in lags_t.tolist():
        mt = torch.linalg.matrix_power(m, int(tau))
        out.append(2 * tr_s - 2 * (mt[:, 0, :] * pii[:, :, 0]).sum())
    return torch.stack(out).to(dtype=like[0], device=like[1])


def _diag_blocks(m, rhs):
    """Solve ``X_i = M_i X_i M_i^T + R`` for each i (the diagonal pairs only): (d, 2, 2)."""
    eye4 = torch.eye(4, dtype=m.dtype, device=m.device)
    k = torch.einsum("ipq,irs->iprqs", m, m).reshape(-1, 4, 4)
    sol = torch.linalg.solve(eye4 - k, rhs.reshape(4, 1).expand(m.shape[0], 4, 1))
    return sol.reshape(-1, 2, 2)


def isotropic_temperature(
    noise_scale: float, lr: float, batch_size: int = 1, momentum: float = 0.0
) -> float:
    r"""``T = eta c / (2 B (1 - beta))`` for isotropic gradient noise ``C = c I`` (Kunin et al.)."""
    c = check_positive("noise_scale", noise_scale)
    lr = check_positive("lr", lr)
    beta = check_positive("momentum", momentum, allow_zero=True)
    if beta >= 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
    return lr * c * batch_noise_factor(batch_size, None) / (2 * (1 - beta))


def modified_loss(
    loss: Callable[[torch.Tensor], torch.Tensor],
    lr: float,
    *,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""The modified loss whose Gibbs law SGD samples when the gradient noise is isotropic.

    ``L~ = L_lambda - eta |grad L_lambda|^2 / (4 (1 + beta))`` with
    ``L_lambda = L + lambda |theta|^2 / 2`` (Kunin et al. 2021).
    For ``C = c I`` the stationary law on a quadratic is exactly ``∝ exp(-L~ / T)`` with ``T`` from
    :func:`isotropic_temperature`. ``loss`` maps a (d,) tensor to a scalar; the
    returned function works with ``torch.func`` transforms (``grad``, ``hessian``, ``vmap``).
    """
    lr = check_positive("lr", lr)
    beta = check_positive("momentum", momentum, allow_zero=True)
    lam = check_positive("weight_decay", weight_decay, allow_zero=True)
    if not callable(loss):
        raise TypeError(f"loss must be callable, got {type(loss).__name__}")

    def l_lambda(theta: torch.Tensor) -> torch.Tensor:
        return loss(theta) + 0.5 * lam * (theta * theta).sum()

    grad = torch.func.grad(l_lambda)

    def modified(theta: torch.Tensor) -> torch.Tensor:
        g = grad(theta)
        return l_lambda(theta) - lr * (g * g).sum() / (4 * (1 + beta))

    return modified
