"""What every model's ``predict`` returns: one :class:`Prediction` type per kind of target.

Regression: the predictive of a new ``y`` at ``x`` mixes the posterior over functions with the
observation noise, ``Var y = Var_w f(x; w) + E_w noise^2``; both parts are reported.
Classification: class probabilities averaged over posterior draws,
``p(y | x) = E_w softmax(f(x; w))`` (never averaged logits, which would be overconfident), with
the predictive entropy ``H[E_w p]`` and its epistemic part, the mutual information
``I(y; w) = H[E_w p] - E_w H[p]`` (docs/theory.md §11.1-§11.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "ClassificationPrediction",
    "Prediction",
    "RegressionPrediction",
    "classification_prediction",
    "regression_prediction",
]


class Prediction:
    """Base of the prediction types; ``samples`` holds the function draws it summarises."""

    samples: torch.Tensor

    @property
    def num_samples(self) -> int:
        """Number of posterior draws behind the summary."""
        return self.samples.shape[0]


@dataclass(frozen=True)
class RegressionPrediction(Prediction):
    """Predictive ``mean`` and ``sd`` of y (noise included), ``epistemic_sd`` of f(x), and the
    function draws ``samples`` of shape (num_samples, n)."""

    mean: torch.Tensor
    sd: torch.Tensor
    epistemic_sd: torch.Tensor
    samples: torch.Tensor


@dataclass(frozen=True)
class ClassificationPrediction(Prediction):
    """Averaged class ``probs`` (n, classes), the predictive ``entropy`` ``H[E p]`` (n,), the
    ``mutual_information`` ``H[E p] - E H[p]`` (n,), and the logit draws ``samples``
    (num_samples, n, classes)."""

    probs: torch.Tensor
    entropy: torch.Tensor
    mutual_information: torch.Tensor
    samples: torch.Tensor

    @property
    def labels(self) -> torch.Tensor:
        """The most probable class of every row."""
        return self.probs.argmax(-1)


def regression_prediction(
    f: torch.Tensor, noise_scale: float | torch.Tensor
) -> RegressionPrediction:
    """Summarise function draws ``f`` (num_samples, n) under Gaussian noise.

    ``noise_scale`` is a number, a scalar tensor, or one scale per draw (num_samples,): the noise
    variance entering ``sd`` is the mean of ``noise_scale^2`` over draws.
    """
    epistemic_var = f.var(0, unbiased=False)
    noise = torch.as_tensor(noise_scale, dtype=f.dtype, device=f.device)
    noise_var = (noise**2).mean() if noise.dim() else noise**2
    return RegressionPrediction(
        mean=f.mean(0),
        sd=(epistemic_var + noise_var).sqrt(),
        epistemic_sd=epistemic_var.sqrt(),
        samples=f,
    )


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * probs.clamp_min(torch.finfo(probs.dtype).tiny).log()).sum(-1)


def classification_prediction(logits: torch.Tensor) -> ClassificationPrediction:
    """Summarise logit draws (num_samples, n, classes): averaged probabilities and entropies."""
    per_draw = logits.softmax(-1)
    probs = per_draw.mean(0)
    entropy = _entropy(probs)
    expected = _entropy(per_draw).mean(0)
    return ClassificationPrediction(
        probs=probs,
        entropy=entropy,
        mutual_information=(entropy - expected).clamp_min(0),
        samples=logits,
    )
