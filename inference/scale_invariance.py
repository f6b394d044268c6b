r"""Scale-invariant losses with weight decay: the norm identity, its equilibrium, LSR's certificate.

Li, Malladi, Arora, "On the validity of modeling SGD with stochastic differential equations
(SDEs)", NeurIPS 2021, section 5. For a scale-invariant loss (``L(c x) = L(x)``, any network
followed by a normalisation layer; :mod:`.normalised_models`) every minibatch gradient is
orthogonal to ``x``, so SGD with weight decay, ``x_{k+1} = (1 - eta lambda) x_k - eta g_k``, obeys
path by path

.. math::

    |x_{k+1}|^2 = (1 - \eta\lambda)^2 |x_k|^2 + \eta^2 |g_k|^2,

and at equilibrium :math:`(2 - \eta\lambda)\lambda\,E|x|^2 = \eta\,(G + N)` with
:math:`G = E|\nabla L|^2`, :math:`N = E|g - \nabla L|^2` (docs/theory.md §14.1, §14.2). Scaling
``(eta, B) -> (kappa eta, kappa B)`` (the linear scaling rule) moves this equilibrium unless
``N / G`` is large: beyond ``kappa* = C^2 (1 + N / G)``, measured at one small batch, the
equilibrium norms of the two runs differ by more than a factor ``C`` and the rule must fail
(their Theorem 5.6; docs/theory.md §14.3).

Only plain SGD (no momentum) with coupled weight decay has this identity: AdamW's decoupled decay
``x <- (1 - eta lambda) x - eta m / (sqrt(v) + eps)`` moves ``x`` along a preconditioned direction
that is not orthogonal to ``x``, and momentum adds past gradients taken at other points. The
functions here take the optimiser (``bayesdepth.inference.SGD`` or ``torch.optim.SGD``) and refuse
the others, saying why, instead of applying the identity where it does not hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from bayesdepth._validation import check_positive, check_positive_int

from .noise import two_batch_estimate
from .runner import sample
from .samplers import SGD, Constant
from .statistics import as_draws, chain_mean

__all__ = [
    "LSRCertificate",
    "NormEquilibrium",
    "equilibrium_ratio",
    "lsr_certificate",
    "lsr_runs",
    "norm_equilibrium",
    "norm_identity_residual",
    "norm_ratio",
    "predicted_norm_ratio",
]


def _sgd_settings(optimizer: Any) -> tuple[float, float]:
    """``(lr, weight_decay)`` of plain SGD, or raise saying why the norm identity does not apply.

    Accepts :class:`bayesdepth.inference.SGD` (constant ``lr``, no momentum, no Nesterov) and
    ``torch.optim.SGD`` (one parameter group, no momentum).
    """
    name = type(optimizer).__name__
    if isinstance(optimizer, torch.optim.AdamW) or "adam" in name.lower():
        raise ValueError(
            f"the norm identity |x_(k+1)|^2 = (1 - lr wd)^2 |x_k|^2 + lr^2 |g_k|^2 does not apply "
            f"to {name}: its adaptive step m / (sqrt(v) + eps) is not orthogonal to x even when "
            f"the gradient is, with decoupled weight decay (AdamW, x <- (1 - lr wd) x - lr m / "
            f"(sqrt(v) + eps)) as with coupled L2 (docs/theory.md §14.4); the identity holds for "
            f"plain SGD with weight decay only"
        )
    if isinstance(optimizer, SGD):
        if not isinstance(optimizer.lr, Constant):
            raise ValueError(f"the norm identity needs a constant lr, got {optimizer.lr!r}")
        lr, momentum, wd = optimizer.lr.value, optimizer.momentum, optimizer.weight_decay
    elif isinstance(optimizer, torch.optim.SGD):
        if len(optimizer.param_groups) != 1:
            raise ValueError(
                f"torch.optim.SGD with {len(optimizer.param_groups)} parameter groups: give one "
                "group (one lr and weight decay)"
            )
        group = optimizer.param_groups[0]
        lr, momentum, wd = float(group["lr"]), group["momentum"], group["weight_decay"]
    else:
        raise ValueError(
            f"the norm identity is stated for plain SGD with weight decay "
            f"(bayesdepth.inference.SGD or torch.optim.SGD); got {name}"
        )
    if momentum:
        raise ValueError(
            f"the norm identity holds for SGD without momentum; got momentum={momentum!r} (the "
            "momentum buffer holds gradients taken at earlier points, which are not orthogonal "
            "to the current x)"
        )
    return float(lr), float(wd)


def _norm_sq(run: Any) -> torch.Tensor:
    """``|x|^2`` per chain and draw, (chains, draws), from a run's draws."""
    return as_draws(run).pow(2).sum(-1)


