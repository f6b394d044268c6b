r"""Escape times: exact 1-D mean first-passage time, Kramers' rate, Levy exit-time law.

docs/theory.md §6. For ``d theta = -L'(theta) dt + sqrt(2 D(theta)) dW`` with a reflecting (or
infinitely far) lower boundary, the mean time to reach ``c`` from ``x0 < c`` is

.. math:: \tau(x_0 \to c) = \int_{x_0}^{c} e^{\Phi(y)} \int_{lo}^{y}
          \frac{e^{-\Phi(z)}}{D(z)}\,dz\,dy, \qquad \Phi' = L'/D.

Gaussian noise escapes exponentially slowly in the barrier height (Kramers; Xie, Sato, Sugiyama
2021 for SGD's Hessian-shaped noise; in d dimensions the Eyring–Kramers law, docs/theory.md
§13.3), alpha-stable noise polynomially in the noise scale and set by the basin's *width*
(Imkeller & Pavlyukevich 2006; Simsekli et al. 2019), and with a frozen diagonal preconditioner
``Q`` (Adam's ``sqrt(v)``) as ``q^alpha`` (Zhou et al. 2020; docs/theory.md §13.4).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy import integrate

from bayesdepth._validation import check_positive

from ._linalg import check_symmetric

__all__ = [
    "ExitTimeEstimate",
    "censored_mean_exit_time",
    "eyring_kramers_rate",
    "kramers_escape_time",
    "levy_exit_time",
    "mean_first_passage_time",
]


def mean_first_passage_time(
    loss: Callable[[float], float],
    x0: float,
    barrier: float,
    diffusion: float | Callable[[float], float] = 1.0,
    *,
    grad_loss: Callable[[float], float] | None = None,
    lower: float = -math.inf,
) -> float:
    r"""Exact mean first-passage time from ``x0`` to ``barrier`` (> x0) by nested quadrature.

    Args:
        loss: ``L`` (a scalar function of a float); the drift is ``-L'``.
        x0: start, ``lower <= x0 < barrier``.
        barrier: absorbing point ``c``.
        diffusion: ``D`` (a constant > 0, then ``Phi = L / D``) or a function ``D(theta) > 0``
            (then ``grad_loss`` is required and ``Phi = int L'/D`` by quadrature).
        grad_loss: ``L'`` (only needed for a state-dependent ``D``).
        lower: reflecting lower boundary (``-inf``: none; ``L`` must then confine).

    Returns:
        ``tau`` in the SDE's time units (``scipy.integrate.quad``, relative tolerance 1e-10).
    """
    x0, barrier, lower = float(x0), float(barrier), float(lower)
    if not (lower <= x0 < barrier and lower < barrier):
        raise ValueError(f"need lower <= x0 < barrier, got {lower}, {x0}, {barrier}")
    if callable(diffusion):
        if grad_loss is None:
            raise ValueError("a state-dependent diffusion needs grad_loss (Phi' = L'/D)")

        def phi(y: float) -> float:
            return integrate.quad(lambda s: grad_loss(s) / diffusion(s), x0, y, limit=200)[0]

        dfun = diffusion
    else:
        dconst = check_positive("diffusion", diffusion)
        l0 = loss(x0)

        def phi(y: float) -> float:
            return (loss(y) - l0) / dconst

        def dfun(_: float) -> float:
            return dconst

    def inner(y: float) -> float:
        return integrate.quad(
            lambda z: np.exp(phi(y) - phi(z)) / dfun(z), lower, y, limit=200, epsrel=1e-10
        )[0]

    return float(integrate.quad(inner, x0, barrier, limit=200, epsrel=1e-10)[0])


def kramers_escape_time(
    hess_min: float, hess_saddle: float, barrier_height: float, temperature: float
) -> float:
    r"""Kramers' mean escape time ``(2 pi / sqrt(h_a |h_b|)) exp(Delta L / T)`` (overdamped).

    For ``d theta = -L' dt + sqrt(2 T) dW``; ``h_a > 0`` the curvature at the minimum, ``h_b`` at
    the saddle (its sign is ignored), ``Delta L`` the barrier height. Asymptotic as ``T -> 0``.
    """
    ha = check_positive("hess_min", hess_min)
    hb = abs(float(hess_saddle))
    if hb == 0:
        raise ValueError("hess_saddle must be non-zero")
    dl = check_positive("barrier_height", barrier_height)
    t = check_positive("temperature", temperature)
    return 2 * math.pi / math.sqrt(ha * hb) * math.exp(dl / t)


def eyring_kramers_rate(
    hess_min: Any, hess_saddle: Any, barrier_height: float, temperature: float
) -> float:
    r"""Eyring–Kramers rate out of a minimum through an index-1 saddle, in d dimensions.

    ``rate = |lambda_s| / (2 pi) sqrt(det H_min / |det H_saddle|) exp(-Delta L / T)`` for
    ``d theta = -grad L dt + sqrt(2 T) dW``, ``lambda_s`` the saddle's negative eigenvalue
    (Eyring 1935; Kramers 1940; Bovier, Gayrard, Klein 2004 prove it with relative error
    ``O(sqrt(T) |log T|)``; docs/theory.md §13.3). Asymptotic as ``T -> 0``; the mean exit time
    through that saddle is ``1 / rate``; with several saddles the rates add. In one dimension it
    is ``1 /`` :func:`kramers_escape_time`.

    Args:
        hess_min: ``H_min`` (d, d) symmetric positive definite, or a positive number (d = 1).
        hess_saddle: ``H_saddle`` (d, d) symmetric with exactly one negative eigenvalue, or a
            number (its sign is ignored for d = 1).
        barrier_height: ``Delta L = L(saddle) - L(min)`` > 0.
        temperature: ``T`` > 0.
    """
    def matrix(name: str, value: Any) -> torch.Tensor:
        if isinstance(value, torch.Tensor) and value.dim() == 2:
            return check_symmetric(name, value, psd=False)
        return torch.tensor([[float(value)]], dtype=torch.float64)

    a = matrix("hess_min", hess_min)
    b = matrix("hess_saddle", hess_saddle)
    if b.shape != a.shape:
        raise ValueError(f"hess_saddle must have shape {tuple(a.shape)} like hess_min, got "
                         f"{tuple(b.shape)}")
    wa, wb = torch.linalg.eigvalsh(a), torch.linalg.eigvalsh(b)
    if a.shape[0] == 1:
        wb = -wb.abs()
    if float(wa[0]) <= 0:
        raise ValueError(f"hess_min must be positive definite, smallest eigenvalue "
                         f"{float(wa[0]):.6g}")
    negative = int((wb < 0).sum())
    if negative != 1 or bool((wb == 0).any()):
        raise ValueError(
            f"hess_saddle must have exactly one negative eigenvalue and no zero one (an index-1 "
            f"saddle), got eigenvalues {[round(float(v), 6) for v in wb]}"
        )
    dl = check_positive("barrier_height", barrier_height)
    t = check_positive("temperature", temperature)
    log_det_ratio = float(wa.log().sum() - wb.abs().log().sum())
    return abs(float(wb[0])) / (2 * math.pi) * math.exp(0.5 * log_det_ratio - dl / t)


def _per_coordinate(**values: Any) -> list[list[float]]:
    """Numbers or sequences, one entry per coordinate, checked > 0 and broadcast to one length."""
    lists = {name: list(v) if isinstance(v, Sequence | torch.Tensor) else [v]
             for name, v in values.items()}
    lengths = {name: len(v) for name, v in lists.items() if len(v) != 1}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"{', '.join(values)} need one entry per coordinate (or a single number), got "
            f"lengths {lengths}"
        )
    dim = max(lengths.values(), default=1)
    return [[check_positive(f"{name}[{i}]", x) for i, x in enumerate(v * (dim // len(v)))]
            for name, v in lists.items()]


def levy_exit_time(
    alpha: float,
    scale: float,
    right: float | Sequence[float],
    left: float | Sequence[float],
    preconditioner: float | Sequence[float] | None = None,
) -> float:
    r"""Mean exit time of ``dX = -Q^{-1} grad U dt + eps Q^{-1} dL^alpha`` from a box, eps -> 0.

    In one dimension (``Q = 1``) from ``(-left, right)``:
    ``E tau ≈ alpha / (eps^alpha c_alpha (right^-alpha + left^-alpha))`` with
    ``c_alpha = Gamma(1 + alpha) sin(pi alpha / 2) / pi`` (Imkeller & Pavlyukevich 2006;
    docs/theory.md §6.6), for ``L`` with characteristic function ``exp(-|t|^alpha)``
    (:func:`.heavy_tails.sample_symmetric_stable`). Polynomial in ``1/eps`` and set by the
    basin's width, not its depth. In d dimensions, with independent coordinates of ``L`` and a
    frozen diagonal preconditioner ``Q = diag(q)`` (Adam's ``sqrt(v)``; Zhou et al. 2020), from
    the box ``prod_i (-left_i, right_i)`` around the minimum:

    .. math:: E\tau \approx \frac{\alpha}{\epsilon^\alpha c_\alpha \sum_i q_i^{-\alpha}
              (r_i^{-\alpha} + l_i^{-\alpha})}

    (docs/theory.md §13.4): a preconditioner ``q`` multiplies the exit time by ``q^alpha``.
    ``right``, ``left`` and ``preconditioner`` are numbers or sequences of d entries.
    """
    alpha = check_positive("alpha", alpha)
    if not 0 < alpha < 2:
        raise ValueError(f"alpha must lie in (0, 2) for a pure-jump law, got {alpha!r}")
    eps = check_positive("scale", scale)
    a, b, q = _per_coordinate(right=right, left=left,
                              preconditioner=1.0 if preconditioner is None else preconditioner)
    c_alpha = math.gamma(1 + alpha) * math.sin(math.pi * alpha / 2) / math.pi
    jumps = sum(qi**-alpha * (ai**-alpha + bi**-alpha) for qi, ai, bi in zip(q, a, b))
    return alpha / (eps**alpha * c_alpha * jumps)


class ExitTimeEstimate(NamedTuple):
    """What :func:`censored_mean_exit_time` returns."""

    mean: float  #: maximum-likelihood mean exit time
    standard_error: float  #: ``mean / sqrt(exits)``


def censored_mean_exit_time(
    exit_time: torch.Tensor, horizon: float, *, tail_from: float = 0.0
) -> ExitTimeEstimate:
    r"""Mean exit time and its standard error when some chains had not exited by ``horizon``.

    Exponential maximum likelihood with right censoring (docs/theory.md §6.7):
    ``(sum of observed times + horizon * censored) / exits``, standard error
    ``mean / sqrt(exits)``. ``exit_time`` holds ``inf`` for the chains that never exited (as
    :func:`.heavy_tails.simulate_levy_sde` reports them).

    Chains started at a minimum need a while to spread over their basin before the exit rate
    settles (a lag that biases a horizon much shorter than the mean). With ``tail_from = t_1``
    only the tail after ``t_1`` is taken as exponential: the mean is
    ``int_0^{t_1} S(t) dt + S(t_1) / lambda``, with the empirical survival ``S`` and the
    censored exponential rate ``lambda`` of the exits after ``t_1`` (docs/theory.md §13.3);
    ``tail_from = 0`` is the estimate above.
    """
    horizon = check_positive("horizon", horizon)
    t1 = check_positive("tail_from", tail_from, allow_zero=True)
    if t1 >= horizon:
        raise ValueError(f"tail_from = {tail_from} must be below the horizon {horizon}")
    raw = exit_time.reshape(-1).to(torch.float64)
    t = raw.clamp(max=horizon)
    late = t > t1
    exits = int((late & (raw <= horizon)).sum())
    if exits == 0:
        after = f" after tail_from = {t1}" if t1 else ""
        raise ValueError(f"no chain exited{after} before horizon {horizon}")
    survive = float(late.double().mean())
    tail = survive * float((t[late] - t1).sum()) / exits
    mean = float(t.clamp(max=t1).mean()) + tail
    return ExitTimeEstimate(mean, tail / math.sqrt(exits))
