r"""Closed-form stationary laws of constant-rate SGD (Langevin / Ornstein-Uhlenbeck models).

Every function takes an :class:`~.problem.SGDProblem` (notation of docs/theory.md §0: Hessian
``A``, per-example noise ``C``, learning rate ``eta``, ``Cov g_B = phi C`` with the minibatch factor
``phi`` (``1/B`` for iid batches), weight decay ``lambda``, ``A~ = A + lambda I``, preconditioner
``H``). Equations are solved in the eigenbasis of ``A~`` (one ``eigh``, O(d^3) time, O(d^2)
memory) in float64 on the problem's device; results come back in the Hessian's dtype.

* Continuous (Mandt, Hoffman, Blei 2017; docs/theory.md §1.1): ``H A~ S + S A~ H = eta phi H C H``.
* Exact discrete (SGD on a quadratic is a linear AR(1) process; docs/theory.md §1.2):
  ``S = M S M^T + eta^2 phi H C H``, ``M = I - eta H A~``; for ``H = I`` equivalently
  ``A~ S + S A~ - eta A~ S A~ = eta phi C``.
* SVAG(l) (Li, Malladi, Arora 2021; docs/theory.md §3.3): ``A~ S + S A~ - (eta/l) A~ S A~ =
  eta phi C``.

With momentum the law lives in phase space: see :mod:`.momentum`. A positive *semi*-definite
``A~`` (a degenerate minimum) is accepted: every law is then the stationary law on the range of
``A~`` (the covariance of the component ``Q theta`` that relaxes; ``Q`` projects onto the range of
``H A~`` along its null space), with a :class:`~.problem.DegenerateMinimumWarning`; the free
diffusion along the null space is :func:`.degenerate.null_space_diffusion` (docs/theory.md §13.1).
"""

from __future__ import annotations

import torch

from bayesdepth._validation import check_positive, check_positive_int

from ._eigen import Eigenbasis, check_stable, eigenbasis, from_eigenbasis, pair_mask
from ._linalg import check_symmetric
from .momentum import phase_space_covariance, underdamped_covariance
from .problem import SGDProblem

__all__ = [
    "averaged_covariance",
    "expected_loss_ratio",
    "kl_to_laplace",
    "mandt_optimal_lr",
    "mandt_preconditioner",
    "noise_to_signal_ratio",
    "stationary_covariance",
    "svag_covariance",
]


def _lyapunov(basis: Eigenbasis, scale: float, kappa: float) -> torch.Tensor:
    """``S'_ij = scale C'_ij / (a_i + a_j - kappa a_i a_j)`` on the range block, 0 elsewhere."""
    w = basis.values
    denom = w[:, None] + w[None, :] - kappa * w[:, None] * w[None, :]
    return _on_range(scale * basis.noise, denom, basis)


def _on_range(num: torch.Tensor, denom: torch.Tensor, basis: Eigenbasis) -> torch.Tensor:
    """``num / denom`` where both indices lie in the range of ``A~``, 0 where one is null."""
    mask = pair_mask(basis)
    return mask * num / torch.where(mask > 0, denom, torch.ones_like(denom))


def _without_momentum(problem: SGDProblem, what: str) -> None:
    if problem.momentum:
        raise ValueError(
            f"{what} is the law of SGD without momentum; got a problem with "
            f"momentum={problem.momentum!r} (use momentum=0)"
        )


def _step_name(problem: SGDProblem, base: str = "lr") -> str:
    return base if problem.preconditioner is None else f"{base} (preconditioned)"


def _require_num_data(problem: SGDProblem, what: str) -> int:
    if problem.num_data is None:
        raise ValueError(f"{what} needs the data size: build the problem with num_data=N")
    return problem.num_data


