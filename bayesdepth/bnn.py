"""A Bayesian multilayer perceptron: the finite-depth baseline for the continuous-depth models.

Every weight and bias has an independent ``Normal(0, prior_scale)`` prior (a Pyro ``PyroSample``),
so the model works with any Pyro guide (``AutoNormal`` + :class:`~bayesdepth.STLTrace_ELBO` for
mean-field variational inference) and with the SG-MCMC samplers of ``bayesdepth.inference``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroSample
from torch import nn

from ._validation import check_choice, check_positive, check_positive_int, check_tensor
from .predictive import RegressionPrediction, average_probabilities, regression_prediction

__all__ = ["BayesianMLP"]

LIKELIHOODS = ("gaussian", "categorical")


class BayesianMLP(PyroModule):
    """Bayesian MLP ``x -> tanh layers -> output`` with Gaussian or categorical likelihood.

    Args:
        in_features: input dimension.
        out_features: 1 for regression, the number of classes for classification.
        hidden: widths of the hidden layers.
        likelihood: ``"gaussian"`` (targets of shape (n,)) or ``"categorical"`` (integer labels).
        prior_scale: standard deviation of the Normal prior on every weight and bias.
        noise_scale: observation noise of the Gaussian likelihood; ``None`` makes it a latent
            site ``"noise_scale"`` with a ``HalfNormal(1)`` prior.

    ``model(x, y=None, subsample_size=None)`` puts the likelihood in ``pyro.plate("data")`` so
    minibatches are scaled by ``N / B``. ``guide`` is a mean-field ``AutoNormal`` (initial scale
    ``init_scale``) ready for SVI; ``predict`` summarises the posterior predictive from that
    guide or from posterior draws (e.g. SG-MCMC chains).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int = 1,
        hidden: Sequence[int] = (32,),
        likelihood: str = "gaussian",
        prior_scale: float = 1.0,
        noise_scale: float | None = 0.1,
        init_scale: float = 0.01,
    ) -> None:
        super().__init__()
        in_features = check_positive_int("in_features", in_features)
        out_features = check_positive_int("out_features", out_features)
        self.likelihood = check_choice("likelihood", likelihood, LIKELIHOODS)
        prior_scale = check_positive("prior_scale", prior_scale)
        self.noise_scale = None if noise_scale is None else check_positive("noise_scale",
                                                                           noise_scale)
        widths = [in_features, *(check_positive_int("hidden", h) for h in hidden), out_features]
        self.in_features = in_features
        self.layers = PyroModule[nn.ModuleList](
            [PyroModule[nn.Linear](a, b) for a, b in pairwise(widths)]
        )
        # A buffer, so the priors follow .to(device) and .double() of the module.
        self.register_buffer("prior_scale", torch.tensor(prior_scale))
        for layer, (a, b) in zip(self.layers, pairwise(widths)):
            layer.weight = PyroSample(lambda _, shape=(b, a): self._prior(shape))
            layer.bias = PyroSample(lambda _, shape=(b,): self._prior(shape))
        init_scale = check_positive("init_scale", init_scale)
        # Kept out of the module tree so its parameters are not the model's.
        self.__dict__["guide"] = AutoNormal(poutine.block(self.model, hide=["obs"]),
                                            init_scale=init_scale)

    def _prior(self, shape: tuple[int, ...]) -> dist.Distribution:
        zero = torch.zeros((), dtype=self.prior_scale.dtype, device=self.prior_scale.device)
        return dist.Normal(zero, self.prior_scale).expand(shape).to_event(len(shape))

    def net(self, x: torch.Tensor) -> torch.Tensor:
        """Network output (logits or the regression mean) for inputs ``x`` of shape (n, d)."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.tanh(x)
        return x

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, subsample_size: int | None = None
    ) -> torch.Tensor:
        """The Pyro model: priors, then the likelihood of ``y`` inside the data plate."""
        check_tensor("x", x, ndim=2, floating=True)
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have {self.in_features} features (shape (n, {self.in_features})), "
                f"got shape {tuple(x.shape)}"
            )
        if y is not None and y.shape[0] != x.shape[0]:
            raise ValueError(f"y must have {x.shape[0]} rows like x, got shape {tuple(y.shape)}")
        scale = self._sample_globals(x)
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size) as idx:
            out = self.net(x[idx])
            pyro.deterministic("f", out.squeeze(-1) if self.likelihood == "gaussian" else out)
            obs = None if y is None else y[idx]
            if self.likelihood == "gaussian":
                return pyro.sample("obs", dist.Normal(out.squeeze(-1), scale), obs=obs)
            return pyro.sample("obs", dist.Categorical(logits=out), obs=obs)

    def _sample_globals(self, x: torch.Tensor) -> torch.Tensor | None:
        """Draw every weight (outside any plate) and the noise scale; returns the noise scale."""
        for layer in self.layers:
            layer.weight, layer.bias  # noqa: B018  (PyroSample attributes sample on access)
        if self.likelihood != "gaussian":
            return None
        if self.noise_scale is None:
            return pyro.sample("noise_scale", dist.HalfNormal(x.new_tensor(1.0)))
        return x.new_tensor(self.noise_scale)

    def model(
        self, x: torch.Tensor, y: torch.Tensor | None = None, subsample_size: int | None = None
    ) -> torch.Tensor:
        """Alias of calling the module: the Pyro model ``model(x, y=None, subsample_size=None)``."""
        return self(x, y, subsample_size)

    @torch.no_grad()
    def function_draws(
        self,
        x: torch.Tensor,
        num_samples: int = 64,
        posterior_samples: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Network outputs at ``x`` for each weight draw, and the noise-scale draws.

        Draws come from ``self.guide`` (``num_samples`` of them) or from ``posterior_samples``
        (``{site: (S, *shape)}``, e.g. SG-MCMC chains with chains and draws flattened together).
        Returns ``f`` of shape (S, n) for regression or (S, n, classes) logits, and the
        ``noise_scale`` draws (S,) when the noise is a latent site (else None).
        """
        if posterior_samples is not None:
            num_samples = len(next(iter(posterior_samples.values())))
            runs = (poutine.condition(self.model, {k: v[i] for k, v in posterior_samples.items()})
                    for i in range(num_samples))
        else:
            num_samples = check_positive_int("num_samples", num_samples)
            runs = (poutine.replay(self.model, trace=poutine.trace(self.guide).get_trace(x))
                    for _ in range(num_samples))
        f, noise = [], []
        for run in runs:
            trace = poutine.trace(run).get_trace(x)
            f.append(trace.nodes["f"]["value"])
            if "noise_scale" in trace.nodes:
                noise.append(trace.nodes["noise_scale"]["value"])
        return torch.stack(f), (torch.stack(noise) if noise else None)

    def predict(
        self,
        x: torch.Tensor,
        num_samples: int = 64,
        posterior_samples: dict[str, torch.Tensor] | None = None,
    ) -> RegressionPrediction | torch.Tensor:
        """Posterior predictive at ``x`` from the guide, or from ``posterior_samples``.

        Args:
            x: inputs (n, in_features).
            num_samples: draws from ``self.guide`` (ignored with ``posterior_samples``).
            posterior_samples: ``{site: (S, *shape)}`` weight draws, e.g. SG-MCMC chains with
                chains and draws flattened together.

        Returns:
            :class:`~bayesdepth.predictive.RegressionPrediction` for the Gaussian likelihood (the
            noise is the fixed ``noise_scale`` or the mean of the ``noise_scale`` draws), class
            probabilities (n, classes) averaged over draws for the categorical one.
        """
        f, noise = self.function_draws(x, num_samples, posterior_samples)
        if self.likelihood == "categorical":
            return average_probabilities(f)
        return regression_prediction(f, self.noise_scale if noise is None else noise.mean())
