r"""Heavy-tailed (symmetric alpha-stable) noise: sampling, the tail index, Levy-driven SDEs.

docs/theory.md §6: Simsekli, Sagun, Gurbuzbalaban (ICML 2019) model SGD's gradient noise as
alpha-stable; :func:`sample_symmetric_stable` draws it (Chambers–Mallows–Stuck), :func:`tail_index`
estimates alpha (Mohammadi et al. 2015), :func:`simulate_levy_sde` runs
``dX = drift dt + scale dL^alpha`` with exit times (for :mod:`.escape`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from bayesdepth._validation import check_positive, check_positive_int, check_tensor

__all__ = ["LevyPath", "sample_symmetric_stable", "simulate_levy_sde", "tail_index"]


def tail_index(
    samples: torch.Tensor, block_size: int | None = None, *, per_coordinate: bool = False
) -> torch.Tensor:
    r"""Tail index ``alpha`` of symmetric alpha-stable samples (docs/theory.md §6.5).

    The last dimension holds K = K1 K2 samples (extra leading ones are truncated); blocks of size
    K1 are summed, ``Y_i = sum_{j in block i} X_j``, and

    .. math:: \frac{1}{\hat\alpha} = \frac{1}{\ln K_1}\Big[\frac{1}{K_2}\sum_i \ln|Y_i|
              - \frac{1}{K}\sum_j \ln|X_j|\Big],

    the estimator of Mohammadi, Mohammadpour, Ogata (2015) as used by Simsekli, Sagun,
    Gurbuzbalaban (ICML 2019) on gradient noise. ``block_size``
    defaults to ``floor(sqrt(K))``. Returns the estimate for every leading index.

    The estimator assumes one law for the whole last dimension. Pooling the *coordinates* of a
    noise vector (as Simsekli et al. do) mixes scales: Gaussian coordinates whose variances are
    log-normal, ``ln sigma_j^2 ~ N(0, s^2)``, give ``1 / (1/2 + s^2 / (4 ln K1))`` (1.80 at
    ``K1 = 100``, ``s = 1``) instead of 2 (Li, Malladi, Arora 2021, app. B.3; docs/theory.md
    §13.5). With ``per_coordinate=True`` ``samples`` is (..., draws, coordinates): each
    coordinate is first divided by its geometric-mean scale ``exp(mean_draws ln|X|)`` (a robust
    scale that exists for every alpha), then the coordinates of each draw are pooled; the
    result has shape (..., draws). Use it whenever the pooled values may have different scales.
    """
    check_tensor("samples", samples, floating=True)
    if not isinstance(per_coordinate, bool):
        raise TypeError(f"per_coordinate must be True or False, got {per_coordinate!r}")
    if per_coordinate:
        if samples.dim() < 2 or samples.shape[-2] < 2:
            raise ValueError(
                f"per_coordinate=True needs samples of shape (..., draws >= 2, coordinates), got "
                f"{tuple(samples.shape)}"
            )
        samples = samples / samples.abs().log().mean(-2, keepdim=True).exp()
    k = samples.shape[-1]
    k1 = math.isqrt(k) if block_size is None else check_positive_int("block_size", block_size, 2)
    k2 = k // k1
    if k2 < 1 or k1 < 2:
        raise ValueError(f"need at least 2 samples per block and one block, got K = {k}")
    x = samples[..., : k1 * k2]
    y = x.reshape(*x.shape[:-1], k2, k1).sum(-1)
    inv = (y.abs().log().mean(-1) - x.abs().log().mean(-1)) / math.log(k1)
    return 1.0 / inv


def sample_symmetric_stable(
    alpha: float,
    shape: Sequence[int],
    *,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Symmetric alpha-stable draws by Chambers–Mallows–Stuck (1976).

    ``V ~ U(-pi/2, pi/2)``, ``W ~ Exp(1)``:
    ``X = sin(alpha V) / cos(V)^{1/alpha} * (cos((1 - alpha) V) / W)^{(1 - alpha)/alpha}``,
    with characteristic function ``E exp(i t X) = exp(-|scale t|^alpha)`` (alpha = 2: N(0, 2
    scale^2); alpha = 1: Cauchy).
    """
    alpha = check_positive("alpha", alpha)
    if alpha > 2:
        raise ValueError(f"alpha must lie in (0, 2], got {alpha!r}")
    scale = check_positive("scale", scale)
    shape = tuple(shape)
    u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
    v = math.pi * (u - 0.5)
    w = -torch.log1p(-torch.rand(shape, generator=generator, dtype=dtype, device=device))
    x = torch.sin(alpha * v) / torch.cos(v).pow(1 / alpha)
    x = x * (torch.cos((1 - alpha) * v) / w).pow((1 - alpha) / alpha)
    return scale * x