def norm_identity_residual(optimizer: Any, run: Any) -> torch.Tensor:
    r"""Relative residual of ``|x_{k+1}|^2 = (1 - eta lambda)^2 |x_k|^2 + eta^2 |g_k|^2``, per step.

    Args:
        optimizer: the SGD that produced the run (see :func:`_sgd_settings`).
        run: a :class:`~bayesdepth.inference.Chains` with every step kept (``thin=1``), whose
            ``stats["grad_norm"]`` is ``|g_k|``, the norm of the minibatch gradient of step k.

    Returns:
        (chains, draws - 1): ``|lhs - rhs| / |x_{k+1}|^2`` for every consecutive pair of draws;
        at rounding level (about 1e-15) for a scale-invariant loss (docs/theory.md §14.1).
    """
    lr, wd = _sgd_settings(optimizer)
    sq = _norm_sq(run)
    grad = torch.as_tensor(run.stats["grad_norm"], dtype=torch.float64)
    rhs = (1 - lr * wd) ** 2 * sq[:, :-1] + lr**2 * grad[:, 1:] ** 2
    return (sq[:, 1:] - rhs).abs() / sq[:, 1:]


class NormEquilibrium(NamedTuple):
    """Both sides of ``(2 - eta lambda) lambda E|x|^2 = eta (G + N)``, with standard errors."""

    lhs: float  #: ``(2 - eta lambda) lambda E|x|^2``
    lhs_se: float
    rhs: float  #: ``eta (G + N)`` from the two-batch estimates
    rhs_se: float
    z: float  #: ``(lhs - rhs) / se(lhs - rhs)`` over chains


