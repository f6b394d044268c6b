r"""Gradient-noise statistics: per-example gradients, the minibatch noise covariance, G/N.

Conventions of docs/theory.md §0: the per-example gradient covariance uses the *population*
normalisation ``C = (1/N) sum_n (g_n - g)(g_n - g)^T`` and a minibatch gradient has covariance
``phi C`` with the factor of :func:`~.problem.minibatch_noise_factor` (``1/B`` for iid batches,
``(N - B) / (B (N - 1))`` without replacement). Heavy-tailed noise is in :mod:`.heavy_tails`.

Along a run, :func:`two_batch_estimate` turns the unbiased two-batch statistics that
``SGD(noise_stats=True)`` and ``SVAG`` report into ``G``, ``N`` and ``N / G`` with between-chain
standard errors (docs/theory.md §3.4, §14.3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch

from bayesdepth._validation import check_tensor

from .problem import minibatch_noise_factor
from .statistics import chain_mean

__all__ = [
    "TwoBatchEstimate",
    "gradient_noise_covariance",
    "noise_to_signal",
    "noise_to_signal_along",
    "per_example_grads",
    "two_batch_estimate",
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


def gradient_noise_covariance(
    grads: torch.Tensor, batch_size: int = 1, replacement: bool = True
) -> torch.Tensor:
    r"""Covariance of a minibatch gradient from per-example gradients ``grads`` (..., N, d).

    ``C = (1/N) sum_n (g_n - g)(g_n - g)^T`` (population normalisation), returned as ``phi C`` with
    ``phi = 1/B`` for iid batches and ``(N - B) / (B (N - 1))`` without replacement
    (docs/theory.md §0.3). ``batch_size = 1`` with replacement gives ``C`` itself.
    """
    check_tensor("grads", grads, ndim=(2, 3, 4), floating=True)
    n = grads.shape[-2]
    centred = grads - grads.mean(-2, keepdim=True)
    c = centred.transpose(-1, -2) @ centred / n
    return c * minibatch_noise_factor(batch_size, n, replacement)


def noise_to_signal(
    grads: torch.Tensor, batch_size: int = 1, replacement: bool = True
) -> torch.Tensor:
    r"""``G / N = |grad L|^2 / tr Cov(g_B)`` from per-example gradients (..., N, d).

    Li, Malladi, Arora (2021): the SDE model of SGD (and the linear scaling rule) holds while
    ``G/N`` is small; scaling ``(eta, B) -> (kappa eta, kappa B)`` multiplies it by about kappa
    (docs/theory.md §3.4).
    """
    check_tensor("grads", grads, ndim=(2, 3, 4), floating=True)
    n = grads.shape[-2]
    mean = grads.mean(-2)
    tr = (grads - mean.unsqueeze(-2)).pow(2).sum((-1, -2)) / n
    return mean.pow(2).sum(-1) / (tr * minibatch_noise_factor(batch_size, n, replacement))


def noise_to_signal_along(
    loss_fn: Callable[..., torch.Tensor],
    path: Sequence[torch.Tensor] | torch.Tensor,
    *data: torch.Tensor,
    batch_size: int = 1,
    replacement: bool = True,
) -> torch.Tensor:
    """``G/N`` at every parameter vector of a run (``path`` of shape (T, d) or (T, K, d)).

    Returns (T,) or (T, K). Uses :func:`per_example_grads` (exact per-example gradients).
    """
    out = [
        noise_to_signal(per_example_grads(loss_fn, p, *data), batch_size, replacement)
        for p in path
    ]
    return torch.stack(out)


class TwoBatchEstimate(NamedTuple):
    """Gradient signal and noise averaged over a run, with between-chain standard errors."""

    signal: float  #: ``G = E|grad L|^2`` (mean of ``grad_sq = g_1 . g_2``)
    signal_se: float
    noise: float  #: ``N = E tr Cov(g_B)`` (mean of ``grad_noise = |g_1 - g_2|^2 / 2``)
    noise_se: float
    noise_over_signal: float  #: ``N / G`` (ratio of the two means)
    noise_over_signal_se: float  #: by the delta method over chains


def two_batch_estimate(run: Any) -> TwoBatchEstimate:
    r"""``G``, ``N`` and ``N / G`` from the two-batch statistics of a run.

    Two independent batches at the same point give the unbiased estimates
    ``g_1 . g_2`` of ``|grad L|^2`` and ``|g_1 - g_2|^2 / 2`` of ``tr Cov(g_B)``
    (docs/theory.md §3.4). Every chain's time average is one independent estimate; the ratio is
    ``r = N / G`` of the pooled means, with standard error
    ``sd_k(N_k - r G_k) / (sqrt(K) G)`` (delta method over the ``K`` chains).

    Args:
        run: a :class:`~bayesdepth.inference.Chains` of ``SGD(noise_stats=True)`` or ``SVAG``,
            or a mapping with ``"grad_sq"`` and ``"grad_noise"`` of shape (chains, draws).

    Raises:
        ValueError: if the statistics are missing, or the mean signal is not positive.
    """
    stats = run.stats if hasattr(run, "stats") else run
    if not isinstance(stats, Mapping) or not {"grad_sq", "grad_noise"} <= set(stats):
        have = sorted(stats) if isinstance(stats, Mapping) else type(stats).__name__
        raise ValueError(
            f"run must carry the statistics 'grad_sq' and 'grad_noise' (run SGD with "
            f"noise_stats=True, or SVAG); got {have}"
        )
    sq = torch.as_tensor(stats["grad_sq"], dtype=torch.float64)
    noise = torch.as_tensor(stats["grad_noise"], dtype=torch.float64)
    if sq.dim() != 2 or sq.shape != noise.shape:
        raise ValueError(
            f"grad_sq and grad_noise must have one shape (chains, draws), got "
            f"{tuple(sq.shape)} and {tuple(noise.shape)}"
        )
    g, g_se = chain_mean(sq)
    n, n_se = chain_mean(noise)
    if not g > 0:
        raise ValueError(f"the mean signal G = {g:.3g} must be positive to form N / G")
    r = n / g
    return TwoBatchEstimate(g, g_se, n, n_se, r, chain_mean(noise - r * sq)[1] / g)
