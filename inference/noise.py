r"""Gradient-noise statistics: per-example gradients, noise covariance, G/N, heavy tails.

Conventions of THEORY section 0: the per-example gradient covariance uses the *population*
normalisation ``C = (1/N) sum_n (g_n - g)(g_n - g)^T``; a minibatch of B drawn iid with replacement
has covariance ``C / B``, drawn without replacement inside one step ``C / B * (N - B) / (N - 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from bayesdepth._validation import check_positive, check_positive_int, check_tensor

__all__ = [
    "LevyPath",
    "censored_mean_exit_time",
    "gradient_noise_covariance",
    "noise_to_signal",
    "noise_to_signal_along",
    "per_example_grads",
    "sample_symmetric_stable",
    "simulate_levy_sde",
    "tail_index",
]


def per_example_grads(
    loss_fn: Callable[..., torch.Tensor], params: torch.Tensor, *data: torch.Tensor
) -> torch.Tensor:
    r"""Gradients of every example's loss, ``g_n = grad_theta l(theta; x_n)``, by ``vmap(grad)``.

    Args:
        loss_fn: ``loss_fn(params, *example) -> scalar`` for *one* example (each data tensor
            with its leading example dimension removed).
        params: (d,) parameters, or (K, d) for K chains (then the result is (K, N, d)).
        *data: tensors with a leading example dimension N.

    Returns:
        (N, d) or (K, N, d) per-example gradients (``torch.func.vmap(torch.func.grad(...))``).
    """
    check_tensor("params", params, ndim=(1, 2), floating=True)
    if not data:
        raise ValueError("per_example_grads needs at least one data tensor")
    n = data[0].shape[0]
    for i, x in enumerate(data):
        check_tensor(f"data[{i}]", x)
        if x.shape[0] != n:
            raise ValueError(f"data tensors disagree on N: {n} vs {x.shape[0]} (data[{i}])")
    g = torch.func.vmap(torch.func.grad(loss_fn), in_dims=(None, *([0] * len(data))))
    if params.dim() == 2:
        g = torch.func.vmap(g, in_dims=(0, *([None] * len(data))))
    return g(params, *data)


def _factor(n: int, batch_size: int, without_replacement: bool) -> float:
    b = check_positive_int("batch_size", batch_size)
    if not without_replacement:
        return 1.0 / b
    if b > n or n < 2:
        raise ValueError(f"batch_size = {b} must be <= N = {n} (and N >= 2) without replacement")
    return (n - b) / ((n - 1) * b)


def gradient_noise_covariance(
    grads: torch.Tensor, batch_size: int = 1, without_replacement: bool = False
) -> torch.Tensor:
    r"""Covariance of a minibatch gradient from per-example gradients ``grads`` (..., N, d).

    ``C = (1/N) sum_n (g_n - g)(g_n - g)^T`` (population normalisation), returned as ``C / B``,
    times ``(N - B) / (N - 1)`` when the batch is drawn without replacement. ``batch_size = 1``
    gives ``C`` itself.
    """
    check_tensor("grads", grads, ndim=(2, 3, 4), floating=True)
    n = grads.shape[-2]
    centred = grads - grads.mean(-2, keepdim=True)
    c = centred.transpose(-1, -2) @ centred / n
    return c * _factor(n, batch_size, without_replacement)


def noise_to_signal(
    grads: torch.Tensor, batch_size: int = 1, without_replacement: bool = False
) -> torch.Tensor:
    r"""``G / N = |grad L|^2 / tr Cov(g_B)`` from per-example gradients (..., N, d).

    Li, Malladi, Arora (2021): the SDE model of SGD (and the linear scaling rule) holds while
    ``G/N`` is small; scaling ``(eta, B) -> (kappa eta, kappa B)`` multiplies it by about kappa.
    """
    check_tensor("grads", grads, ndim=(2, 3, 4), floating=True)
    n = grads.shape[-2]
    mean = grads.mean(-2)
    tr = (grads - mean.unsqueeze(-2)).pow(2).sum((-1, -2)) / n
    return mean.pow(2).sum(-1) / (tr * _factor(n, batch_size, without_replacement))


def noise_to_signal_along(
    loss_fn: Callable[..., torch.Tensor],
    path: Sequence[torch.Tensor] | torch.Tensor,
    *data: torch.Tensor,
    batch_size: int = 1,
    without_replacement: bool = False,
) -> torch.Tensor:
    """``G/N`` at every parameter vector of a run (``path`` of shape (T, d) or (T, K, d)).

    Returns (T,) or (T, K). Uses :func:`per_example_grads` (exact per-example gradients).
    """
    out = [
        noise_to_signal(per_example_grads(loss_fn, p, *data), batch_size, without_replacement)
        for p in path
    ]
    return torch.stack(out)


def tail_index(samples: torch.Tensor, block_size: int | None = None) -> torch.Tensor:
    r"""Tail index ``alpha`` of symmetric alpha-stable samples (Mohammadi et al. 2015).

    The last dimension holds K = K1 K2 samples (extra leading ones are truncated); blocks of size
    K1 are summed, ``Y_i = sum_{j in block i} X_j``, and

    .. math:: \frac{1}{\hat\alpha} = \frac{1}{\ln K_1}\Big[\frac{1}{K_2}\sum_i \ln|Y_i|
              - \frac{1}{K}\sum_j \ln|X_j|\Big],

    as used by Simsekli, Sagun, Gurbuzbalaban (ICML 2019) on gradient noise. ``block_size``
    defaults to ``floor(sqrt(K))``. Returns the estimate for every leading index.
    """
    check_tensor("samples", samples, floating=True)
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


def censored_mean_exit_time(exit_time: torch.Tensor, horizon: float) -> tuple[float, float]:
    r"""Mean exit time and its standard error when some chains had not exited by ``horizon``.

    Exponential maximum likelihood with right censoring: ``(sum of observed times + horizon *
    censored) / exits``, standard error ``mean / sqrt(exits)``.
    """
    t = exit_time.reshape(-1)
    done = torch.isfinite(t)
    exits = int(done.sum())
    if exits == 0:
        raise ValueError(f"no chain exited before horizon {horizon}")
    total = float(t[done].sum()) + horizon * int((~done).sum())
    mean = total / exits
    return mean, mean / math.sqrt(exits)


class LevyPath(NamedTuple):
    """Result of :func:`simulate_levy_sde`: final states and exit times (inf: never exited)."""

    x: torch.Tensor
    exit_time: torch.Tensor | None


def simulate_levy_sde(
    drift: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    alpha: float,
    scale: float,
    dt: float,
    num_steps: int,
    *,
    generator: torch.Generator | None = None,
    interval: tuple[float, float] | None = None,
) -> LevyPath:
    r"""Euler scheme for ``dX = drift(X) dt + scale dL^alpha`` (L symmetric alpha-stable Levy).

    ``X_{k+1} = X_k + drift(X_k) dt + scale dt^{1/alpha} S_k`` with ``S_k`` from
    :func:`sample_symmetric_stable`, vectorised over every entry of ``x0`` (independent chains).
    With ``interval = (lo, hi)`` a chain stops at its first step outside (lo, hi) and its exit
    time ``(k + 1) dt`` is recorded (Imkeller & Pavlyukevich; Simsekli et al. 2019); chains still
    inside after ``num_steps`` keep ``inf`` (use :func:`censored_mean_exit_time`). Noise is drawn
    in chunks of 256 steps, so the same generator gives the same path for any ``num_steps``.
    """
    check_tensor("x0", x0, floating=True)
    dt = check_positive("dt", dt)
    num_steps = check_positive_int("num_steps", num_steps)
    x = x0.clone()
    jump = scale * dt ** (1 / alpha)
    alive = exit_time = None
    if interval is not None:
        lo, hi = interval
        if not lo < hi:
            raise ValueError(f"interval must satisfy lo < hi, got {interval}")
        alive = torch.ones_like(x, dtype=torch.bool)
        exit_time = torch.full_like(x, math.inf)
    chunk = 256
    k = 0
    while k < num_steps:
        n = min(chunk, num_steps - k)
        noise = jump * sample_symmetric_stable(
            alpha, (n, *x.shape), generator=generator, dtype=x.dtype, device=x.device
        )
        for i in range(n):
            step = drift(x) * dt + noise[i]
            if alive is None:
                x = x + step
                continue
            x = torch.where(alive, x + step, x)
            out = alive & ((x <= lo) | (x >= hi))
            exit_time = torch.where(out, torch.full_like(x, (k + i + 1) * dt), exit_time)
            alive = alive & ~out
        k += n
        if alive is not None and not bool(alive.any()):
            break
    return LevyPath(x=x, exit_time=exit_time)
