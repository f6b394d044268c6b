"""Likelihoods: how the targets ``y`` depend on a network's output ``f``, chosen by object.

Every model takes ``likelihood=`` one of these and calls it the same way: global parameters
(a noise scale) are drawn once per model call, outside the data plate, and the observation
``pyro.sample("y", ...)`` sits inside it; ``summarize`` turns posterior draws of ``f`` into the
model's :class:`~bayesdepth.predictive.Prediction` (docs/theory.md §11).

- :class:`Gaussian`: ``y ~ N(f, s^2)``, the scale ``s`` fixed, learned (a point estimate) or a
  latent with a half-normal prior.
- :class:`Categorical`: ``y ~ Categorical(softmax(f))`` with integer labels.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule, PyroParam

from ._validation import check_tensor, positive_tensor
from .predictive import (
    ClassificationPrediction,
    Prediction,
    RegressionPrediction,
    classification_prediction,
    regression_prediction,
)
from .serialization import Recorded

__all__ = ["Categorical", "Gaussian", "Likelihood"]

_INTEGER = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _first_bad_row(bad: torch.Tensor) -> int:
    return int(bad.reshape(bad.shape[0], -1).any(-1).nonzero()[0, 0])


class Likelihood(Recorded, PyroModule):
    """Base class: the observation model of a Bayesian model (see the module docstring).

    Attributes:
        f_event_dim: event dimensions of one row of ``f`` (0 for a scalar mean, 1 for logits).
        latent_sites: names of the latent sample sites the likelihood adds (e.g. a noise scale).
    """

    f_event_dim: int = 0
    latent_sites: tuple[str, ...] = ()

    def check_outputs(self, out_features: int) -> None:
        """Raise unless a network with ``out_features`` outputs suits this likelihood."""

    def check_targets(self, y: torch.Tensor, n: int, out_features: int) -> torch.Tensor:
        """Validate the targets of ``n`` rows (never broadcast); return them."""
        raise NotImplementedError

    def sample_globals(self, like: torch.Tensor) -> torch.Tensor | None:
        """Draw (or return) the likelihood's global parameters; called outside the data plate."""
        return None

    def observe(
        self, f: torch.Tensor, y: torch.Tensor | None, globals_: torch.Tensor | None
    ) -> torch.Tensor:
        """``pyro.sample("y", ...)`` inside the data plate; returns the (observed) targets."""
        raise NotImplementedError

    def summarize(self, f: torch.Tensor, draws: dict[str, torch.Tensor]) -> Prediction:
        """The prediction from function draws ``f`` (num_samples, n, ...) and the draws of the
        likelihood's latent sites."""
        raise NotImplementedError


class Gaussian(Likelihood):
    """``y ~ N(f, s^2)`` for real targets of shape (n,).

    Args:
        scale: the noise scale ``s`` (fixed, or the initial value when ``learn_scale``); ``None``
            makes ``s`` a latent site ``"noise_scale"`` with a ``HalfNormal(scale_prior)`` prior.
        learn_scale: learn ``s`` as a point estimate (a positive Pyro parameter).
        scale_prior: scale of the half-normal prior when ``scale=None``.

    Example:
        >>> bd.BayesianMLP(1, likelihood=bd.Gaussian(0.1))               # fixed noise
        >>> bd.SDEBNNRegressor(1, likelihood=bd.Gaussian(0.1, learn_scale=True))
        >>> bd.BayesianMLP(1, likelihood=bd.Gaussian(None))              # latent noise
    """

    def __init__(
        self, scale: float | None = 0.1, *, learn_scale: bool = False, scale_prior: float = 1.0
    ) -> None:
        super().__init__()
        if not isinstance(learn_scale, bool):
            raise TypeError(f"learn_scale must be True or False, got {learn_scale!r}")
        self.latent = scale is None
        prior = positive_tensor("scale_prior", scale_prior)  # checked even when unused
        if self.latent:
            if learn_scale:
                raise ValueError("learn_scale=True needs a numeric initial scale, got scale=None")
            self.register_buffer("scale_prior", prior)
            self.latent_sites = ("noise_scale",)
        elif learn_scale:
            self.scale = PyroParam(positive_tensor("scale", scale), dist.constraints.positive)
        else:
            self.register_buffer("scale", positive_tensor("scale", scale))

    def check_outputs(self, out_features: int) -> None:
        if out_features != 1:
            raise ValueError(
                f"a Gaussian likelihood needs 1 output (out_features=1), the network has "
                f"out_features={out_features}"
            )

    def check_targets(self, y: torch.Tensor, n: int, out_features: int) -> torch.Tensor:
        check_tensor("y", y, floating=True)
        if tuple(y.shape) != (n,):
            raise ValueError(f"y must have shape ({n},) like the rows of x, got {tuple(y.shape)}")
        bad = ~torch.isfinite(y)
        if bool(bad.any()):
            raise ValueError(f"y has a non-finite value in row {_first_bad_row(bad)}")
        return y

    def sample_globals(self, like: torch.Tensor) -> torch.Tensor:
        if self.latent:
            prior = self.scale_prior.to(like)
            return pyro.sample("noise_scale", dist.HalfNormal(prior))
        return self.scale.to(like)

    def observe(self, f, y, globals_):
        return pyro.sample("y", dist.Normal(f, globals_), obs=y)

    def current_scale(self) -> torch.Tensor | None:
        """The fixed or learned scale (None when it is a latent site)."""
        return None if self.latent else self.scale.detach()

    def summarize(self, f: torch.Tensor, draws: dict[str, torch.Tensor]) -> RegressionPrediction:
        scale = draws["noise_scale"].reshape(-1) if self.latent else self.current_scale()
        return regression_prediction(f, scale)

    def extra_repr(self) -> str:
        if self.latent:
            return f"scale=latent, scale_prior={float(self.scale_prior)}"
        return f"scale={float(self.scale):.4g}"


class Categorical(Likelihood):
    """``y ~ Categorical(logits=f)`` for integer labels of shape (n,) in ``[0, classes)``."""

    f_event_dim = 1

    def check_outputs(self, out_features: int) -> None:
        if out_features < 2:
            raise ValueError(
                f"a Categorical likelihood needs >= 2 outputs (out_features = classes), the "
                f"network has out_features={out_features}"
            )

    def check_targets(self, y: torch.Tensor, n: int, out_features: int) -> torch.Tensor:
        check_tensor("y", y)
        if y.dtype not in _INTEGER:
            raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
        if tuple(y.shape) != (n,):
            raise ValueError(f"y must have shape ({n},) like the rows of x, got {tuple(y.shape)}")
        bad = (y < 0) | (y >= out_features)
        if bool(bad.any()):
            row = _first_bad_row(bad)
            raise ValueError(
                f"y must hold labels in [0, {out_features}), got {int(y[row])} in row {row}"
            )
        return y.long()

    def observe(self, f, y, globals_):
        return pyro.sample("y", dist.Categorical(logits=f), obs=y)

    def summarize(
        self, f: torch.Tensor, draws: dict[str, torch.Tensor]
    ) -> ClassificationPrediction:
        return classification_prediction(f)
