r"""Closed-form stationary laws of constant-rate SGD (Langevin / Ornstein-Uhlenbeck models).

Notation of THEORY section 0: ``A`` is the Hessian of the *mean* loss at the optimum, ``C`` the
per-example gradient covariance (population normalisation), ``eta`` the learning rate, ``B`` the
batch size, ``lambda`` the weight decay (``A~ = A + lambda I``), ``H`` a preconditioner. A batch
drawn iid with replacement has gradient covariance ``C / B``; drawn without replacement from
``num_data = N`` points inside one step, ``C / B * (N - B) / (N - 1)``.

All equations are solved in the eigenbasis of ``A~`` (one ``eigh``, O(d^3) time, O(d^2) memory)
in float64 on the inputs' device; results come back in the Hessian's dtype.

* Continuous (Mandt, Hoffman, Blei 2017): ``H A S + S A H = (eta/B) H C H``.
* Exact discrete (SGD on a quadratic is a linear AR(1) process):
  ``S = M S M^T + eta^2 H C H / B``, ``M = I - eta H A``; for ``H = I`` equivalently
  ``A S + S A - eta A S A = (eta/B) C``.
* SVAG(l) (Li, Malladi, Arora 2021): ``A S + S A - (eta/l) A S A = (eta/B) C``.

With momentum the law lives in phase space: see :mod:`.momentum`.
"""

from __future__ import annotations

import torch

from bayesdepth._validation import check_positive, check_positive_int

from ._linalg import check_square, check_symmetric, eig_basis, sqrt_psd

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


def batch_noise_factor(batch_size: int, num_data: int | None) -> float:
    """``1 / B`` with replacement, ``(N - B) / ((N - 1) B)`` without replacement from N points."""
    batch_size = check_positive_int("batch_size", batch_size)
    if num_data is None:
        return 1.0 / batch_size
    num_data = check_positive_int("num_data", num_data, minimum=2)
    if batch_size > num_data:
        raise ValueError(
            f"batch_size = {batch_size} exceeds num_data = {num_data} (batches without replacement)"
        )
    return (num_data - batch_size) / ((num_data - 1) * batch_size)


def _problem(hessian, noise_cov, weight_decay=0.0, preconditioner=None):
    """Validate and transform to a symmetric problem ``(a, U, C', T)`` with ``S = T U S' U^T T``.

    A symmetric positive definite preconditioner ``H`` is absorbed by ``S = H^{1/2} S~ H^{1/2}``:
    ``A~ -> H^{1/2} A~ H^{1/2}``, ``C -> H^{1/2} C H^{1/2}`` (both Lyapunov forms are invariant).
    """
    dtype, device = hessian.dtype, hessian.device
    a = check_symmetric("hessian", hessian, psd=False)
    d = a.shape[0]
    c = check_symmetric("noise_cov", noise_cov, size=d, psd=True)
    lam = check_positive("weight_decay", weight_decay, allow_zero=True)
    a = a + lam * torch.eye(d, dtype=a.dtype, device=a.device)
    t = None
    if preconditioner is not None:
        h = preconditioner
        if isinstance(h, torch.Tensor) and h.dim() == 1:
            if h.shape[0] != d or not bool((h > 0).all()):
                raise ValueError(
                    f"a diagonal preconditioner must have {d} positive entries, got shape "
                    f"{tuple(h.shape)} with minimum {float(h.min()):.3g}"
                )
            h = torch.diag(h.to(torch.float64))
        h = check_symmetric("preconditioner", check_square("preconditioner", h, d), pd=True)
        t = sqrt_psd(h)
        a, c = t @ a @ t, t @ c @ t
        a, c = (a + a.T) / 2, (c + c.T) / 2
    w, u = eig_basis(a)
    cp = u.T @ c @ u
    return w, u, cp, t, (dtype, device)


