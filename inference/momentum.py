r"""SGD with momentum and weight decay as an underdamped Langevin process (Kunin et al. 2021).

``torch.optim.SGD`` (dampening 0, no Nesterov): ``v <- beta v + g_B + lambda theta``;
``theta <- theta - eta v``. On the quadratic test problem (docs/theory.md §2) the phase-space
state ``z = (theta, v)`` is an exact linear AR(1) process,

.. math::

    z_{k+1} = M_z z_k + G \xi_k, \quad
    M_z = \begin{pmatrix} I - \eta \tilde A & -\eta\beta I \\ \tilde A & \beta I \end{pmatrix},
    \quad G = \begin{pmatrix} -\eta I \\ I \end{pmatrix}, \quad
    \mathrm{Cov}\,\xi = \mathrm{Cov}\,g_B,

so its stationary covariance solves ``P = M_z P M_z^T + G Cov(g_B) G^T``. Kunin et al.'s continuous
model (time ``t = k eta``) is
``(eta (1+beta)/2) theta'' + (1 - beta) theta' = -grad L_lambda + sqrt(eta/B) C^{1/2} xi``.

Every block of ``M_z`` is a polynomial in ``A~ = A + lambda I``, so in the eigenbasis of ``A~``
both Lyapunov equations split into ``d^2`` independent 2x2 Stein/Sylvester equations, solved as
batched 4x4 linear systems (chunked over rows; O(d^3) for ``eigh`` plus O(d^2) small solves).
Every function takes an :class:`~.problem.SGDProblem` without a preconditioner.

On a degenerate minimum (``A~`` singular) the null-space coordinates of ``theta`` diffuse freely
while everything else (the range of ``theta`` and the whole momentum buffer ``v``) is stationary:
for a null eigenvalue ``a_i = 0`` the ``v_i`` row of ``M_i`` does not involve ``theta_i``. The
laws here are those of ``(Q theta, v)``, ``Q`` the projector onto the range, obtained by replacing
the ``theta_i`` rows of ``M_i`` (and of the noise input) by zero, which leaves the stationary
equations of every other entry unchanged (docs/theory.md §13.1).

Reference: D. Kunin, J. Sagastuy-Brena, L. Gillespie, E. Margalit, H. Tanaka, S. Ganguli,
D. L. K. Yamins, "The limiting dynamics of SGD: modified loss, phase space oscillations, and
anomalous diffusion", arXiv 2107.09133 (2021).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from bayesdepth._validation import check_positive

from ._eigen import Eigenbasis, check_stable, eigenbasis
from .problem import SGDProblem, check_momentum

__all__ = [
    "isotropic_temperature",
    "modified_loss",
    "msd_curve",
    "phase_space_covariance",
    "probability_current",
    "underdamped_covariance",
]

_CHUNK_PAIRS = 1 << 18  # number of 4x4 systems solved at once


def _basis(problem: SGDProblem, what: str, discrete: bool = True) -> Eigenbasis:
    """The eigenbasis of a problem without preconditioner (and a stable one if ``discrete``)."""
    if problem.preconditioner is not None:
        raise ValueError(
            f"{what} models torch.optim.SGD, which has no preconditioner; got a problem with "
            f"preconditioner set (use preconditioner=None)"
        )
    basis = eigenbasis(problem, stacklevel=4)
    if discrete:
        check_stable(basis.values, problem.lr, momentum=problem.momentum)
    return basis


def _transitions(problem: SGDProblem, basis: Eigenbasis) -> torch.Tensor:
    """Per-eigenvalue 2x2 transition matrices ``M_i`` (d, 2, 2) of ``(theta, v)``.

    The ``theta_i`` row is zero for a null eigenvalue (its free coordinate is dropped).
    """
    lr, beta, w = problem.lr, problem.momentum, basis.values
    one = torch.ones_like(w)
    row0 = torch.stack([1 - lr * w, -lr * beta * one], -1) * _kept(basis)[:, :1]
    row1 = torch.stack([w, beta * one], -1)
    return torch.stack([row0, row1], -2)


def _kept(basis: Eigenbasis) -> torch.Tensor:
    """(d, 2) float mask of the stationary entries ``(theta_i, v_i)``: ``theta_i`` on the range."""
    r = basis.range.to(basis.values.dtype)
    return torch.stack([r, torch.ones_like(r)], -1)


def _noise_block(problem: SGDProblem, w: torch.Tensor) -> torch.Tensor:
    """``G G^T`` times the minibatch factor: the 2x2 noise input per unit ``C'_ij``."""
    lr = problem.lr
    g = torch.tensor([[lr * lr, -lr], [-lr, 1.0]], dtype=w.dtype, device=w.device)
    return problem.noise_factor * g


