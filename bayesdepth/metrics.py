"""Predictive metrics: accuracy, negative log-likelihood, expected calibration error, RMSE.

Classification metrics take *class probabilities* averaged over posterior samples
(``p(y | x) = E_w p(y | x, w)``), never averaged logits (docs/theory.md §11.4-§11.5).
"""

from __future__ import annotations

import torch

from ._validation import check_positive_int, check_tensor


def _check_probs(probs: torch.Tensor, labels: torch.Tensor) -> None:
    check_tensor("probs", probs, ndim=2, floating=True)
    check_tensor("labels", labels, ndim=1)
    if probs.shape[0] != labels.shape[0]:
        raise ValueError(
            f"probs and labels must have the same number of rows, got {probs.shape[0]} "
            f"and {labels.shape[0]}"
        )


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose most probable class equals the label."""
    _check_probs(probs, labels)
    return float((probs.argmax(-1) == labels).double().mean())


def nll(probs: torch.Tensor, labels: torch.Tensor, eps: float = 1e-12) -> float:
    """Mean negative log predictive probability of the labels, ``-mean log p(y_n | x_n)``."""
    _check_probs(probs, labels)
    picked = probs.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)
    return float(-(picked.double().clamp_min(eps)).log().mean())


def expected_calibration_error(
    probs: torch.Tensor, labels: torch.Tensor, num_bins: int = 10
) -> float:
    """Expected calibration error with equal-width confidence bins.

    ``ECE = sum_b (n_b / n) |acc_b - conf_b|`` where ``conf`` is the top-class probability
    (Guo et al. 2017, "On Calibration of Modern Neural Networks").
    """
    _check_probs(probs, labels)
    num_bins = check_positive_int("num_bins", num_bins)
    conf, pred = probs.double().max(-1)
    correct = (pred == labels).double()
    bins = torch.clamp((conf * num_bins).ceil().long() - 1, 0, num_bins - 1)
    ece = torch.zeros((), dtype=torch.float64, device=probs.device)
    for b in range(num_bins):
        mask = bins == b
        if mask.any():
            ece += mask.double().mean() * (correct[mask].mean() - conf[mask].mean()).abs()
    return float(ece)


def rmse(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Root-mean-square error between two tensors of the same shape."""
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    return float(((pred.double() - target.double()) ** 2).mean().sqrt())
