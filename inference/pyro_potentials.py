r"""The potential of a Pyro model over its continuous latent sites (docs/theory.md §5.1).

Every latent site is sampled in unconstrained space through Pyro's own
``biject_to(site.support)`` transform, so ``U(u) = -log p(x, data) - log|det dx/du|`` with
``x = biject_to(support)(u)``. Minibatches go through the model's
``pyro.plate(name, N, subsample_size=B)``: the potential feeds every chain *its own* ``B``
distinct indices at every gradient call (indices of shape ``(chains, B)``) and Pyro's plate scales
the likelihood by ``N / B``. The K chains are one ``torch.func.vmap`` over a Pyro trace of a
single chain, the per-chain indices a batched argument of that same vmap.

After sampling, :meth:`PyroPotential.pointwise` evaluates every draw on the *whole* data set:
a subsampled plate is covered by ``ceil(N / B)`` index chunks of the model's own size ``B`` (the
last one overlapping), all chunks and a chunk of draws again one vmap. It returns the pointwise
log-likelihood ``log p(y_i | theta)`` of every observed site (``site["fn"].log_prob`` at the
observation, as Pyro computes it), the values of the deterministic sites
(``pyro.deterministic``). :meth:`PyroPotential.posterior_predictive` draws every observation anew
at every draw (``pyro.infer.Predictive`` with the observations released) and
:meth:`PyroPotential.prior` draws the latent sites from the prior.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from torch.distributions import biject_to

from bayesdepth._validation import check_positive, check_positive_int
from bayesdepth.anode import ODESolverError

from .potentials import Pointwise, Potential, over_draws, seeded_torch, subsample_indices
from .samplers._tree import Params

__all__ = ["PyroPotential", "pyro_potential"]


def _is_deterministic(site: dict) -> bool:
    return bool(site["infer"].get("_deterministic"))


def _index(tree: Any, i: int) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree[i]
    if isinstance(tree, Mapping):
        return {k: _index(v, i) for k, v in tree.items()}
    return tree


def _stack(outputs: list[Any]) -> Any:
    if isinstance(outputs[0], torch.Tensor):
        return torch.stack(outputs)
    return {k: torch.stack([o[k] for o in outputs]) for k in outputs[0]}


def _plate_dims(site: dict, subsampled: set[str]) -> tuple[int | None, int | None]:
    """Where the subsampled plate lies in a site's value and in its log-density (negative axes;
    None outside the plate).

    The log-density has the distribution's batch shape, so the plate is the frame's own ``dim``.
    In the value it is that dim left of the event dims, unless the event dims swallowed it (a
    ``pyro.deterministic`` without ``event_dim`` declares its whole value an event): then the
    plates are taken as the value's leading dims, in the order of their frames.
    """
    frames = [f for f in site["cond_indep_stack"] if f.name in subsampled]
    if not frames:
        return None, None
    dim, value = frames[0].dim, site["value"]
    batch_ndim = value.dim() - site["fn"].event_dim
    if -dim <= batch_ndim:
        return dim - site["fn"].event_dim, dim
    leading = max(-f.dim for f in site["cond_indep_stack"])
    return leading + dim - value.dim(), dim


class PyroPotential(Potential):
    """Potential of a Pyro model over its continuous latent sites (see :func:`pyro_potential`)."""

    uses_pyro = True

    def __init__(
        self,
        model: Callable,
        model_args: tuple = (),
        model_kwargs: dict | None = None,
        vectorize: bool = True,
        init_radius: float = 2.0,
    ) -> None:
        self.model = model
        self.model_args = tuple(model_args)
        self.model_kwargs = dict(model_kwargs or {})
        self.vectorize = bool(vectorize)
        self.init_radius = check_positive("init_radius", init_radius)
        with pyro.validation_enabled(False), torch.no_grad():
            proto = poutine.trace(model).get_trace(*self.model_args, **self.model_kwargs)
        self.transforms: dict[str, Any] = {}
        self.shapes = {}
        self.dtypes: dict[str, torch.dtype] = {}
        self.site_shapes: dict[str, torch.Size] = {}
        self.plates: dict[str, tuple[int, int]] = {}
        self._device = None
        for name, site in proto.nodes.items():
            if site["type"] == "sample" and site_is_subsample(site):
                fn = site["fn"]
                size = int(fn.size)
                batch = size if fn.subsample_size is None else int(fn.subsample_size)
                self.plates[name] = (size, batch)
                self._device = site["value"].device
        subsampled = {n for n, (size, b) in self.plates.items() if b < size}
        #: observed and deterministic sites: name -> dimension of the subsampled plate in the
        #: value and in the log-density (None: outside it)
        self.observed_sites: dict[str, tuple[int | None, int | None]] = {}
        self.deterministic_sites: dict[str, tuple[int | None, int | None]] = {}
        self.value_shapes: dict[str, torch.Size] = {}
        for name, site in proto.nodes.items():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            if site["is_observed"]:
                kind = self.deterministic_sites if _is_deterministic(site) else self.observed_sites
                kind[name] = _plate_dims(site, subsampled)
                self.value_shapes[name] = site["value"].shape  # on one minibatch
                continue
            self._add_latent(name, site, subsampled)
        if not self.transforms:
            raise ValueError("Pyro model has no latent sample sites to sample")
        self.observed_data = self._observed(proto)

    def _add_latent(self, name: str, site: dict, subsampled: set[str]) -> None:
        fn = site["fn"]
        if fn.support.is_discrete or getattr(fn, "has_enumerate_support", False):
            raise ValueError(
                f"Pyro model has a discrete latent site {name!r} ({type(fn).__name__}); "
                "SG-MCMC needs continuous latent sites: marginalise it out or observe it"
            )
        plates = [f.name for f in site["cond_indep_stack"] if f.name in subsampled]
        if plates:
            raise ValueError(
                f"latent site {name!r} lies inside the subsampled plate {plates[0]!r}; "
                "SG-MCMC samples global latents only (remove the subsampling or the site)"
            )
        transform = biject_to(fn.support)
        self.transforms[name] = transform
        self.shapes[name] = transform.inv(site["value"]).shape
        self.site_shapes[name] = site["value"].shape
        self.dtypes[name] = site["value"].dtype
        self._device = site["value"].device

    # ------------------------------------------------------------------ vmap or a loop
    def _map(self, fn: Callable, args: tuple, in_dims: tuple,
             loop_fn: Callable | None = None) -> Any:
        """``vmap(fn, in_dims)(*args)``, or a loop of ``loop_fn`` (default ``fn``) over the
        batched arguments when the model cannot be vmapped (then ``vectorize`` turns off, with
        one warning)."""
        with pyro.validation_enabled(False):
            if self.vectorize:
                try:
                    return torch.func.vmap(fn, in_dims=in_dims)(*args)
                except RuntimeError as err:  # e.g. data-dependent control flow in the model
                    warnings.warn(
                        f"torch.func.vmap failed on this Pyro model ({err}); evaluating the "
                        "chains one by one from now on (pass vectorize=False to skip the attempt)",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    self.vectorize = False
            first = next(a for a, d in zip(args, in_dims) if d is not None)
            size = (next(iter(first.values())) if isinstance(first, Mapping) else first).shape[0]
            each = fn if loop_fn is None else loop_fn
            outputs = [
                each(*(_index(a, i) if d is not None else a for a, d in zip(args, in_dims)))
                for i in range(size)
            ]
            return _stack(outputs)

    # ------------------------------------------------------------------ the potential
    @property
    def device(self) -> torch.device | None:
        return self._device

    def to(self, device: torch.device | str) -> PyroPotential:
        def move(x):
            return x.to(device) if isinstance(x, torch.Tensor) else x

        new = copy.copy(self)
        new.model_args = tuple(move(a) for a in self.model_args)
        new.model_kwargs = {k: move(v) for k, v in self.model_kwargs.items()}
        new._device = torch.device(device)
        if self.observed_data is not None:
            new.observed_data = {k: v.to(device) for k, v in self.observed_data.items()}
        return new

    @property
    def _subsampled(self) -> dict[str, tuple[int, int]]:
        return {n: sb for n, sb in self.plates.items() if sb[1] < sb[0]}

    def sample_batch(self, num_chains: int, generator: torch.Generator | None) -> Any:
        """Per subsampled plate, independent indices for every chain: ``{plate: (chains, B)}``."""
        batch = {
            name: subsample_indices(size, b, num_chains, generator, self._device)
            for name, (size, b) in self._subsampled.items()
        }
        return batch or None

    def init(self, num_chains: int, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Uniform(-r, r) in unconstrained space (as Pyro's ``init_to_uniform``)."""
        r = self.init_radius
        out = {}
        for name, shape in self.shapes.items():
            u = torch.rand(
                (num_chains, *shape),
                generator=generator,
                device=self._device,
                dtype=self.dtypes[name],
            )
            out[name] = (2 * u - 1) * r
        return out

    def constrain(self, params: Params) -> dict[str, torch.Tensor]:
        return {name: t(params[name]).detach() for name, t in self.transforms.items()}

    def _trace(self, data: dict[str, torch.Tensor]) -> Any:
        conditioned = poutine.condition(self.model, data=data)
        return poutine.trace(conditioned).get_trace(*self.model_args, **self.model_kwargs)

    def _log_joint(self, unconstrained: dict[str, torch.Tensor], batch: Any) -> torch.Tensor:
        values, log_jac = {}, 0.0
        for name, t in self.transforms.items():
            u = unconstrained[name]
            x = t(u)
            values[name] = x
            log_jac = log_jac + t.log_abs_det_jacobian(u, x).sum()
        if batch is not None:
            values.update(batch)
        trace = self._trace(values)
        return trace.log_prob_sum(site_filter=lambda _, s: not site_is_subsample(s)) + log_jac

    def _log_joint_or_nan(self, unconstrained: dict[str, torch.Tensor],
                          batch: Any) -> torch.Tensor:
        """One chain's log joint; NaN when its ODE solve gave up, so that the runner stops this
        chain (``on_nonfinite="stop_chain"``) and not the whole run."""
        try:
            return self._log_joint(unconstrained, batch)
        except ODESolverError:
            anchor = sum(u.sum() for u in unconstrained.values()) * 0.0  # keeps the graph
            return anchor + float("nan")

    def __call__(self, params: Params, batch: Any = None) -> tuple[torch.Tensor, Any]:
        in_dims = (0, None if batch is None else 0)
        value = self._map(self._log_joint, (params, batch), in_dims,
                          loop_fn=self._log_joint_or_nan)
        return -value, None

    # ------------------------------------------------------------------ evaluating draws
    def _chunks(self) -> tuple[str | None, torch.Tensor | None, torch.Tensor | None]:
        """The subsampled plate, index chunks (chunks, B) covering it, and where row r of the
        data lies in the flattened chunks."""
        plates = self._subsampled
        if not plates:
            return None, None, None
        if len(plates) > 1:
            raise NotImplementedError(
                f"evaluating every observation needs at most one subsampled plate, the model "
                f"has {sorted(plates)}"
            )
        ((plate, (size, b)),) = plates.items()
        count = math.ceil(size / b)
        lo = torch.clamp(torch.arange(count) * b, max=size - b)
        chunks = lo[:, None] + torch.arange(b)
        rows = torch.arange(size)
        which = torch.clamp(rows // b, max=count - 1)
        position = which * b + rows - lo[which]
        return plate, chunks.to(self._device), position.to(self._device)

    def _evaluate(self, values: dict, index: Any) -> dict[str, torch.Tensor]:
        """One draw (constrained ``values``) on one index chunk: ``log p(y_i)`` and the value of
        every observed site, the value of every deterministic site."""
        trace = self._trace({**values, **(index or {})})
        out = {}
        for name in self.observed_sites:
            site = trace.nodes[name]
            out[f"log_likelihood:{name}"] = site["fn"].log_prob(site["value"])
            out[f"observed:{name}"] = site["value"]
        for name in self.deterministic_sites:
            out[f"derived:{name}"] = trace.nodes[name]["value"]
        return out

    def _join(self, out: dict[str, torch.Tensor], position: torch.Tensor) -> dict:
        """Fold ``{kind:site: (n, chunks, *per-chunk shape)}`` into ``(n, *full shape)``."""
        joined = {}
        for key, t in out.items():
            kind, name = key.split(":", 1)
            value_dim, logp_dim = {**self.observed_sites, **self.deterministic_sites}[name]
            dim = logp_dim if kind == "log_likelihood" else value_dim
            if dim is None:
                joined[key] = t[:, 0]
                continue
            axis = t.dim() - 1 + dim  # the plate's axis once the chunk axis is folded in
            t = t.movedim(1, axis).flatten(axis, axis + 1)
            joined[key] = t.index_select(axis, position)
        return joined

    def _on_all_rows(self, values: dict) -> dict[str, torch.Tensor]:
        """:meth:`_evaluate` for a batch of draws ``{site: (n, ...)}``, every row of the data."""
        plate, chunks, position = self._chunks()
        if plate is None:
            return self._map(lambda v: self._evaluate(v, None), (values,), (0,))

        def on_chunks(v):
            return self._map(lambda idx: self._evaluate(v, {plate: idx}), (chunks,), (0,))

        return self._join(self._map(on_chunks, (values,), (0,)), position)

    def _observed(self, proto: Any) -> dict[str, torch.Tensor] | None:
        """The observed sites' full data (not the deterministic ones), from one evaluation."""
        if len(self._subsampled) > 1:
            return None  # several subsampled plates: not gathered
        if not self._subsampled:
            return {n: proto.nodes[n]["value"].detach() for n in self.observed_sites}
        values = {n: proto.nodes[n]["value"].detach()[None] for n in self.transforms}
        with torch.no_grad():
            out = self._on_all_rows(values)
        return {k.split(":", 1)[1]: v[0] for k, v in out.items() if k.startswith("observed:")}

    def pointwise(self, draws: Mapping[str, torch.Tensor], chunk_size: int = 64) -> Pointwise:
        """Pointwise log-likelihood of every observed site and the deterministic sites, at every
        row of the data (see the module docstring and :meth:`Potential.pointwise`)."""
        latent = {n: draws[n] for n in self.transforms}
        out = over_draws(self._on_all_rows, latent, chunk_size, self._device)
        groups: dict[str, dict[str, torch.Tensor]] = {"log_likelihood": {}, "derived": {}}
        for key, value in out.items():
            kind, name = key.split(":", 1)
            if kind in groups:
                groups[kind][name] = value
        return Pointwise(groups["log_likelihood"], groups["derived"])

    def posterior_predictive(
        self, draws: Mapping[str, torch.Tensor], seed: int | None = None
    ) -> dict[str, torch.Tensor]:
        """A new draw of every observed site at every posterior draw, over all rows.

        ``pyro.infer.Predictive`` over the draws runs the model with its observations released
        (``poutine.uncondition``); a subsampled plate is covered chunk by chunk. Results are
        ``{site: (chains, draws, *observed shape)}`` on the CPU.
        """
        lead = tuple(next(iter(draws.values())).shape[:2])
        flat = {n: draws[n].reshape(-1, *draws[n].shape[2:]).to(self._device)
                for n in self.transforms}
        plate, chunks, position = self._chunks()
        sites = list(self.observed_sites)

        def predict(index: torch.Tensor | None) -> dict[str, torch.Tensor]:
            model = poutine.uncondition(self.model)
            if index is not None:
                model = poutine.condition(model, data={plate: index})
            run = pyro.infer.Predictive(model, posterior_samples=flat, return_sites=sites)
            out = run(*self.model_args, **self.model_kwargs)  # (draws, plate padding, *value)
            return {k: v.reshape(v.shape[0], *self.value_shapes[k]) for k, v in out.items()}

        with seeded_torch(seed, self._device), pyro.validation_enabled(False):
            if plate is None:
                out = {f"predictive:{k}": v for k, v in predict(None).items()}
            else:
                parts = [predict(index) for index in chunks]
                stacked = {f"predictive:{k}": torch.stack([p[k] for p in parts], 1)
                           for k in sites}
                out = self._join(stacked, position)
        return {k.split(":", 1)[1]: v.detach().cpu().reshape(*lead, *v.shape[1:])
                for k, v in out.items()}

    def prior(self, num_samples: int, seed: int | None = None) -> dict[str, torch.Tensor]:
        """``num_samples`` draws of the latent sites from the prior (``pyro.infer.Predictive``),
        each of shape ``(num_samples, *site shape)`` on the CPU."""
        num_samples = check_positive_int("num_samples", num_samples)
        sites = list(self.transforms)
        with seeded_torch(seed, self._device), pyro.validation_enabled(False):
            draws = pyro.infer.Predictive(self.model, num_samples=num_samples, return_sites=sites)(
                *self.model_args, **self.model_kwargs
            )
        return {k: v.detach().cpu().reshape(num_samples, *self.site_shapes[k])
                for k, v in draws.items()}


def pyro_potential(
    model: Callable,
    *model_args: Any,
    vectorize: bool = True,
    init_radius: float = 2.0,
    **model_kwargs: Any,
) -> PyroPotential:
    """The potential of a Pyro model over all its continuous latent sites.

    Parameters are unconstrained values ``u`` per site, ``x = biject_to(support)(u)``, and
    ``U(u) = -log p(x, data) - log|det dx/du|``. Every ``pyro.plate(name, N, subsample_size=B)`` in
    the model is fed fresh indices at each gradient evaluation: ``B`` distinct out of ``N`` for
    every chain independently (shape ``(chains, B)``, drawn from the sampler's generator), so
    Pyro scales the likelihood by ``N/B`` and the chains' gradient noise is independent.

    Args:
        model: a Pyro model; its latent sites must be continuous and outside subsampled plates.
        *model_args: the model's positional arguments (data), fixed for the whole run.
        vectorize: evaluate the chains with one ``torch.func.vmap`` (default); ``False`` loops over
            chains, for models with operations vmap does not support.
        init_radius: chains start at Uniform(-r, r) in unconstrained space.
        **model_kwargs: the model's keyword arguments (e.g. ``subsample_size=B``).

    Raises:
        ValueError: for a discrete latent site or a latent site inside a subsampled plate (the
            message names the site).
    """
    return PyroPotential(model, model_args, model_kwargs, vectorize, init_radius)