def _back(sp, u, t, like):
    s = u @ sp @ u.T
    if t is not None:
        s = t @ s @ t
    s = (s + s.T) / 2
    return s.to(dtype=like[0], device=like[1])


def _check_stable(w: torch.Tensor, kappa: float, what: str, limit: str = "2") -> None:
    """Raise unless every eigenvalue ``a > 0`` and ``kappa * a < 2``."""
    lo, hi = float(w.min()), float(w.max())
    if lo <= 0:
        raise ValueError(
            f"no stationary law: the {what} must be positive definite, smallest eigenvalue "
            f"{lo:.6g} (weight decay adds to every eigenvalue)"
        )
    if kappa * hi >= 2:
        raise ValueError(
            f"no stationary law: {limit} * lambda_max = {kappa:.6g} * {hi:.6g} = {kappa * hi:.6g} "
            f">= 2 (SGD is stable only for lr * lambda_max(hessian) < 2)"
        )


def _lyapunov_solve(w, cp, scale, kappa):
    """``S'_ij = scale C'_ij / (a_i + a_j - kappa a_i a_j)``."""
    den = w[:, None] + w[None, :] - kappa * w[:, None] * w[None, :]
    return scale * cp / den


def stationary_covariance(
    hessian: torch.Tensor,
    noise_cov: torch.Tensor,
    lr: float,
    batch_size: int = 1,
    *,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    preconditioner: torch.Tensor | None = None,
    discrete: bool = True,
    num_data: int | None = None,
) -> torch.Tensor:
    r"""Stationary covariance of constant-rate SGD on a quadratic (THEORY sections 1-2).

    ``discrete=True`` (default) is exact for SGD on the quadratic test problem:
    :math:`S = M S M^T + \eta^2 H C H / B` with :math:`M = I - \eta H \tilde A`; with momentum it is
    the :math:`\theta\theta` block of the phase-space law of ``torch.optim.SGD`` (see
    :func:`bayesdepth.inference.momentum.phase_space_covariance`). ``discrete=False`` is the
    continuous model: :math:`H\tilde A S + S \tilde A H = (\eta/B) H C H` (Mandt, Hoffman, Blei,
    JMLR 2017), or with momentum Kunin et al.'s underdamped Langevin law (arXiv 2107.09133).

    Args:
        hessian: ``A`` (d, d), symmetric; ``A + weight_decay I`` must be positive definite.
        noise_cov: per-example gradient covariance ``C`` (d, d), symmetric PSD.
        lr: learning rate ``eta`` on the mean loss.
        batch_size: ``B``.
        momentum: ``beta`` in [0, 1) (torch.optim.SGD convention, dampening 0).
        weight_decay: ``lambda`` >= 0.
        preconditioner: ``H``, symmetric positive definite (d, d) or its diagonal (d,); only
            without momentum.
        discrete: exact discrete law (True) or the continuous SDE's law (False).
        num_data: if given, batches are drawn without replacement from this many points
            (noise factor ``(N - B) / (N - 1)``).

    Returns:
        ``S`` (d, d), in the Hessian's dtype and device.

    Raises:
        ValueError: non-symmetric or non-PSD inputs, or a learning rate without stationary law
            (``lr * lambda_max >= 2``; with momentum ``lr * lambda_max >= 2 (1 + beta)``).
    """
    lr = check_positive("lr", lr)
    factor = batch_noise_factor(batch_size, num_data)
    beta = check_positive("momentum", momentum, allow_zero=True)
    if beta >= 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
    if beta > 0:
        if preconditioner is not None:
            raise ValueError("preconditioner is supported only without momentum (momentum=0)")
        from .momentum import phase_space_covariance, underdamped_covariance

        fn = phase_space_covariance if discrete else underdamped_covariance
        p = fn(hessian, noise_cov, lr, batch_size, momentum=beta, weight_decay=weight_decay,
               num_data=num_data)
        d = hessian.shape[0]
        return p[:d, :d]
    w, u, cp, t, like = _problem(hessian, noise_cov, weight_decay, preconditioner)
    kappa = lr if discrete else 0.0
    what = "hessian (plus weight decay)" + (", preconditioned," if t is not None else "")
    _check_stable(w, kappa, what, limit="lr" if t is None else "lr (preconditioned)")
    return _back(_lyapunov_solve(w, cp, lr * factor, kappa), u, t, like)