class LevyPath(NamedTuple):
    """Result of :func:`simulate_levy_sde`: final states and exit times (inf: never exited)."""

    x: torch.Tensor
    exit_time: torch.Tensor | None


def simulate_levy_sde(
    drift: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    alpha: float,
    scale: float | torch.Tensor,
    dt: float,
    num_steps: int,
    *,
    generator: torch.Generator | None = None,
    interval: tuple[float, float] | None = None,
    inside: Callable[[torch.Tensor], torch.Tensor] | None = None,
    preconditioner: torch.Tensor | None = None,
) -> LevyPath:
    r"""Euler scheme for ``dX = Q^{-1} (drift(X) dt + scale dL^alpha)`` (L symmetric alpha-stable).

    ``X_{k+1} = X_k + Q^{-1}(drift(X_k) dt + scale dt^{1/alpha} S_k)`` with ``S_k`` from
    :func:`sample_symmetric_stable`, independent for every entry of ``x0``; ``Q = I`` unless a
    frozen diagonal ``preconditioner`` (broadcast against ``x0``, e.g. (d,) for states (K, d)) is
    given (Zhou et al. 2020; docs/theory.md §13.4). ``alpha = 2`` is Brownian motion,
    ``scale dL^2 = scale sqrt(2) dW`` (the overdamped Langevin SDE at temperature ``scale^2``;
    Gaussian increments drawn directly). ``scale`` may be a tensor broadcast against ``x0``.

    Exit times (Imkeller & Pavlyukevich; Simsekli et al. 2019; docs/theory.md §6.6): with
    ``interval = (lo, hi)`` every entry of ``x0`` is a chain that stops at its first step
    outside (lo, hi); with ``inside`` (a function of the state returning a bool tensor of
    shape ``x.shape[:m]``, e.g. ``lambda x: (x.abs() < 1).all(-1)`` for (K, d) states) the
    leading ``m`` dimensions index chains and a chain stops at its first step where ``inside``
    is False. The exit time ``(k + 1) dt`` is recorded; chains still inside after
    ``num_steps`` keep ``inf`` (use :func:`.escape.censored_mean_exit_time`). Noise is drawn in
    chunks of 256 steps, so the same generator gives the same path for any ``num_steps``.
    """
    check_tensor("x0", x0, floating=True)
    dt = check_positive("dt", dt)
    num_steps = check_positive_int("num_steps", num_steps)
    alpha = check_positive("alpha", alpha)
    if alpha > 2:
        raise ValueError(f"alpha must lie in (0, 2], got {alpha!r}")
    if interval is not None and inside is not None:
        raise ValueError("give interval or inside, not both")
    x = x0.clone()
    jump = torch.as_tensor(scale, dtype=x.dtype, device=x.device) * dt ** (1 / alpha)
    if bool((jump <= 0).any()):
        raise ValueError(f"scale must be > 0, got {scale!r}")
    inverse = None
    if preconditioner is not None:
        q = torch.as_tensor(preconditioner, dtype=x.dtype, device=x.device)
        if not bool((q > 0).all()):
            raise ValueError(f"preconditioner must be positive, got {preconditioner!r}")
        inverse = 1 / q
    if interval is not None:
        lo, hi = interval
        if not lo < hi:
            raise ValueError(f"interval must satisfy lo < hi, got {interval}")

        def inside(y: torch.Tensor) -> torch.Tensor:
            return (y > lo) & (y < hi)

    alive = exit_time = None
    if inside is not None:
        alive = torch.ones_like(inside(x), dtype=torch.bool)
        exit_time = torch.full(alive.shape, math.inf, dtype=x.dtype, device=x.device)
        event = (1,) * (x.dim() - alive.dim())
    chunk = 256
    k = 0
    while k < num_steps:
        n = min(chunk, num_steps - k)
        shape = (n, *x.shape)
        if alpha == 2:  # N(0, 2): the stable law at alpha = 2
            noise = math.sqrt(2) * torch.randn(shape, generator=generator, dtype=x.dtype,
                                               device=x.device)
        else:
            noise = sample_symmetric_stable(alpha, shape, generator=generator, dtype=x.dtype,
                                            device=x.device)
        noise = jump * noise
        for i in range(n):
            step = drift(x) * dt + noise[i]
            if inverse is not None:
                step = step * inverse
            if alive is None:
                x = x + step
                continue
            x = torch.where(alive.reshape(alive.shape + event), x + step, x)
            out = alive & ~inside(x)
            exit_time = torch.where(out, torch.full_like(exit_time, (k + i + 1) * dt), exit_time)
            alive = alive & ~out
        k += n
        if alive is not None and not bool(alive.any()):
            break
    return LevyPath(x=x, exit_time=exit_time)
