"""Bayesian augmented neural ODE: Normal priors on every weight of the vector field and readout.

    w ~ N(0, s^2 I),   h(0) = [x, 0_p],   dh/dt = f(h, t; w_f),   out = W h(T) + b,
    y_n | w ~ N(out_n, sigma^2)  (regression)  or  Categorical(softmax(out_n))  (classification).

Each weight tensor is a :class:`pyro.nn.PyroSample` site (named after the parameter, e.g.
``net.field.layers.0.weight``), drawn once per model call, *outside* the data plate; the
likelihood sits in ``pyro.plate("data", N, subsample_size=B)``, so the ELBO of a minibatch is
scaled by ``N / B`` and needs no hand-set KL weight. The sampled weights are passed to the ODE
solve explicitly (``torch.func.functional_call``), so gradients reach them through direct
backpropagation or through the adjoint alike. Train with :class:`~bayesdepth.STLTrace_ELBO`
and an :class:`~pyro.infer.autoguide.AutoNormal` guide (``self.guide``), or sample the weights
by SG-MCMC.
"""

from __future__ import annotations

import copy
import operator

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import Predictive
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroSample
from pyro.nn.module import to_pyro_module_

from .._validation import check_choice, check_positive, check_positive_int, check_tensor
from ..predictive import RegressionPrediction, average_probabilities, regression_prediction
from .model import AugmentedNeuralODE
from .solver import SolveCost

__all__ = ["BayesianAugmentedNODE"]


class _NormalPrior:
    """``N(0, s^2)`` over a weight of the given shape; ``s`` is a buffer of the owning module
    (so the prior follows ``.to(device, dtype)``)."""

    def __init__(self, shape: torch.Size):
        self.shape = torch.Size(shape)

    def __call__(self, module):
        scale = module.prior_scale
        return dist.Normal(torch.zeros((), dtype=scale.dtype, device=scale.device), scale).expand(
            self.shape
        ).to_event(len(self.shape))


class _InitAt:
    """Guide initialisation at given weights, moved to the device and dtype of the model's site
    (so a model moved with ``.to(...)`` after construction still initialises its guide right)."""

    def __init__(self, values: dict[str, torch.Tensor]):
        self.values = values

    def __call__(self, site) -> torch.Tensor:
        like = site.get("value")
        if like is None:
            like = site["fn"].mean  # the prior: Normal, on the model's device and dtype
        return self.values[site["name"]].to(like)


