r"""Exact stationary moments of constant SGD on Bayesian linear regression (docs/theory.md §1.6).

On linear regression the minibatch gradient noise is *multiplicative*: with ``delta = w - w*``,
``g_n(w) - g(w) = c_n + K_n delta``, ``c_n`` the per-example gradient deviation at the optimum and
``K_n = x_n x_n^T / s^2 - X^T X / (N s^2)``. SGD stays linear in ``w``, so the second moment closes
exactly: in phase space ``z = (delta, v)`` (``torch.optim.SGD``'s momentum buffer ``v``),

.. math::

    P = M_z P M_z^T + \phi\, G \Big[C_* + \frac{1}{N}\sum_n K_n P_{ww} K_n\Big] G^T,

with ``M_z``, ``G`` of :mod:`.momentum`, ``C_*`` the gradient covariance at the optimum and ``phi``
the minibatch factor; the stationary mean is exactly the optimum. The SDE with the same
state-dependent noise, ``dX = -A~ X dt + sqrt(eta phi Sigma(X)) dW``, has
``A~ S + S A~ = eta phi [C_* + (1/N) sum_n K_n S K_n]``. Both are solved as ``(2d)^2`` (or
``d^2``) linear systems, for small ``d``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .langevin import stationary_covariance
from .problem import SGDProblem, linear_regression_optimum

__all__ = ["RegressionMoments", "linear_regression_moments"]

F64 = torch.float64


@dataclass(frozen=True)
class RegressionMoments:
    """What :func:`linear_regression_moments` returns (float64, on the data's device)."""

    mean: torch.Tensor  #: the stationary mean: the minimiser of ``L + weight_decay |w|^2 / 2``
    covariance: torch.Tensor  #: the exact stationary covariance (multiplicative noise included)
    additive: torch.Tensor  #: the Lyapunov law with the noise frozen at the optimum


def multiplicative_operator(x: torch.Tensor, noise_scale: float) -> torch.Tensor:
    """``(1/N) sum_n K_n kron K_n`` as a (d^2, d^2) matrix acting on row-major ``vec(S)``
    (``K_n = x_n x_n^T / s^2 - X^T X / (N s^2)``, docs/theory.md §1.6)."""
    n = x.shape[0]
    s2 = noise_scale**2
    k = torch.einsum("ni,nj->nij", x, x) / s2 - x.T @ x / (n * s2)
    d = x.shape[1]
    return torch.einsum("nij,nkl->ikjl", k, k).reshape(d * d, d * d) / n


def stationary_second_moment(op: torch.Tensor, source: torch.Tensor, what: str) -> torch.Tensor:
    """Solve ``vec S = op vec S + source`` for the stationary second moment.

    Raises:
        ValueError: when ``op``'s spectral radius is >= 1 (no stationary value), starting with
            ``what`` (the process and its settings) and giving the radius.
    """
    rho = float(torch.linalg.eigvals(op).abs().max())
    if rho >= 1:
        raise ValueError(
            f"no stationary second moment: {what} is mean-square unstable on this regression "
            f"(spectral radius of the second-moment operator {rho:.6g} >= 1; the multiplicative "
            "noise lowers the bound below lr * lambda_max < 2)"
        )
    eye = torch.eye(op.shape[0], dtype=op.dtype, device=op.device)
    return torch.linalg.solve(eye - op, source)


def _check_belongs(problem: SGDProblem, hessian: torch.Tensor, noise_cov: torch.Tensor,
                   num_data: int) -> None:
    same = torch.allclose(problem.hessian.to(hessian), hessian, rtol=1e-8, atol=1e-12)
    same = same and torch.allclose(problem.noise_cov.to(noise_cov), noise_cov, rtol=1e-8,
                                   atol=1e-12)
    if not same or problem.num_data not in (None, num_data):
        raise ValueError(
            "problem does not belong to data: its hessian, noise_cov or num_data differ from the "
            "data's; build it with SGDProblem.from_linear_regression(data, lr=..., ...)"
        )
    if problem.preconditioner is not None:
        raise ValueError(
            "linear_regression_moments models torch.optim.SGD, which has no preconditioner; got "
            "a problem with preconditioner set"
        )


def linear_regression_moments(
    data: Any, problem: SGDProblem, *, discrete: bool = True
) -> RegressionMoments:
    r"""Exact stationary mean and covariance of constant SGD on Bayesian linear regression.

    Loss ``L = (1/N) sum_n [(x_n^T w - y_n)^2 / (2 s^2)] + |w|^2 / (2 s_0^2 N)`` (prior folded
    in), ``torch.optim.SGD`` with the problem's learning rate, momentum and weight decay, batches
    of the problem's size with or without replacement. For ``momentum = 0`` the closure reads
    ``S = M S M^T + eta^2 phi [C_* + (1/N) sum_n K_n S K_n]`` (see the module docstring and
    docs/theory.md §1.6).

    Args:
        data: has ``x`` (N, d), ``y`` (N,), ``prior_scale``, ``noise_scale`` (e.g.
            :func:`bayesdepth.data.linear_regression`).
        problem: ``SGDProblem.from_linear_regression(data, lr=..., ...)``.
        discrete: the exact law of SGD (True) or of the SDE with the same state-dependent noise
            (False, momentum 0 only).

    Raises:
        ValueError: when the second moment has no stationary value (spectral radius of the
            second-moment operator >= 1, which happens below the deterministic bound
            ``lr * lambda_max < 2``), or when ``problem`` was not built from ``data``.
    """
    optimum = linear_regression_optimum(data, problem.weight_decay)
    x = data.x.to(F64)
    n, d = x.shape
    _check_belongs(problem, optimum.hessian, optimum.noise_cov, n)
    if not discrete and problem.momentum:
        raise ValueError("discrete=False (the SDE) is implemented for momentum = 0 only")
    additive = stationary_covariance(problem, discrete=discrete).to(optimum.hessian)
    kop = multiplicative_operator(x, data.noise_scale)
    lr, factor = problem.lr, problem.noise_factor
    c = optimum.noise_cov.reshape(-1)
    at = problem.regularised_hessian.to(x.device)
    eye = torch.eye(d, dtype=F64, device=x.device)
    if not discrete:
        lyap = torch.kron(at, eye) + torch.kron(eye, at) - lr * factor * kop
        s = torch.linalg.solve(lyap, lr * factor * c).reshape(d, d)
        s = (s + s.T) / 2
        if float(torch.linalg.eigvalsh(s)[0]) <= 0:
            raise ValueError(f"no stationary second moment for the SDE at lr = {lr:.6g}")
        return RegressionMoments(optimum.mean, s, additive)
    beta = problem.momentum
    mz = torch.cat(
        [torch.cat([eye - lr * at, -lr * beta * eye], 1), torch.cat([at, beta * eye], 1)], 0
    )
    g = torch.cat([-lr * eye, eye], 0)
    sel = torch.zeros(d * d, 4 * d * d, dtype=F64, device=x.device)  # vec(P) -> vec(P_ww)
    rows = torch.arange(d * d, device=x.device)
    sel[rows, (rows // d) * (2 * d) + rows % d] = 1.0
    gg = torch.kron(g, g)
    op = torch.kron(mz, mz) + factor * gg @ kop @ sel
    p = stationary_second_moment(op, factor * gg @ c, f"SGD with lr = {lr:.6g}")
    p = p.reshape(2 * d, 2 * d)
    s = p[:d, :d]
    return RegressionMoments(optimum.mean, (s + s.T) / 2, additive)