def _solve_pairs(mi, mj, rhs, keep, continuous):
    """Solve ``X = M_i X M_j^T + R_ij`` (or ``F_i X + X F_j^T + R_ij = 0``) for every pair (i, j).

    ``mi`` (d, 2, 2), ``mj`` (d, 2, 2), ``rhs`` (2, 2), ``keep`` (d, 2) the stationary entries:
    ``R_ij = diag(keep_i) R diag(keep_j)``. Returns (d, d, 2, 2) for unit ``C'_ij``.
    """
    d = mi.shape[0]
    eye2 = torch.eye(2, dtype=mi.dtype, device=mi.device)
    eye4 = torch.eye(4, dtype=mi.dtype, device=mi.device)
    out = torch.empty(d, mj.shape[0], 2, 2, dtype=mi.dtype, device=mi.device)
    step = max(1, _CHUNK_PAIRS // max(mj.shape[0], 1))
    for s in range(0, d, step):
        m = mi[s : s + step]
        b = (rhs * keep[s : s + step, None, :, None] * keep[None, :, None, :]).reshape(
            m.shape[0], -1, 4, 1
        )
        if continuous:  # row-major vec: vec(F X) = (F kron I) x, vec(X G^T) = (I kron G) x
            k = torch.einsum("ipq,rs->iprqs", m, eye2)[:, None] + torch.einsum(
                "pq,jrs->jprqs", eye2, mj
            )[None]
            k = k.reshape(*k.shape[:2], 4, 4)
            sol = torch.linalg.solve(k, -b)
        else:  # vec(M_i X M_j^T) = (M_i kron M_j) x
            k = torch.einsum("ipq,jrs->ijprqs", m, mj).reshape(m.shape[0], -1, 4, 4)
            sol = torch.linalg.solve(eye4 - k, b)
        out[s : s + step] = sol.reshape(*k.shape[:2], 2, 2)
    return out


def _assemble(blocks: torch.Tensor, basis: Eigenbasis, problem: SGDProblem) -> torch.Tensor:
    """Phase-space covariance (2d, 2d) from eigenbasis blocks ``blocks * C'_ij``."""
    u = basis.vectors
    d = u.shape[0]
    pp = blocks * basis.noise[:, :, None, None]
    full = torch.empty(2 * d, 2 * d, dtype=u.dtype, device=u.device)
    for p in range(2):
        for q in range(2):
            full[p * d : (p + 1) * d, q * d : (q + 1) * d] = u @ pp[:, :, p, q] @ u.T
    full = (full + full.T) / 2
    return full.to(dtype=problem.hessian.dtype, device=problem.hessian.device)


def _discrete_blocks(problem: SGDProblem, basis: Eigenbasis) -> tuple[torch.Tensor, torch.Tensor]:
    """``M_i`` (d, 2, 2) and the stationary blocks ``P_ij`` (d, d, 2, 2) for unit ``C'_ij``."""
    m = _transitions(problem, basis)
    rhs = _noise_block(problem, basis.values)
    return m, _solve_pairs(m, m, rhs, _kept(basis), continuous=False)


def phase_space_covariance(problem: SGDProblem) -> torch.Tensor:
    r"""Exact stationary covariance ``P`` of ``(theta, v)`` for ``torch.optim.SGD`` on a quadratic.

    Solves ``P = M_z P M_z^T + G Cov(g_B) G^T`` (docs/theory.md §2.1). Returns a (2d, 2d) matrix;
    ``P[:d, :d]`` is the parameters' covariance, ``v`` is torch's momentum buffer. On a
    degenerate minimum it is the law of ``(Q theta, v)`` (docs/theory.md §13.1).

    Raises:
        ValueError: unless ``0 <= lr * a < 2 (1 + momentum)`` for every eigenvalue ``a`` of
            ``hessian + weight_decay I``, or for a problem with a preconditioner.
    """
    basis = _basis(problem, "phase_space_covariance")
    _, blocks = _discrete_blocks(problem, basis)
    return _assemble(blocks, basis, problem)


def underdamped_covariance(problem: SGDProblem) -> torch.Tensor:
    r"""Stationary covariance of Kunin et al.'s continuous underdamped model in ``(theta, theta')``.

    With mass ``m = eta (1 + beta) / 2`` and friction ``gamma = 1 - beta`` (time ``t = k eta``):
    ``d theta = u dt``, ``m du = (-gamma u - A~ theta) dt + sqrt(eta Cov g_B) dW``; solves
    ``F P + P F^T + Q = 0`` (docs/theory.md §2.2). The ``theta`` block tends to the discrete law as
    ``eta -> 0``; for ``beta = 0`` it is the underdamped (not Mandt's overdamped) continuum.
    On a degenerate minimum: the law of ``(Q theta, theta')``, the ``theta_i`` row of ``F_i`` set
    to ``(-1, 0)`` for a null eigenvalue, which makes that entry 0 and leaves the rest
    (docs/theory.md §13.1).
    """
    basis = _basis(problem, "underdamped_covariance", discrete=False)
    w = basis.values
    mass, gamma = problem.lr * (1 + problem.momentum) / 2, 1 - problem.momentum
    one = torch.ones_like(w)
    null = (~basis.range).to(w.dtype)
    f = torch.stack(
        [torch.stack([-null, one - null], -1), torch.stack([-w / mass, -gamma / mass * one], -1)],
        -2,
    )
    rhs = torch.zeros(2, 2, dtype=w.dtype, device=w.device)
    rhs[1, 1] = problem.lr * problem.noise_factor / mass**2
    return _assemble(_solve_pairs(f, f, rhs, _kept(basis), continuous=True), basis, problem)


def probability_current(problem: SGDProblem) -> torch.Tensor:
    r"""Lag-1 antisymmetric covariance ``E[theta_{k+1} theta_k^T] - E[theta_k theta_{k+1}^T]``.

    ``(M_z P)_{theta theta} - (M_z P)_{theta theta}^T``; zero iff detailed balance holds. For
    ``momentum = 0`` it equals ``-lr (A~ S - S A~)``: non-zero exactly when ``A~`` and ``C`` do not
    commute (Kunin et al. 2021; docs/theory.md §2.5). On a degenerate minimum: the current of
    ``Q theta`` (docs/theory.md §13.1).
    """
    basis = _basis(problem, "probability_current")
    m, blocks = _discrete_blocks(problem, basis)
    pp = blocks * basis.noise[:, :, None, None]
    # (M_i P_ij)[0, 0] = M_i[0, 0] P_ij[0, 0] + M_i[0, 1] P_ij[1, 0]: theta-theta lag-1 covariance
    lag = m[:, None, 0, 0] * pp[:, :, 0, 0] + m[:, None, 0, 1] * pp[:, :, 1, 0]
    x = basis.vectors @ lag @ basis.vectors.T
    return (x - x.T).to(dtype=problem.hessian.dtype, device=problem.hessian.device)


def msd_curve(
    problem: SGDProblem, lags: Sequence[int] | torch.Tensor = (1, 10, 100)
) -> torch.Tensor:
    r"""Stationary mean squared displacement ``MSD(tau) = E|theta_{k+tau} - theta_k|^2``.

    ``MSD(tau) = 2 tr S - 2 tr[(M_z^tau P)_{theta theta}]`` (docs/theory.md §2.6). Only the
    diagonal eigen-blocks enter, so after one ``eigh`` each lag costs O(d). With ``C ∝ A`` and a
    power-law spectrum of ``A`` it grows as a power of ``tau`` at intermediate lags (anomalous
    diffusion). On a degenerate minimum the null space adds the exact MSD of its free diffusion,
    ``eta^2 phi tr(C'_00) / (1 - beta^2) [tau (1 + beta)/(1 - beta) - 2 beta (1 - beta^tau) /
    (1 - beta)^2]`` (stationary momentum buffer; docs/theory.md §13.1).

    Returns:
        (len(lags),) tensor in the Hessian's dtype.
    """
    basis = _basis(problem, "msd_curve")
    w = basis.values
    lags_t = torch.as_tensor(lags, device=w.device).long().reshape(-1)
    if bool((lags_t < 0).any()):
        raise ValueError(f"lags must be integers >= 0, got {lags_t.tolist()}")
    m = _transitions(problem, basis)
    eye4 = torch.eye(4, dtype=w.dtype, device=w.device)
    k = torch.einsum("ipq,irs->iprqs", m, m).reshape(-1, 4, 4)
    keep = _kept(basis)
    rhs = (_noise_block(problem, w) * keep[:, :, None] * keep[:, None, :]).reshape(-1, 4, 1)
    diag = torch.linalg.solve(eye4 - k, rhs).reshape(-1, 2, 2)  # X_i = M_i X_i M_i^T + R
    pii = diag * torch.diagonal(basis.noise)[:, None, None]
    tr_s = pii[:, 0, 0].sum()
    beta = problem.momentum
    free = problem.lr**2 * problem.noise_factor / (1 - beta**2)
    free = free * torch.diagonal(basis.noise)[~basis.range].sum()
    out = []
    for tau in lags_t.tolist():
        mt = torch.linalg.matrix_power(m, int(tau))
        walk = tau * (1 + beta) / (1 - beta) - 2 * beta * (1 - beta**tau) / (1 - beta) ** 2
        out.append(2 * tr_s - 2 * (mt[:, 0, :] * pii[:, :, 0]).sum() + free * walk)
    return torch.stack(out).to(dtype=problem.hessian.dtype, device=problem.hessian.device)


def isotropic_temperature(problem: SGDProblem) -> float:
    r"""``T = eta c / (2 B (1 - beta))`` for isotropic gradient noise ``C = c I`` (Kunin et al.).

    With the minibatch factor in place of ``1/B`` (docs/theory.md §2.4). Raises unless
    ``problem.noise_cov`` is ``c I``.
    """
    c = problem.noise_cov.to(torch.float64)
    level = float(torch.diagonal(c).mean())
    eye = torch.eye(problem.dim, dtype=c.dtype, device=c.device)
    gap = float((c - level * eye).abs().max())
    if gap > 1e-10 * max(abs(level), 1e-300):
        raise ValueError(
            f"isotropic_temperature needs isotropic noise noise_cov = c I; it differs from "
            f"{level:.6g} I by up to {gap:.3g}"
        )
    return problem.lr * level * problem.noise_factor / (2 * (1 - problem.momentum))


def modified_loss(
    loss: Callable[[torch.Tensor], torch.Tensor],
    lr: float,
    *,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""The modified loss whose Gibbs law SGD samples when the gradient noise is isotropic.

    ``L~ = L_lambda - eta |grad L_lambda|^2 / (4 (1 + beta))`` with
    ``L_lambda = L + lambda |theta|^2 / 2`` (Kunin et al. 2021; docs/theory.md §2.4).
    For ``C = c I`` the stationary law on a quadratic is exactly ``∝ exp(-L~ / T)`` with ``T`` from
    :func:`isotropic_temperature`. ``loss`` maps a (d,) tensor to a scalar (any loss, not only a
    quadratic); the returned function works with ``torch.func`` transforms (``grad``,
    ``hessian``, ``vmap``).
    """
    lr = check_positive("lr", lr)
    beta = check_momentum(momentum)
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