class BayesianAugmentedNODE(PyroModule):
    """A Pyro model over the weights of an :class:`AugmentedNeuralODE`.

    Args:
        net: the architecture; the guide's means start at its current parameter values (its
            initialisation, or a trained network's weights).
        likelihood: ``"categorical"`` (outputs are logits) or ``"gaussian"`` (one output).
        prior_scale: standard deviation ``s`` of the Normal prior on every weight.
        noise_scale: ``sigma`` of the Gaussian likelihood (fixed; ignored for categorical).
        init_scale: initial posterior standard deviation of the :class:`AutoNormal` guide.

    Call ``model(x, y=None, subsample_size=None, cost=None)``; it returns the outputs (n, out)
    for the (sub)sampled rows, with ``y`` observed at site ``"obs"``.

    Example:
        >>> bnn = BayesianAugmentedNODE(AugmentedNeuralODE(2, 2, augment_dim=1))
        >>> svi = pyro.infer.SVI(bnn.model, bnn.guide, pyro.optim.Adam({"lr": 1e-2}),
        ...                      bayesdepth.STLTrace_ELBO())
        >>> for step in range(500): svi.step(x, y, subsample_size=64)
        >>> probs = bnn.predict(x_test, num_samples=32)      # (n, classes)
    """

    def __init__(
        self,
        net: AugmentedNeuralODE,
        likelihood: str = "categorical",
        prior_scale: float = 1.0,
        noise_scale: float = 0.1,
        init_scale: float = 0.01,
    ):
        super().__init__()
        if not isinstance(net, AugmentedNeuralODE):
            raise TypeError(f"net must be an AugmentedNeuralODE, got {type(net).__name__}")
        self.likelihood = check_choice("likelihood", likelihood, ("categorical", "gaussian"))
        if likelihood == "gaussian" and net.out_features != 1:
            raise ValueError(
                f"likelihood='gaussian' needs out_features=1, got {net.out_features}"
            )
        prior_scale = check_positive("prior_scale", prior_scale)
        self.noise_scale = check_positive("noise_scale", noise_scale)
        init_scale = check_positive("init_scale", init_scale)
        # a plain copy that runs the solve with the sampled weights (kept out of the module tree)
        self.__dict__["_arch"] = copy.deepcopy(net)
        bayes = copy.deepcopy(net)
        self._param_names = [name for name, _ in bayes.named_parameters()]
        owners = {}
        for name, param in list(bayes.named_parameters()):
            owner_name, _, attr = name.rpartition(".")
            owners.setdefault(owner_name, []).append((attr, param.shape, param.dtype))
        to_pyro_module_(bayes)
        for owner_name, attrs in owners.items():
            owner = bayes.get_submodule(owner_name)
            owner.register_buffer("prior_scale", torch.tensor(prior_scale, dtype=attrs[0][2]))
            for attr, shape, _ in attrs:
                delattr(owner, attr)
                setattr(owner, attr, PyroSample(_NormalPrior(shape)))
        self.net = bayes
        start = {f"net.{name}": p.detach().clone() for name, p in net.named_parameters()}
        self.__dict__["guide"] = AutoNormal(
            poutine.block(self.model, hide=["obs"]),
            init_loc_fn=_InitAt(start),
            init_scale=init_scale,
        )

    @property
    def arch(self) -> AugmentedNeuralODE:
        """The deterministic architecture the sampled weights are plugged into."""
        return self._arch

    def sample_weights(self) -> dict[str, torch.Tensor]:
        """The weights of this model call (inside a call: the same draw each time)."""
        return {name: operator.attrgetter(name)(self.net) for name in self._param_names}

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        subsample_size: int | None = None,
        cost: SolveCost | None = None,
    ) -> torch.Tensor:
        """The model: draw the weights, solve the ODE for the (sub)sampled rows, observe ``y``.

        Args:
            x: all inputs (N, ...); y: all targets (N,) or None (then ``obs`` is sampled).
            subsample_size: rows per call (the plate scales the likelihood by N / B).
            cost: a :class:`SolveCost` that the solve's NFE are added to.

        Returns:
            The network outputs (B, out_features) for the rows of this call.
        """
        arch = self._arch
        arch.augment(x[:1] if isinstance(x, torch.Tensor) else x)  # validates x
        n = x.shape[0]
        if y is not None:
            check_tensor("y", y, ndim=1)
            if y.shape[0] != n:
                raise ValueError(f"y must have {n} rows like x, got shape {tuple(y.shape)}")
            if self.likelihood == "categorical" and y.is_floating_point():
                raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
        if subsample_size is not None:
            subsample_size = check_positive_int("subsample_size", subsample_size)
        weights = self.sample_weights()
        field_w = {k[len("field."):]: v for k, v in weights.items() if k.startswith("field.")}
        head_w = {k[len("readout."):]: v for k, v in weights.items() if k.startswith("readout.")}
        with pyro.plate("data", n, subsample_size=subsample_size, device=x.device) as idx:
            xb = x if subsample_size is None else x[idx]
            yb = y if y is None or subsample_size is None else y[idx]
            out = arch.head(arch.flow(xb, cost=cost, params=field_w), head_w or None)
            if self.likelihood == "categorical":
                pyro.sample("obs", dist.Categorical(logits=out), obs=yb)
            else:
                noise = torch.as_tensor(self.noise_scale, dtype=out.dtype, device=out.device)
                pyro.sample("obs", dist.Normal(out.squeeze(-1), noise), obs=yb)
        return out

    def model(self, x, y=None, subsample_size=None, cost=None):
        """The Pyro model (same as calling the module); give it to SVI or a sampler."""
        return self(x, y, subsample_size, cost)

    @torch.no_grad()
    def predict(
        self,
        x: torch.Tensor,
        num_samples: int = 32,
        guide=None,
        posterior_samples: dict[str, torch.Tensor] | None = None,
        seed: int | None = None,
    ) -> RegressionPrediction | torch.Tensor:
        """Posterior predictive from ``guide`` (default ``self.guide``) or from weight draws.

        Args:
            x: inputs.
            num_samples: weight draws from the guide.
            guide: a guide to draw weights from instead of ``self.guide``.
            posterior_samples: weight draws ``{site: (S, *shape)}`` (e.g. SG-MCMC draws with
                chains and draws flattened together); overrides the guide and ``num_samples``.
            seed: seeds the guide's draws (inside ``torch.random.fork_rng``, so the global
                random state is left as it was); None uses the global state.

        Returns:
            Gaussian likelihood: a :class:`~bayesdepth.predictive.RegressionPrediction` with
            ``mean`` (n,), ``sd`` of a new ``y`` (``Var_w f + noise_scale^2``) and
            ``epistemic_sd`` of ``f`` over weight draws. Categorical: the class probabilities
            averaged over draws, (n, classes) (probabilities, never logits, are averaged).
        """
        if posterior_samples is not None:
            pred = Predictive(self.model, posterior_samples=dict(posterior_samples),
                              return_sites=("_RETURN",))
        else:
            num_samples = check_positive_int("num_samples", num_samples)
            guide = self.guide if guide is None else guide
            pred = Predictive(self.model, guide=guide, num_samples=num_samples,
                              return_sites=("_RETURN",))
        if seed is None:
            out = pred(x)["_RETURN"]  # (S, n, out)
        else:
            devices = [x.device] if x.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                if posterior_samples is None:  # create lazily built guide parameters first
                    with poutine.block():
                        guide(x)
                torch.manual_seed(seed)
                out = pred(x)["_RETURN"]
        if self.likelihood == "categorical":
            return average_probabilities(out)
        return regression_prediction(out.squeeze(-1), self.noise_scale)
