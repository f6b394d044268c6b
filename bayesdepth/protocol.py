"""The one protocol every ready-made model follows, and the parameters each model owns.

Every model (:class:`~bayesdepth.SDEBNNRegressor`, :class:`~bayesdepth.SDEBNNClassifier`,
:class:`~bayesdepth.BayesianMLP`, :class:`~bayesdepth.BayesianAugmentedNODE`, and any later one)
is a :class:`BayesianModel`:

- ``model(x, y=None, *, subsample_size=None)``: global latents (weights, weight paths, a noise
  scale) outside the data plate, the likelihood inside ``pyro.plate("data", n,
  subsample_size=...)`` (so a minibatch is scaled by ``n / b``), and the network output at the
  deterministic site ``"f"``;
- ``guide(x, y=None, *, subsample_size=None)``: the variational posterior of the same latents;
- ``predict(x, *, num_samples=None, posterior_samples=None, seed=None) ->``
  :class:`~bayesdepth.predictive.Prediction`, from the guide or from any posterior draws (SG-MCMC
  chains, ``pyro.infer.Predictive`` samples); unknown or missing sites are an error naming them.

**Each model owns its parameters.** Pyro keeps parameters in one global store keyed by name, so two
models with the same site names would share (and overwrite) them. A :class:`BayesianModel` runs its
``model`` and ``guide`` inside ``pyro.get_param_store().scope(...)`` of its own store, so its
parameters never meet another model's, ``pyro.clear_param_store()`` does not touch them, and
``pyro.infer.SVI``, ``Predictive`` and every poutine work as usual. They are ordinary
``nn.Parameter`` s of the module: ``model.parameters()``, ``state_dict()``, ``.to(device)``.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer import Predictive
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, pyro_method
from pyro.poutine.util import site_is_subsample

from ._validation import check_positive_int, check_rows_once, check_tensor
from .likelihoods import Likelihood
from .predictive import Prediction
from .seeding import seeded
from .serialization import Recorded
from .threads import pyro_exclusive

__all__ = ["BayesianModel"]


def _latent_shapes(trace: poutine.Trace) -> dict[str, torch.Size]:
    """Global latent sites of a prior run (the observation ``"y"`` was sampled, not latent)."""
    return {
        name: site["value"].shape for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
        and name != "y"
    }


class BayesianModel(Recorded, PyroModule):
    """Base class of the ready-made models (the protocol in the module docstring).

    Subclasses implement :meth:`check_inputs`, :meth:`sample_latents` (model side, outside the
    plate), :meth:`function` (the network output for some rows given the latents) and
    :meth:`guide_body`, and call ``super().__init__(likelihood, out_features)`` first.

    Attributes:
        likelihood: the :class:`~bayesdepth.likelihoods.Likelihood`.
        out_features: outputs of the network (1 for regression, the classes otherwise).
        vectorized: the model accepts latents with leading sample dimensions, so
            ``Predictive(parallel=True)`` and vectorised particles work.
    """

    vectorized: bool = True
    max_plate_nesting: int = 1  # the data plate
    default_num_samples: int = 64
    default_chunk_size: int = 64

    def __init__(self, likelihood: Likelihood, out_features: int) -> None:
        super().__init__()
        if not isinstance(likelihood, Likelihood):
            raise TypeError(
                "likelihood must be a bayesdepth likelihood such as bayesdepth.Gaussian(0.1) or "
                f"bayesdepth.Categorical(), got {likelihood!r}"
            )
        self.out_features = check_positive_int("out_features", out_features)
        likelihood.check_outputs(self.out_features)
        self.likelihood = likelihood
        self._store: dict[str, dict] = {"params": {}, "constraints": {}}

    # ------------------------------------------------------------------ for subclasses
    def check_inputs(self, x: Any) -> torch.Tensor:
        """Validate the inputs ``x`` (all rows); return them."""
        raise NotImplementedError

    def sample_latents(self) -> Any:
        """Sample the global latents under the prior (model side, outside the data plate)."""
        raise NotImplementedError

    def function(self, x: torch.Tensor, latents: Any) -> torch.Tensor:
        """The network output ``(..., b, out_features)`` for rows ``x`` given the latents."""
        raise NotImplementedError

    def guide_body(self, x: torch.Tensor, y: torch.Tensor | None,
                   subsample_size: int | None) -> None:
        """Sample the global latents under the variational posterior."""
        raise NotImplementedError

    # ------------------------------------------------------------------ parameters
    @contextlib.contextmanager
    def own_parameters(self) -> Iterator[None]:
        """Make this model's own parameter store Pyro's current one for a block of code."""
        store = pyro.get_param_store()
        try:
            with pyro_exclusive(f"{type(self).__name__}.model/guide"), store.scope(self._store):
                yield
        finally:
            # ``scope`` drops the ``.unconstrained`` weak references Pyro keeps on parameters
            # whose constraint is the identity (its state must be picklable); ``SVI.step`` reads
            # them after the model and guide ran, so they are put back, here and globally.
            own = self._store["params"].values()
            for param in [*own, *(p for _, p in store.named_parameters())]:
                param.unconstrained = weakref.ref(param)

    # ------------------------------------------------------------------ the protocol
    def _inputs(self, x: Any) -> torch.Tensor:
        """``x`` checked by the subclass, then for rows, finiteness and the model's dtype."""
        x = check_rows_once("x", self.check_inputs(x))
        dtype = next((t.dtype for t in (*self.parameters(), *self.buffers())
                      if t.is_floating_point()), x.dtype)
        if x.dtype != dtype:
            raise TypeError(
                f"x has dtype {x.dtype} but the model's parameters are {dtype}; convert x "
                f"(x.to({dtype})) or the model (model.to({x.dtype}))"
            )
        return x

    def _check_subsample(self, n: int, subsample_size: int | None) -> int | None:
        if subsample_size is None:
            return None
        size = check_positive_int("subsample_size", subsample_size)
        if size > n:
            raise ValueError(f"subsample_size must be <= the {n} rows of x, got {size}")
        return size

    @pyro_method
    def model(
        self, x: torch.Tensor, y: torch.Tensor | None = None, *,
        subsample_size: int | None = None,
    ) -> torch.Tensor:
        """The Pyro model: priors, then ``y`` inside ``pyro.plate("data")``; returns ``y``."""
        with self.own_parameters():
            x = self._inputs(x)
            n = x.shape[0]
            if y is not None:
                y = self.likelihood.check_targets(y, n, self.out_features)
            size = self._check_subsample(n, subsample_size)
            latents = self.sample_latents()
            noise = self.likelihood.sample_globals(x)
            with pyro.plate("data", n, subsample_size=size, device=x.device) as idx:
                rows = x if size is None else x[idx]
                f = self.function(rows, latents)
                if self.likelihood.f_event_dim == 0:
                    f = f.squeeze(-1)
                pyro.deterministic("f", f, event_dim=self.likelihood.f_event_dim)
                obs = None if y is None else (y if size is None else y[idx])
                return self.likelihood.observe(f, obs, noise)

    @pyro_method
    def guide(
        self, x: torch.Tensor, y: torch.Tensor | None = None, *,
        subsample_size: int | None = None,
    ) -> None:
        """The variational posterior over the model's global latents."""
        with self.own_parameters():
            self.guide_body(x, y, subsample_size)

    def _prototype(self, x: torch.Tensor) -> poutine.Trace:
        """A prior run of the model at one row of ``x`` (the global random state is kept)."""
        with torch.no_grad(), torch.random.fork_rng(devices=_cuda(x)):
            return poutine.trace(self.model).get_trace(x[:1])

    def latent_shapes(self, x: torch.Tensor) -> dict[str, torch.Size]:
        """Shapes of the model's global latent sites (from a prior run at one row of ``x``)."""
        return _latent_shapes(self._prototype(x))

    def predict(
        self,
        x: torch.Tensor,
        *,
        num_samples: int | None = None,
        posterior_samples: Any = None,
        seed: int | None = None,
        chunk_size: int | None = None,
    ) -> Prediction:
        """The posterior predictive at ``x``.

        Args:
            x: inputs (all rows).
            num_samples: draws from the guide (default ``default_num_samples``); not with
                ``posterior_samples``.
            posterior_samples: posterior draws instead of the guide: a dict ``{site: tensor}``
                with one leading draw dimension or ``(chains, draws)`` (SG-MCMC ``Chains.draws``
                or the ``Chains`` object itself, ``pyro.infer.Predictive`` samples). Every latent
                site of the model must be there; sites the model observes or derives (``"y"``,
                ``"f"``) are ignored; any other name is an error.
            seed: seeds the draws (the global random state is restored); None: fresh randomness.
            chunk_size: draws evaluated at once (bounds memory).

        Returns:
            a :class:`~bayesdepth.predictive.RegressionPrediction` or
            :class:`~bayesdepth.predictive.ClassificationPrediction`.
        """
        with pyro_exclusive(f"{type(self).__name__}.predict"):
            return self._predict(x, num_samples, posterior_samples, seed, chunk_size)

    def _predict(self, x, num_samples, posterior_samples, seed, chunk_size) -> Prediction:
        x = self._inputs(x)
        chunk = check_positive_int(
            "chunk_size", self.default_chunk_size if chunk_size is None else chunk_size)
        sites = ("f", *self.likelihood.latent_sites)
        with torch.no_grad(), seeded(seed, x.device):
            if posterior_samples is None:
                total = check_positive_int(
                    "num_samples", self.default_num_samples if num_samples is None else num_samples)
                pieces = [
                    Predictive(self.model, guide=self.guide, num_samples=min(chunk, total - start),
                               parallel=self.vectorized, return_sites=sites)(x)
                    for start in range(0, total, chunk)
                ]
            else:
                if num_samples is not None:
                    raise ValueError("give num_samples or posterior_samples, not both")
                samples = self.flatten_samples(posterior_samples, x)
                total = next(iter(samples.values())).shape[0]
                pieces = []
                for start in range(0, total, chunk):
                    part = {k: v[start:start + chunk] for k, v in samples.items()}
                    pieces.append(Predictive(self.model, posterior_samples=part,
                                             parallel=self.vectorized, return_sites=sites)(x))
        draws = {k: torch.cat([p[k] for p in pieces]) for k in pieces[0]}
        f = draws.pop("f")
        f = f.reshape(f.shape[0], *f.shape[f.dim() - 1 - self.likelihood.f_event_dim:])
        return self.likelihood.summarize(f, draws)

    def flatten_samples(self, posterior_samples: Any, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Validate posterior draws against the model's latent sites; one leading draw dim."""
        draws = getattr(posterior_samples, "draws", posterior_samples)
        if not isinstance(draws, Mapping):
            raise TypeError(
                "posterior_samples must be a dict {site: tensor} (or SG-MCMC Chains), "
                f"got {type(posterior_samples).__name__}"
            )
        trace = self._prototype(x)
        shapes = _latent_shapes(trace)
        with torch.no_grad(), torch.random.fork_rng(devices=_cuda(x)):
            guide_trace = poutine.trace(self.guide).get_trace(x[:1])
        known = {name for tr in (trace, guide_trace) for name, site in tr.nodes.items()
                 if site["type"] == "sample"}  # observed, derived and auxiliary sites too
        unknown = sorted(set(draws) - known)
        missing = sorted(set(shapes) - set(draws))
        if unknown or missing:
            raise ValueError(
                f"posterior_samples must hold the model's latent sites {sorted(shapes)}; "
                + (f"unknown: {unknown}" if unknown else "")
                + ("; " if unknown and missing else "")
                + (f"missing: {missing}" if missing else "")
            )
        out, total = {}, None
        for name, shape in shapes.items():
            value = check_tensor(f"posterior_samples[{name!r}]", torch.as_tensor(draws[name]))
            lead = value.shape[: value.dim() - len(shape)]
            if tuple(value.shape[value.dim() - len(shape):]) != tuple(shape) or len(lead) not in (
                1, 2
            ):
                raise ValueError(
                    f"posterior_samples[{name!r}] must have shape (draws, *{tuple(shape)}) or "
                    f"(chains, draws, *{tuple(shape)}), got {tuple(value.shape)}"
                )
            value = value.reshape(-1, *shape).to(device=x.device)
            if value.is_floating_point():
                value = value.to(x.dtype)
            bad = int((~torch.isfinite(value.reshape(value.shape[0], -1))).any(-1).sum())
            if bad:
                raise ValueError(
                    f"posterior_samples[{name!r}] has non-finite values in {bad} of "
                    f"{value.shape[0]} draws (a stopped chain?); drop those draws first"
                )
            if total is not None and value.shape[0] != total:
                raise ValueError(
                    f"posterior_samples disagree on the number of draws: {total} and "
                    f"{value.shape[0]} ({name!r})"
                )
            total = value.shape[0]
            out[name] = value
        return out

    # ------------------------------------------------------------------ helpers
    def _attach_autoguide(self, example: torch.Tensor, **options: Any) -> None:
        """A mean-field :class:`~pyro.infer.autoguide.AutoNormal` over the latents, as the child
        module ``autoguide``, with its parameters created now (so they are saved and moved)."""
        self.autoguide = AutoNormal(poutine.block(self.model, hide=["y"]), **options)
        with torch.no_grad(), poutine.block(), self.own_parameters():
            self.autoguide(example)


def _cuda(x: torch.Tensor) -> list:
    return [x.device] if x.device.type == "cuda" else []