def svag_covariance(
    hessian: torch.Tensor,
    noise_cov: torch.Tensor,
    lr: float,
    batch_size: int = 1,
    l: float = 1.0,
    *,
    num_data: int | None = None,
) -> torch.Tensor:
    r"""Exact stationary covariance of SVAG(l) on a quadratic (Li, Malladi, Arora, NeurIPS 2021).

    :math:`A S + S A - (\eta / l) A S A = (\eta / B) C`. ``l = 1`` is SGD; ``l -> inf`` the SDE
    (continuous Lyapunov law); the gap to the SDE is O(1/l) (THEORY section 3).
    """
    lr = check_positive("lr", lr)
    l = check_positive("l", l)
    if l < 1:
        raise ValueError(f"l must be >= 1, got {l!r}")
    factor = batch_noise_factor(batch_size, num_data)
    w, u, cp, t, like = _problem(hessian, noise_cov)
    _check_stable(w, lr / l, "hessian", limit="lr / l")
    return _back(_lyapunov_solve(w, cp, lr * factor, lr / l), u, t, like)


def mandt_optimal_lr(noise_cov: torch.Tensor, num_data: int, batch_size: int = 1) -> float:
    r"""KL-optimal constant learning rate ``eps* = 2 B D / (N tr C)`` (Mandt et al. 2017, Thm 1).

    Minimises ``KL(N(0, S(eps)) || N(0, (N A)^{-1}))`` over scalar rates for the continuous law;
    ``KL(f eps*) - KL(eps*) = (D/2)(f - 1 - ln f)``.
    """
    c = check_symmetric("noise_cov", noise_cov, psd=True)
    num_data = check_positive_int("num_data", num_data)
    batch_size = check_positive_int("batch_size", batch_size)
    tr = float(torch.trace(c))
    if tr <= 0:
        raise ValueError(f"noise_cov must have a positive trace, got {tr:.3g}")
    return 2.0 * batch_size * c.shape[0] / (num_data * tr)


def mandt_preconditioner(
    noise_cov: torch.Tensor,
    lr: float,
    num_data: int,
    batch_size: int = 1,
    diagonal: bool = False,
) -> torch.Tensor:
    r"""KL-optimal preconditioner ``H* = (2B / (eps N)) C^{-1}`` (Mandt et al. 2017, Thm 2).

    With ``H*`` the continuous stationary covariance equals the Laplace posterior ``(N A)^{-1}``.
    ``diagonal=True`` gives ``H_kk = 2B / (eps N C_kk)`` as a (d,) vector.
    """
    dtype = noise_cov.dtype
    c = check_symmetric("noise_cov", noise_cov, psd=not diagonal, pd=not diagonal)
    lr = check_positive("lr", lr)
    num_data = check_positive_int("num_data", num_data)
    batch_size = check_positive_int("batch_size", batch_size)
    k = 2.0 * batch_size / (lr * num_data)
    if diagonal:
        diag = torch.diagonal(c)
        if not bool((diag > 0).all()):
            lo = float(diag.min())
            raise ValueError(f"noise_cov needs a positive diagonal, minimum {lo:.3g}")
        return (k / diag).to(dtype)
    inv = torch.cholesky_inverse(torch.linalg.cholesky(c))
    return (k * (inv + inv.T) / 2).to(dtype)


