"""A Bayesian multilayer perceptron: the finite-depth baseline for the continuous-depth models.

Every weight and bias has an independent ``Normal(0, prior_scale)`` prior (docs/theory.md §10.4;
a Pyro ``PyroSample``
site named after the parameter, e.g. ``layers.0.weight``), so the model works with any Pyro guide
and with the SG-MCMC samplers of ``bayesdepth.inference``. Its own ``guide`` is a mean-field
``AutoNormal`` (created at construction, so it is saved, loaded and moved with the model).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import pyro.distributions as dist
import torch
from pyro.nn import PyroModule, PyroSample
from torch import nn

from ._validation import check_positive_int, check_tensor, positive_tensor
from .likelihoods import Gaussian, Likelihood
from .protocol import BayesianModel
from .seeding import seeded

__all__ = ["BayesianMLP"]


class _NormalPrior:
    """``N(0, s^2)`` over a weight of the given shape, ``s`` the layer's ``prior_scale`` buffer
    (so the prior follows ``.to(device, dtype)`` and copies of the model)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def __call__(self, layer: nn.Module) -> dist.Distribution:
        scale = layer.prior_scale
        zero = torch.zeros((), dtype=scale.dtype, device=scale.device)
        return dist.Normal(zero, scale).expand(self.shape).to_event(len(self.shape))


def _widths(hidden: Sequence[int]) -> list[int]:
    if isinstance(hidden, int) or not isinstance(hidden, Sequence):
        raise TypeError(f"hidden must be a sequence of layer widths such as (32,), got {hidden!r}")
    return [check_positive_int(f"hidden[{i}]", h) for i, h in enumerate(hidden)]


class BayesianMLP(BayesianModel):
    """Bayesian MLP ``x -> tanh layers -> output`` under any likelihood.

    Args:
        in_features: input dimension.
        out_features: 1 for a :class:`~bayesdepth.Gaussian` likelihood, the number of classes for
            a :class:`~bayesdepth.Categorical` one.
        hidden: widths of the hidden layers.
        likelihood: default ``Gaussian(0.1)`` (fixed noise); ``Gaussian(None)`` makes the noise
            scale a latent site ``"noise_scale"``.
        prior_scale: standard deviation of the Normal prior on every weight and bias.
        init_scale: initial posterior standard deviation of the mean-field guide.
        seed: seeds the guide's initialisation (None: torch's global random state).

    ``model(x, y=None, *, subsample_size=None)`` puts the likelihood in ``pyro.plate("data")`` so
    minibatches are scaled by ``N / B``; ``predict`` summarises the posterior predictive from the
    guide or from posterior draws (e.g. SG-MCMC chains).
    """

    vectorized = False  # nn.Linear does not broadcast over leading sample dimensions of weights

    def __init__(
        self,
        in_features: int,
        out_features: int = 1,
        hidden: Sequence[int] = (32,),
        likelihood: Likelihood | None = None,
        prior_scale: float = 1.0,
        init_scale: float = 0.01,
        seed: int | None = None,
    ) -> None:
        super().__init__(Gaussian(0.1) if likelihood is None else likelihood, out_features)
        self.in_features = check_positive_int("in_features", in_features)
        widths = [self.in_features, *_widths(hidden), self.out_features]
        prior_scale = positive_tensor("prior_scale", prior_scale)
        init_scale = float(positive_tensor("init_scale", init_scale))
        self.layers = PyroModule[nn.ModuleList](
            [PyroModule[nn.Linear](a, b) for a, b in pairwise(widths)]
        )
        for layer, (a, b) in zip(self.layers, pairwise(widths)):
            layer.register_buffer("prior_scale", prior_scale.clone())
            layer.weight = PyroSample(_NormalPrior((b, a)))
            layer.bias = PyroSample(_NormalPrior((b,)))
        with seeded(seed):
            self._attach_autoguide(torch.zeros(1, self.in_features), init_scale=init_scale)

    def check_inputs(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, ndim=2, floating=True)
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have {self.in_features} features (shape (n, {self.in_features})), "
                f"got shape {tuple(x.shape)}"
            )
        return x

    def sample_latents(self) -> None:
        """Draw every weight and bias (outside any plate; reused for the rest of the call)."""
        for layer in self.layers:
            layer.weight, layer.bias  # noqa: B018  (PyroSample attributes sample on access)

    def function(self, x: torch.Tensor, latents: None) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.tanh(x)
        return x

    def guide_body(self, x, y, subsample_size) -> None:
        self.autoguide(x, y, subsample_size=subsample_size)
