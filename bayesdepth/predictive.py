"""What every model's ``predict`` returns, computed the same way for all of them.

Regression: the predictive of a new ``y`` at ``x`` mixes the posterior over functions with the
observation noise, ``Var y = Var_w f(x; w) + noise^2``; both parts are reported. Classification:
class probabilities averaged over posterior draws, ``p(y | x) = E_w softmax(f(x; w))`` (never
averaged logits, which would be overconfident).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["RegressionPrediction", "average_probabilities", "regression_prediction"]


@dataclass(frozen=True)
class RegressionPrediction:
    """Predictive ``mean`` and ``sd`` of y (noise included), and ``epistemic_sd`` of f(x)."""

    mean: torch.Tensor
    sd: torch.Tensor
    epistemic_sd: torch.Tensor


def regression_prediction(
    f: torch.Tensor, noise_scale: float | torch.Tensor
) -> RegressionPrediction:
    """Summarise function draws ``f`` of shape (num_samples, n) under Gaussian noise."""
    epistemic_var = f.var(0, unbiased=False)
    noise = torch.as_tensor(noise_scale, dtype=f.dtype, device=f.device)
    return RegressionPrediction(
        mean=f.mean(0), sd=(epistemic_var + noise**2).sqrt(), epistemic_sd=epistemic_var.sqrt()
    )


def average_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities (n, classes) from logit draws (num_samples, n, classes)."""
    return logits.softmax(-1).mean(0)