def stationary_covariance(problem: SGDProblem, *, discrete: bool = True) -> torch.Tensor:
    r"""Stationary covariance of constant-rate SGD on a quadratic (docs/theory.md §1-§2).

    ``discrete=True`` (default) is exact for SGD on the quadratic test problem:
    :math:`S = M S M^T + \eta^2 phi H C H` with :math:`M = I - \eta H \tilde A`; with momentum it is
    the :math:`\theta\theta` block of the phase-space law of ``torch.optim.SGD``
    (:func:`bayesdepth.inference.momentum.phase_space_covariance`). ``discrete=False`` is the
    continuous model: :math:`H\tilde A S + S \tilde A H = \eta phi H C H` (Mandt, Hoffman, Blei,
    JMLR 2017), or with momentum Kunin et al.'s underdamped Langevin law (arXiv 2107.09133).

    Args:
        problem: the SGD problem (Hessian, noise, learning rate, batch size, momentum, weight
            decay, batches with or without replacement, preconditioner).
        discrete: exact discrete law (True) or the continuous SDE's law (False).

    Returns:
        ``S`` (d, d), in the Hessian's dtype and device.

    On a degenerate minimum (``A + weight_decay I`` singular) ``S`` is the law on the range:
    rows and columns of the null space are zero, and a
    :class:`~.problem.DegenerateMinimumWarning` reports the free diffusion there
    (docs/theory.md §13.1).

    Raises:
        ValueError: unless ``A + weight_decay I`` is positive semi-definite and, for the
            discrete law, ``lr * lambda_max < 2`` (with momentum ``< 2 (1 + momentum)``).
    """
    if problem.momentum > 0:
        law = phase_space_covariance if discrete else underdamped_covariance
        return law(problem)[: problem.dim, : problem.dim]
    basis = eigenbasis(problem)
    kappa = problem.lr if discrete else 0.0
    if discrete:
        check_stable(basis.values, problem.lr, step_name=_step_name(problem))
    sp = _lyapunov(basis, problem.lr * problem.noise_factor, kappa)
    return from_eigenbasis(sp, basis, problem)


def svag_covariance(problem: SGDProblem, l: float) -> torch.Tensor:
    r"""Exact stationary covariance of SVAG(l) on a quadratic (Li, Malladi, Arora, NeurIPS 2021).

    :math:`\tilde A S + S \tilde A - (\eta / l) \tilde A S \tilde A = \eta phi C`. ``l = 1`` is SGD;
    ``l -> inf`` the SDE (continuous Lyapunov law); the gap to the SDE is O(1/l)
    (docs/theory.md §3.3). The problem must have no momentum. On a degenerate minimum: the law
    on the range (docs/theory.md §13.1).
    """
    l = check_positive("l", l)
    if l < 1:
        raise ValueError(f"l must be >= 1, got {l!r}")
    _without_momentum(problem, "svag_covariance")
    basis = eigenbasis(problem)
    check_stable(basis.values, problem.lr / l, step_name=_step_name(problem, "lr / l"))
    sp = _lyapunov(basis, problem.lr * problem.noise_factor, problem.lr / l)
    return from_eigenbasis(sp, basis, problem)


def mandt_optimal_lr(problem: SGDProblem) -> float:
    r"""KL-optimal constant learning rate ``eps* = 2 B D / (N tr C)`` (Mandt et al. 2017, Thm 1).

    Minimises ``KL(N(0, S(eps)) || N(0, (N A)^{-1}))`` over scalar rates for the continuous law,
    ``KL(k eps*) - KL(eps*) = (D/2)(k - 1 - ln k)``; with the minibatch factor ``phi`` in place of
    ``1/B`` it reads ``2 D / (N phi tr C)`` (docs/theory.md §1.4). ``problem.lr`` is not used.
    """
    n = _require_num_data(problem, "mandt_optimal_lr")
    tr = float(torch.trace(problem.noise_cov.to(torch.float64)))
    if tr <= 0:
        raise ValueError(f"noise_cov must have a positive trace, got {tr:.3g}")
    return 2.0 * problem.dim / (n * problem.noise_factor * tr)


def mandt_preconditioner(problem: SGDProblem, diagonal: bool = False) -> torch.Tensor:
    r"""KL-optimal preconditioner ``H* = (2B / (eps N)) C^{-1}`` (Mandt et al. 2017, Thm 2).

    With ``H*`` the continuous stationary covariance equals the Laplace posterior ``(N A)^{-1}``
    (docs/theory.md §1.4); ``eps`` is ``problem.lr`` and ``1/B`` the minibatch factor.
    ``diagonal=True`` gives ``H_kk = 2B / (eps N C_kk)`` as a (d,) vector.
    """
    n = _require_num_data(problem, "mandt_preconditioner")
    k = 2.0 / (problem.lr * n * problem.noise_factor)
    if diagonal:
        diag = torch.diagonal(problem.noise_cov.to(torch.float64))
        if not bool((diag > 0).all()):
            low = float(diag.min())
            raise ValueError(f"noise_cov needs a positive diagonal, minimum {low:.3g}")
        return (k / diag).to(problem.noise_cov.dtype)
    c = check_symmetric("noise_cov", problem.noise_cov, pd=True)
    inv = torch.cholesky_inverse(torch.linalg.cholesky(c))
    return (k * (inv + inv.T) / 2).to(problem.noise_cov.dtype)