def _sides(optimizer: Any, run: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Per chain and draw: ``(2 - eta lambda) lambda |x|^2`` and ``eta (g_1 . g_2 + N_12)``."""
    lr, wd = _sgd_settings(optimizer)
    if wd <= 0:
        raise ValueError(
            "without weight decay the norm grows for ever (|x_(k+1)|^2 = |x_k|^2 + lr^2 |g_k|^2): "
            f"there is no equilibrium; got weight_decay={wd!r}"
        )
    two_batch_estimate(run)  # validates the statistics
    grad_sq = torch.as_tensor(run.stats["grad_sq"], dtype=torch.float64)
    grad_noise = torch.as_tensor(run.stats["grad_noise"], dtype=torch.float64)
    return (2 - lr * wd) * wd * _norm_sq(run), lr * (grad_sq + grad_noise)


def norm_equilibrium(optimizer: Any, run: Any) -> NormEquilibrium:
    r"""``(2 - eta lambda) lambda E|x|^2`` and ``eta (G + N)`` of a run at equilibrium.

    Taking the expectation of the norm identity at stationarity gives
    ``(2 - eta lambda) lambda E|x|^2 = eta E|g|^2 = eta (G + N)`` (docs/theory.md §14.2).
    ``G + N`` is estimated by ``grad_sq + grad_noise = (|g_1|^2 + |g_2|^2) / 2`` of two independent
    batches (unbiased), standard errors between chains. Pass the draws after burn-in.

    Args:
        optimizer: the SGD of the run (see :func:`_sgd_settings`); weight decay > 0.
        run: a :class:`~bayesdepth.inference.Chains` of ``SGD(noise_stats=True)``.
    """
    lhs, rhs = _sides(optimizer, run)
    a, a_se = chain_mean(lhs)
    b, b_se = chain_mean(rhs)
    _, d_se = chain_mean(lhs - rhs)
    return NormEquilibrium(a, a_se, b, b_se, (a - b) / d_se)


def equilibrium_ratio(optimizer: Any, run: Any, window: int = 1) -> torch.Tensor:
    r"""``R_k = (2 - eta lambda) lambda E|x_k|^2 / (eta E(G_k + N_k))`` along a run.

    Both expectations are averages over the chains and over ``window`` consecutive draws (a ratio
    of two noisy averages is biased by about their squared coefficient of variation, so average
    before dividing). ``R_k`` tends to 1 as the run reaches the norm equilibrium
    (docs/theory.md §14.2): below 1 while the norm still grows towards it, above 1 while it shrinks.

    Returns:
        (draws - window + 1,): ``R`` over the windows ending at each draw.
    """
    window = check_positive_int("window", window)
    lhs, rhs = _sides(optimizer, run)
    if window > lhs.shape[1]:
        raise ValueError(f"window = {window} exceeds the {lhs.shape[1]} draws of the run")

    def moving(v: torch.Tensor) -> torch.Tensor:
        return v.mean(0).unfold(0, window, 1).mean(-1)

    return moving(lhs) / moving(rhs)


def norm_ratio(run: Any, reference: Any) -> tuple[float, float]:
    r"""``E|x|^2`` of ``reference`` over that of ``run``, with its standard error.

    The "ratio of equilibrium norms" of the linear scaling rule: ``reference`` is the small-batch
    run, ``run`` the one at ``(kappa eta, kappa B)``; independent runs, so the relative standard
    errors add in quadrature.
    """
    a, a_se = chain_mean(_norm_sq(reference))
    b, b_se = chain_mean(_norm_sq(run))
    r = a / b
    return r, r * math.hypot(a_se / a, b_se / b)


def predicted_norm_ratio(
    noise_over_signal: float, kappa: float, lr: float, weight_decay: float
) -> float:
    r"""``E|x|^2`` at ``(eta, B)`` over ``E|x|^2`` at ``(kappa eta, kappa B)``, to first order.

    If the norm concentrates and the statistics of the direction do not change with ``kappa``,
    ``(2 - eta lambda) lambda |x|^4 = eta (G~ + N~)`` with ``G~, N~`` those of the unit sphere, and
    ``N~ -> N~ / kappa`` at batch ``kappa B``, so the ratio is
    ``sqrt((1 + r)(2 - kappa eta lambda) / ((kappa + r)(2 - eta lambda)))``, ``r = N / G``
    (docs/theory.md §14.3). It falls below 1 once ``kappa`` is comparable to ``r``.
    """
    r = check_positive("noise_over_signal", noise_over_signal, allow_zero=True)
    kappa = check_positive("kappa", kappa)
    step = check_positive("lr", lr) * check_positive("weight_decay", weight_decay)
    if kappa * step >= 2:
        raise ValueError(
            f"kappa * lr * weight_decay = {kappa * step:.6g} >= 2: the scaled run has no norm "
            "equilibrium (the decay factor 1 - kappa lr wd leaves [-1, 1])"
        )
    return math.sqrt((1 + r) * (2 - kappa * step) / ((kappa + r) * (2 - step)))


class LSRCertificate(NamedTuple):
    """The batch multiplier beyond which the linear scaling rule must fail."""

    noise_over_signal: float  #: ``N / G`` at the measured (small) batch
    noise_over_signal_se: float
    kappa_max: float  #: ``kappa* = C^2 (1 + N / G)``
    kappa_max_se: float
    tolerance: float  #: ``C``


def lsr_certificate(run: Any, tolerance: float = math.sqrt(2)) -> LSRCertificate:
    r"""``kappa* = C^2 (1 + N / G)`` from ``G`` and ``N`` measured along one small-batch run.

    Li, Malladi, Arora (2021), Theorem 5.6: if the runs at ``(eta, B)`` and
    ``(kappa eta, kappa B)`` of a scale-invariant loss with weight decay are ``C``-close (their
    equilibrium values of ``|x|^2`` within a factor ``C``), then ``kappa <= C^2 (1 + N / G)``;
    beyond ``kappa*`` the linear scaling rule must fail (docs/theory.md §14.3). ``G`` and ``N`` are
    the two-batch estimates at equilibrium (:func:`.noise.two_batch_estimate`).

    Args:
        run: a :class:`~bayesdepth.inference.Chains` of ``SGD(noise_stats=True)`` after burn-in.
        tolerance: ``C > 1``.
    """
    c = check_positive("tolerance", tolerance)
    if c <= 1:
        raise ValueError(f"tolerance C must be > 1 (a factor between two norms), got {tolerance!r}")
    est = two_batch_estimate(run)
    r, r_se = est.noise_over_signal, est.noise_over_signal_se
    return LSRCertificate(r, r_se, c * c * (1 + r), c * c * r_se, c)


def lsr_runs(
    make_potential: Callable[[int], Any],
    *,
    lr: float,
    weight_decay: float,
    batch_size: int,
    kappas: Sequence[int],
    num_chains: int,
    num_draws: int,
    warmup: int,
    seed: int = 0,
) -> dict[int, Any]:
    r"""SGD runs under the linear scaling rule ``(eta, B) -> (kappa eta, kappa B)``, one per kappa.

    Run ``kappa`` uses ``SGD(kappa lr, weight_decay=weight_decay, noise_stats=True)`` on
    ``make_potential(kappa batch_size)`` with ``warmup // kappa`` burn-in steps and
    ``num_draws // kappa`` draws: the same stretch of SDE time ``t = k eta`` for every kappa
    (docs/theory.md §3.1). Returns ``{kappa: Chains}``; compare them with :func:`norm_ratio`.
    """
    runs = {}
    for i, kappa in enumerate(kappas):
        kappa = check_positive_int("kappa", kappa)
        sampler = SGD(kappa * lr, weight_decay=weight_decay, noise_stats=True)
        runs[kappa] = sample(
            make_potential(kappa * batch_size), sampler, num_chains=num_chains,
            num_draws=max(num_draws // kappa, 1), warmup=warmup // kappa, seed=seed + i,
        )
    return runs
