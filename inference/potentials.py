r"""Potentials ``U(params, batch) -> (value per chain, aux)`` for the samplers.

The potential is the negative log joint density (docs/theory.md §5.1)

.. math::

    U(\theta) = -\log p(\theta) - \frac{N}{B}\sum_{i \in \text{batch}} \log p(x_i \mid \theta),

evaluated for K chains at once: ``params`` is a dict ``{name: tensor of shape (chains, ...)}`` and
the value has shape ``(chains,)``. Two builders:

- :func:`pyro_potential`: every continuous latent site of a Pyro model, in unconstrained space
  through Pyro's own ``biject_to(site.support)`` transforms plus their log-Jacobian, minibatches
  through the model's ``pyro.plate(..., subsample_size=B)`` (the potential feeds the plate its
  indices, so Pyro's plate scales the likelihood by N/B), and the K chains evaluated as one
  ``torch.func.vmap`` over a Pyro trace of a single chain.
- :func:`module_potential`: an ``nn.Module`` with a log-likelihood and a prior; parameters carried
  as a stacked ``(chains, ...)`` dict and evaluated with ``torch.func.functional_call`` + ``vmap``.

A :class:`Potential` also knows how to draw a minibatch from a generator, how to initialise chains,
how to map parameters to the constrained space reported to ArviZ, and what data it observed.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from torch.distributions import biject_to

from bayesdepth._validation import check_positive, check_positive_int, check_tensor

from .samplers._tree import Params, leaves

__all__ = ["Potential", "module_potential", "pyro_potential"]


class Potential:
    """Base class of potentials over a dict of stacked parameters.

    Subclasses implement :meth:`__call__` and usually :meth:`init` and :meth:`sample_batch`.
    ``shapes`` maps each parameter name to its per-chain shape (used to validate init values).
    """

    shapes: ClassVar[dict[str, torch.Size]] = {}
    observed_data: dict[str, torch.Tensor] | None = None

    def __call__(self, params: Params, batch: Any = None) -> tuple[torch.Tensor, Any]:
        """Potential per chain (shape (chains,)) and auxiliary output."""
        raise NotImplementedError

    def sample_batch(self, num_chains: int, generator: torch.Generator | None) -> Any:
        """Draw the minibatch for one gradient evaluation (None means full batch)."""
        return None

    def init(self, num_chains: int, generator: torch.Generator | None) -> Params:
        """Initial parameters for ``num_chains`` chains."""
        raise NotImplementedError(
            f"{type(self).__name__} has no default initialisation; pass init= to sample()"
        )

    def constrain(self, params: Params) -> dict[str, torch.Tensor]:
        """Parameters as reported to the user (constrained space), detached."""
        if isinstance(params, torch.Tensor):
            return {"theta": params.detach()}
        return {k: v.detach() for k, v in params.items()}

    @property
    def device(self) -> torch.device | None:
        return None

    def to(self, device: torch.device | str) -> Potential:
        """Move the potential's data to ``device`` (default: unsupported unless overridden)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be moved to {device}")

    def check_init(self, params: Params, num_chains: int) -> Params:
        """Validate user-supplied init values against ``shapes`` and ``num_chains``."""
        if not self.shapes:
            return params
        if not isinstance(params, Mapping):
            raise TypeError(f"init must be a dict with keys {sorted(self.shapes)}")
        missing = set(self.shapes) - set(params)
        extra = set(params) - set(self.shapes)
        if missing or extra:
            raise ValueError(
                f"init must have exactly the keys {sorted(self.shapes)}; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        out = {}
        for name, shape in self.shapes.items():
            value = check_tensor(f"init[{name!r}]", params[name], floating=True)
            want = (num_chains, *shape)
            if tuple(value.shape) != want:
                raise ValueError(
                    f"init[{name!r}] must have shape {want} (chains, *unconstrained shape), "
                    f"got {tuple(value.shape)}"
                )
            out[name] = value
        return out

    def grad_fn(self, num_chains: int) -> Callable:
        """A ``grad_fn(params, generator) -> (grad U, U)`` for the samplers (see samplers.base).

        Each call draws one minibatch with :meth:`sample_batch` and differentiates the sum of the
        per-chain potentials (chains are independent, so this gives every chain its own gradient).
        """

        def grad_fn(params: Params, generator: torch.Generator | None):
            batch = self.sample_batch(num_chains, generator)
            with torch.enable_grad():
                if isinstance(params, torch.Tensor):
                    p = params.detach().requires_grad_(True)
                else:
                    p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
                value, _ = self(p, batch)
                grads = torch.autograd.grad(value.sum(), leaves(p))
            if isinstance(p, torch.Tensor):
                return grads[0], value.detach()
            return dict(zip(p.keys(), grads)), value.detach()

        return grad_fn


def subsample_indices(size: int, batch: int, num: int, generator, device) -> torch.Tensor:
    """``num`` rows of ``batch`` distinct indices out of ``size`` (fresh, iid across calls)."""
    if batch >= size:
        return torch.arange(size, device=device).expand(num, size)
    keys = torch.rand(num, size, generator=generator, device=device)
    return keys.topk(batch, dim=-1, sorted=False).indices


# ---------------------------------------------------------------------------------------------
# Pyro models
# ---------------------------------------------------------------------------------------------


class PyroPotential(Potential):
    """Potential of a Pyro model over its continuous latent sites (see :func:`pyro_potential`)."""

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
        self.site_shapes: dict[str, torch.Size] = {}
        self.dtypes: dict[str, torch.dtype] = {}
        self.plates: dict[str, tuple[int, int]] = {}
        self._device = None
        subsampled = set()
        for name, site in proto.nodes.items():
            if site["type"] != "sample":
                continue
            if site_is_subsample(site):
                fn = site["fn"]
                size = int(fn.size)
                batch = size if fn.subsample_size is None else int(fn.subsample_size)
                self.plates[name] = (size, batch)
                self._device = site["value"].device
                if batch < size:
                    subsampled.add(name)
                continue
            if site["is_observed"]:
                continue
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
            self.site_shapes[name] = site["value"].shape
            self.shapes[name] = transform.inv(site["value"]).shape
            self.dtypes[name] = site["value"].dtype
            self._device = site["value"].device
        if not self.transforms:
            raise ValueError("Pyro model has no latent sample sites to sample")
        self.observed_data = self._observed()

    def _observed_trace(self, data: dict[str, torch.Tensor]) -> Any:
        with pyro.validation_enabled(False), torch.no_grad():
            conditioned = poutine.condition(self.model, data=data)
            return poutine.trace(conditioned).get_trace(*self.model_args, **self.model_kwargs)

    def _observed(self) -> dict[str, torch.Tensor] | None:
        """The observed sites' full data: chunks of B indices cover a subsampled plate."""
        subsampled = {n: sb for n, sb in self.plates.items() if sb[1] < sb[0]}
        if len(subsampled) > 1:
            return None  # several subsampled plates: not gathered
        if not subsampled:
            tr = self._observed_trace({})
            return {
                name: site["value"].detach()
                for name, site in tr.nodes.items()
                if site["type"] == "sample" and site["is_observed"] and not site_is_subsample(site)
            }
        ((plate, (size, b)),) = subsampled.items()
        pieces: dict[str, list[torch.Tensor]] = {}
        dims: dict[str, int] = {}
        for start in range(0, size, b):
            lo = min(start, size - b)
            idx = torch.arange(lo, lo + b, device=self._device)
            tr = self._observed_trace({plate: idx})
            for name, site in tr.nodes.items():
                if not (site["type"] == "sample" and site["is_observed"]):
                    continue
                if site_is_subsample(site):
                    continue
                frames = [f for f in site["cond_indep_stack"] if f.name == plate]
                value = site["value"].detach()
                if not frames:
                    pieces.setdefault(name, [value])
                    continue
                dim = frames[0].dim - site["fn"].event_dim
                dims[name] = dim
                keep = start - lo
                pieces.setdefault(name, []).append(value.narrow(dim, keep, b - keep))
        return {
            name: torch.cat(v, dim=dims[name]) if name in dims else v[0]
            for name, v in pieces.items()
        }

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
        new.observed_data = {k: v.to(device) for k, v in self.observed_data.items()}
        return new

    def sample_batch(self, num_chains: int, generator: torch.Generator | None) -> Any:
        """One set of subsample indices per subsampled plate, shared by all chains."""
        batch = {
            name: subsample_indices(size, b, 1, generator, self._device)[0]
            for name, (size, b) in self.plates.items()
            if b < size
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

    def _log_joint(self, unconstrained: dict[str, torch.Tensor], batch: Any) -> torch.Tensor:
        values, log_jac = {}, 0.0
        for name, t in self.transforms.items():
            u = unconstrained[name]
            x = t(u)
            values[name] = x
            log_jac = log_jac + t.log_abs_det_jacobian(u, x).sum()
        data = dict(values)
        if batch is not None:
            data.update(batch)
        conditioned = poutine.condition(self.model, data=data)
        trace = poutine.trace(conditioned).get_trace(*self.model_args, **self.model_kwargs)
        return trace.log_prob_sum(site_filter=lambda _, s: not site_is_subsample(s)) + log_jac

    def __call__(self, params: Params, batch: Any = None) -> tuple[torch.Tensor, Any]:
        with pyro.validation_enabled(False):
            if self.vectorize:
                try:
                    log_joint = torch.func.vmap(self._log_joint, in_dims=(0, None))(params, batch)
                    return -log_joint, None
                except RuntimeError as err:  # e.g. data-dependent control flow in the model
                    warnings.warn(
                        f"torch.func.vmap failed on this Pyro model ({err}); evaluating the "
                        "chains one by one from now on (pass vectorize=False to skip the attempt)",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    self.vectorize = False
            k = next(iter(params.values())).shape[0]
            log_joint = torch.stack(
                [self._log_joint({n: v[i] for n, v in params.items()}, batch) for i in range(k)]
            )
        return -log_joint, None


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
    the model is fed fresh indices (B distinct out of N, drawn from the sampler's generator, shared
    by the chains) at each gradient evaluation, so Pyro scales the likelihood by N/B.

    Args:
        model: a Pyro model; its latent sites must be continuous and outside subsampled plates.
        *model_args, **model_kwargs: the model's arguments (data), fixed for the whole run.
        vectorize: evaluate the chains with one ``torch.func.vmap`` (default); ``False`` loops over
            chains, for models with operations vmap does not support.
        init_radius: chains start at Uniform(-r, r) in unconstrained space.

    Raises:
        ValueError: for a discrete latent site or a latent site inside a subsampled plate (the
            message names the site).
    """
    return PyroPotential(model, model_args, model_kwargs, vectorize, init_radius)


# ---------------------------------------------------------------------------------------------
# nn.Modules
# ---------------------------------------------------------------------------------------------


class ModulePotential(Potential):
    """Potential of an ``nn.Module``, a likelihood and a prior (see :func:`module_potential`)."""

    def __init__(
        self,
        module: torch.nn.Module,
        log_likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        prior: float | Callable[[dict[str, torch.Tensor]], torch.Tensor] = 1.0,
        batch_size: int | None = None,
    ) -> None:
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        self.module = module
        self.log_likelihood = log_likelihood
        self.x = check_tensor("x", x)
        self.y = check_tensor("y", y)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}"
            )
        self.num_data = x.shape[0]
        self.batch_size = (
            self.num_data if batch_size is None else check_positive_int("batch_size", batch_size)
        )
        if self.batch_size > self.num_data:
            raise ValueError(f"batch_size must be <= {self.num_data}, got {batch_size}")
        if callable(prior):
            self.prior, self.prior_scale = prior, None
        else:
            self.prior, self.prior_scale = None, check_positive("prior", prior)
        self.param_names = [n for n, p in module.named_parameters() if p.requires_grad]
        self.shapes = {n: p.shape for n, p in module.named_parameters() if p.requires_grad}
        self.observed_data = {"y": y.detach()}

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: torch.device | str) -> ModulePotential:
        new = copy.copy(self)
        new.module = copy.deepcopy(self.module).to(device)
        new.x, new.y = self.x.to(device), self.y.to(device)
        new.observed_data = {"y": new.y}
        return new

    def sample_batch(self, num_chains: int, generator: torch.Generator | None) -> Any:
        """Independent minibatch indices per chain, shape (chains, B); None for full batches."""
        if self.batch_size >= self.num_data:
            return None
        return subsample_indices(
            self.num_data, self.batch_size, num_chains, generator, self.device
        )

    def init(self, num_chains: int, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Each chain gets the module's own initialisation (``reset_parameters``), re-seeded
        from ``generator``, so chains start apart and the start is reproducible."""
        seeds = torch.randint(
            2**62, (num_chains,), generator=generator, device=self.device
        ).tolist()
        draws: dict[str, list[torch.Tensor]] = {n: [] for n in self.param_names}
        devices = [self.device] if self.device.type == "cuda" else []
        for seed in seeds:
            net = copy.deepcopy(self.module)
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                for sub in net.modules():
                    if hasattr(sub, "reset_parameters"):
                        sub.reset_parameters()
            params = dict(net.named_parameters())
            for n in self.param_names:
                draws[n].append(params[n].detach())
        return {n: torch.stack(v) for n, v in draws.items()}

    def _forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.module, params, (x,))

    def log_prior(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Log prior per chain: the user's callable, or an isotropic N(0, prior^2)."""
        if self.prior is not None:
            return self.prior(params)
        s = self.prior_scale
        total = 0.0
        for v in params.values():
            flat = v.reshape(v.shape[0], -1)
            total = total + torch.distributions.Normal(0.0, s).log_prob(flat).sum(-1)
        return total

    def __call__(self, params: Params, batch: Any = None) -> tuple[torch.Tensor, Any]:
        if batch is None:
            out = torch.func.vmap(self._forward, in_dims=(0, None))(params, self.x)
            target = self.y
        else:
            out = torch.func.vmap(self._forward, in_dims=(0, 0))(params, self.x[batch])
            target = self.y[batch]
        log_lik = self.log_likelihood(out, target)
        log_lik = log_lik.reshape(log_lik.shape[0], -1).sum(-1) * (self.num_data / self.batch_size)
        return -(log_lik + self.log_prior(params)), {"log_likelihood": log_lik.detach()}


def module_potential(
    module: torch.nn.Module,
    log_likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    prior: float | Callable[[dict[str, torch.Tensor]], torch.Tensor] = 1.0,
    batch_size: int | None = None,
) -> ModulePotential:
    r"""The potential of an ``nn.Module`` regression or classifier over K chains.

    .. math:: U(\theta) = -\log p(\theta) - \frac{N}{B}\sum_{i\in\text{batch}}
        \ell(f_\theta(x_i), y_i)

    Parameters are a dict ``{parameter name: tensor (chains, *shape)}``; the forward pass of all
    chains is one ``torch.func.vmap`` over ``torch.func.functional_call(module, params, (x,))``,
    each chain with its own minibatch of ``batch_size`` distinct indices.

    Args:
        module: the network; its trainable parameters are sampled, its buffers are shared.
        log_likelihood: ``(output, target) -> log p(target | output)`` per example, called on the
            stacked output of shape ``(chains, B, ...)`` and targets of shape ``(chains, B, ...)``
            (``(N, ...)`` for full batches); the result is summed over all but the chain dimension.
        x, y: the training inputs and targets (N rows).
        prior: a number ``s`` for an isotropic ``N(0, s^2)`` prior on every parameter, or a
            callable ``params -> log p(params)`` of shape ``(chains,)`` on the stacked dict.
        batch_size: minibatch size B (None: full batch).
    """
    return ModulePotential(module, log_likelihood, x, y, prior, batch_size)