def kl_to_laplace(cov: torch.Tensor, hessian: torch.Tensor, num_data: int) -> float:
    r"""``KL(N(m, S) || N(m, (N A)^{-1})) = (tr(N A S) - D - ln det(N A S)) / 2`` (nats)."""
    s = check_symmetric("cov", cov, pd=True)
    a = check_symmetric("hessian", hessian, size=s.shape[0], pd=True)
    num_data = check_positive_int("num_data", num_data)
    p = num_data * a
    d = s.shape[0]
    logdet = torch.linalg.slogdet(p)[1] + torch.linalg.slogdet(s)[1]
    return float(0.5 * (torch.trace(p @ s) - d - logdet))


def averaged_covariance(
    hessian: torch.Tensor,
    noise_cov: torch.Tensor,
    batch_size: int = 1,
    *,
    lr: float | None = None,
    num_steps: int | None = None,
    num_data: int | None = None,
) -> torch.Tensor:
    r"""``T Cov(theta_bar_T)`` of the average of T stationary SGD iterates (THEORY section 1).

    The limit ``T -> inf`` is ``A^{-1} C A^{-1} / B``, independent of the learning rate. With
    ``lr`` and ``num_steps`` the exact finite-T value on the quadratic is returned:
    ``(1/T) [T S + F S + S F]``, ``F = sum_{tau=1}^{T-1} (T - tau) M^tau``, ``M = I - lr A``.
    """
    factor = batch_noise_factor(batch_size, num_data)
    w, u, cp, _, like = _problem(hessian, noise_cov)
    if num_steps is None:
        _check_stable(w, 0.0, "hessian")
        return _back(factor * cp / (w[:, None] * w[None, :]), u, None, like)
    if lr is None:
        raise ValueError("averaged_covariance needs lr together with num_steps")
    lr = check_positive("lr", lr)
    n = check_positive_int("num_steps", num_steps)
    _check_stable(w, lr, "hessian", limit="lr")
    sp = _lyapunov_solve(w, cp, lr * factor, lr)
    m = 1 - lr * w
    f = m * (n * (1 - m) - (1 - m.pow(n))) / (1 - m).pow(2)
    return _back((n * sp + f[:, None] * sp + sp * f[None, :]) / n, u, None, like)


def noise_to_signal_ratio(
    hessian: torch.Tensor,
    noise_cov: torch.Tensor,
    lr: float,
    batch_size: int = 1,
    *,
    num_data: int | None = None,
) -> float:
    r"""Stationary ``G / N`` on the quadratic: ``G = E|grad L|^2 = tr(A^2 S)``, ``N = tr(C) / B``.

    ``S`` is the exact discrete law; Li, Malladi, Arora (2021) use ``G/N`` to say when the SDE
    (and the linear scaling rule) is valid (THEORY section 3).
    """
    s = stationary_covariance(hessian, noise_cov, lr, batch_size, num_data=num_data)
    a = hessian.to(torch.float64)
    s = s.to(torch.float64)
    noise = float(torch.trace(noise_cov.to(torch.float64))) * batch_noise_factor(
        batch_size, num_data
    )
    if noise <= 0:
        raise ValueError("noise_cov has zero trace: the noise-to-signal ratio is undefined")
    return float(torch.trace(a @ a @ s)) / noise


def expected_loss_ratio(
    hessian: torch.Tensor, noise_cov: torch.Tensor, lr: float, batch_size: int = 1
) -> float:
    r"""``E_SGD[L] / E_SDE[L] = tr(A S_discrete) / tr(A S_continuous)`` on the quadratic.

    Equals ``1 + G/N`` exactly (THEORY section 3); computed here from the two covariances so that
    the identity can be tested against :func:`noise_to_signal_ratio`.
    """
    a = hessian.to(torch.float64)
    sd = stationary_covariance(hessian, noise_cov, lr, batch_size).to(torch.float64)
    sc = stationary_covariance(hessian, noise_cov, lr, batch_size, discrete=False)
    return float(torch.trace(a @ sd) / torch.trace(a @ sc.to(torch.float64)))