def kl_to_laplace(cov: torch.Tensor, problem: SGDProblem) -> float:
    r"""``KL(N(m, S) || N(m, (N A)^{-1})) = (tr(N A S) - D - ln det(N A S)) / 2`` (nats).

    The Laplace posterior of the problem: ``N = problem.num_data`` and ``A = problem.hessian``
    (the weight decay is the optimiser's, not the posterior's) (docs/theory.md §1.4).
    """
    n = _require_num_data(problem, "kl_to_laplace")
    s = check_symmetric("cov", cov, size=problem.dim, pd=True).to(problem.hessian.device)
    p = n * check_symmetric("problem.hessian", problem.hessian, pd=True)
    logdet = torch.linalg.slogdet(p)[1] + torch.linalg.slogdet(s)[1]
    return float(0.5 * (torch.trace(p @ s) - problem.dim - logdet))


def averaged_covariance(problem: SGDProblem, num_steps: int | None = None) -> torch.Tensor:
    r"""``T Cov(theta_bar_T)`` of the average of T stationary SGD iterates (docs/theory.md §1.5).

    The limit ``T -> inf`` (``num_steps=None``) is ``A~^{-1} Cov(g_B) A~^{-1}``, independent of
    the learning rate (and of a preconditioner). With ``num_steps`` the exact finite-T value on
    the quadratic: ``(1/T) [T S + F S + S F^T]``, ``F = sum_{tau=1}^{T-1} (T - tau) M^tau``,
    ``M = I - lr H A~``. The problem must have no momentum. On a degenerate minimum: the
    average of the component on the range (docs/theory.md §13.1).
    """
    _without_momentum(problem, "averaged_covariance")
    basis = eigenbasis(problem)
    w, factor = basis.values, problem.noise_factor
    if num_steps is None:
        sp = _on_range(factor * basis.noise, w[:, None] * w[None, :], basis)
        return from_eigenbasis(sp, basis, problem)
    n = check_positive_int("num_steps", num_steps)
    lr = problem.lr
    check_stable(w, lr, step_name=_step_name(problem))
    sp = _lyapunov(basis, lr * factor, lr)
    m = 1 - lr * w
    f = m * (n * (1 - m) - (1 - m.pow(n))) / torch.where(basis.range, (1 - m).pow(2), 1.0)
    return from_eigenbasis((n * sp + f[:, None] * sp + sp * f[None, :]) / n, basis, problem)


def noise_to_signal_ratio(problem: SGDProblem) -> float:
    r"""Stationary ``G / N`` on the quadratic: ``G = E|grad L|^2 = tr(A~ S A~)``, ``N = phi tr C``.

    ``S`` is the exact discrete law (momentum and preconditioner included); Li, Malladi, Arora
    (2021) use ``G/N`` to say when the SDE (and the linear scaling rule) is valid
    (docs/theory.md §3.4).
    """
    noise = float(torch.trace(problem.minibatch_noise_cov))
    if noise <= 0:
        raise ValueError("noise_cov has zero trace: the noise-to-signal ratio is undefined")
    a = problem.regularised_hessian
    s = stationary_covariance(problem).to(dtype=a.dtype, device=a.device)
    return float(torch.trace(a @ s @ a)) / noise


def expected_loss_ratio(problem: SGDProblem) -> float:
    r"""``E_SGD[L] / E_SDE[L] = tr(A~ S_discrete) / tr(A~ S_continuous)`` on the quadratic.

    Equals ``1 + G/N`` exactly for plain SGD (docs/theory.md §3.4); computed here from the two
    covariances, so the identity can be tested against :func:`noise_to_signal_ratio`.
    """
    a = problem.regularised_hessian
    sd = stationary_covariance(problem).to(dtype=a.dtype, device=a.device)
    sc = stationary_covariance(problem, discrete=False).to(dtype=a.dtype, device=a.device)
    return float(torch.trace(a @ sd) / torch.trace(a @ sc))
