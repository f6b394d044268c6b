r"""Escape times: exact 1-D mean first-passage time, Kramers' rate, Levy exit-time law.

docs/theory.md §6. For ``d theta = -L'(theta) dt + sqrt(2 D(theta)) dW`` with a reflecting (or
infinitely far) lower boundary, the mean time to reach ``c`` from ``x0 < c`` is

.. math:: \tau(x_0 \to c) = \int_{x_0}^{c} e^{\Phi(y)} \int_{lo}^{y}
          \frac{e^{-\Phi(z)}}{D(z)}\,dz\,dy, \qquad \Phi' = L'/D.

Gaussian noise escapes exponentially slowly in the barrier height (Kramers; Xie, Sato, Sugiyama
2021 for SGD's Hessian-shaped noise), alpha-stable noise polynomially in the noise scale and set
by the basin's *width* (Imkeller & Pavlyukevich 2006; Simsekli et al. 2019; Zhou et al. 2020).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from scipy import integrate

from bayesdepth._validation import check_positive

__all__ = [
    "ExitTimeEstimate",
    "censored_mean_exit_time",
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


def levy_exit_time(alpha: float, scale: float, right: float, left: float) -> float:
    r"""Mean exit time of ``dX = -U' dt + eps dL^alpha`` from ``(-left, right)`` as eps -> 0.

    ``E tau ≈ alpha / (eps^alpha c_alpha (right^-alpha + left^-alpha))`` with
    ``c_alpha = Gamma(1 + alpha) sin(pi alpha / 2) / pi`` (Imkeller & Pavlyukevich 2006;
    docs/theory.md §6.6), for ``L`` with characteristic function ``exp(-|t|^alpha)``
    (:func:`.heavy_tails.sample_symmetric_stable`). Polynomial in ``1/eps`` and set by the
    basin's width, not its depth.
    """
    alpha = check_positive("alpha", alpha)
    if not 0 < alpha < 2:
        raise ValueError(f"alpha must lie in (0, 2) for a pure-jump law, got {alpha!r}")
    eps = check_positive("scale", scale)
    a = check_positive("right", right)
    b = check_positive("left", left)
    c_alpha = math.gamma(1 + alpha) * math.sin(math.pi * alpha / 2) / math.pi
    return alpha / (eps**alpha * c_alpha * (a**-alpha + b**-alpha))


class ExitTimeEstimate(NamedTuple):
    """What :func:`censored_mean_exit_time` returns."""

    mean: float  #: maximum-likelihood mean exit time
    standard_error: float  #: ``mean / sqrt(exits)``


def censored_mean_exit_time(exit_time: torch.Tensor, horizon: float) -> ExitTimeEstimate:
    r"""Mean exit time and its standard error when some chains had not exited by ``horizon``.

    Exponential maximum likelihood with right censoring (docs/theory.md §6.7):
    ``(sum of observed times + horizon * censored) / exits``, standard error
    ``mean / sqrt(exits)``. ``exit_time`` holds ``inf`` for the chains that never exited (as
    :func:`.heavy_tails.simulate_levy_sde` reports them).
    """
    horizon = check_positive("horizon", horizon)
    t = exit_time.reshape(-1)
    done = torch.isfinite(t)
    exits = int(done.sum())
    if exits == 0:
        raise ValueError(f"no chain exited before horizon {horizon}")
    total = float(t[done].sum()) + horizon * int((~done).sum())
    mean = total / exits
    return ExitTimeEstimate(mean, mean / math.sqrt(exits))
