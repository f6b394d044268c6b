"""``SDEBNNBlock``: a hidden state driven by any network whose weights follow an SDE in depth.

Xu, Chen, Li, Duvenaud, "Infinitely Deep Bayesian Neural Networks with Stochastic Differential
Equations" (AISTATS 2022), equation (4) (docs/theory.md §8):

    dh/dt = f_h(t, h; w(t)),   dw = f_w(t, w) dt + sigma dB,   t in [0, 1],

where ``f_h`` is an ordinary ``nn.Module`` (a *field*: any of :mod:`bayesdepth.sde.fields` or
your own) and ``w(t)`` is the flattened vector of all its parameters, or of a named subset
(:class:`~bayesdepth.sde.weights.FieldWeights`; the field is evaluated at the path's values with
``torch.func.functional_call``). The other parameters stay point estimates, or take ``PyroSample``
priors if the field is a ``PyroModule``. The weight path is *one Pyro sample site* (named
``"<block name>.w"``), global: it sits outside the data plate and one path is shared by a whole
minibatch. The prior at that site is the OU chain, the guide puts the posterior chain (an
:class:`~bayesdepth.sde.paths.EulerPath`, the exact Euler–Maruyama chain) there, so
``log q - log p`` is the discrete Girsanov sum and any Pyro ELBO trains it. Given the sampled
path, ``h`` is integrated on the *same grid* by :class:`~bayesdepth.sde.solver.StateSolver`
(Euler, Heun or midpoint on the path values; optional gradient checkpointing and
``torch.compile``).

Start of the weight path: by default ``w(0)`` is a learned point estimate (as in the paper),
initialised at the field's own initial parameters; with ``w0="normal"`` it is a latent with prior
``N(mu, w0_prior_scale^2 I)`` and a mean-field Normal guide ``N(m, diag(s^2))``, sampled at the
site ``"<block name>.w0"``. The prior mean ``mu`` is 0 (``w0_prior_mean="zero"``) or a
hyperparameter fit by maximising the ELBO (``"learned"``, empirical Bayes): the ELBO's optimum
over ``mu`` is ``mu = m``, so the prior and the guide share the one parameter ``w0_loc`` and the KL
of ``w(0)``, ``sum_j [log(w0_prior_scale / s_j) + s_j^2 / (2 w0_prior_scale^2) - 1/2]``, prices
only the variances (docs/sdebnn.md).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule, pyro_method
from torch import nn
from torch.nn import functional as F

from .._validation import (
    check_choice,
    check_fits_in_memory,
    check_positive,
    check_positive_int,
    check_shape,
)
from ..serialization import Recorded
from .paths import EulerPath, Simulator, check_grid
from .processes import BottleneckDrift, OUPrior, PosteriorDrift
from .solver import StateSolver
from .weights import FieldWeights, strip_trailing_ones

__all__ = ["SDEBNNBlock"]

#: plates that vectorise whole model runs (particles, predictive draws), not data
_VECTORIZING_PLATES = ("num_particles_vectorized", "_num_predictive_samples")


def _check_no_data_plate(what: str) -> None:
    frames = [f.name for f in poutine.runtime.get_plates() if f.name not in _VECTORIZING_PLATES]
    if frames:
        raise RuntimeError(
            f"{what} was called inside the plate(s) {frames}: a weight path is a global latent "
            "(one path per model run, shared by the minibatch), so it must be sampled outside "
            "the data plate. Call path = block.model_part() (and block.guide_part() in the "
            "guide) before the plate and block.integrate(h, path) inside it"
        )


def _check_same_shape(what: str, out, like: torch.Tensor, where: str = "") -> None:
    if not isinstance(out, torch.Tensor) or out.shape != like.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{what}, got {got}{where}")


class SDEBNNBlock(Recorded, PyroModule):
    """One SDE-BNN block: ``h(t_K)`` from ``h(t_0)`` through ``dh/dt = f_h(t, h; w(t))``.

    Use it inside your own Pyro model and guide::

        path = block.model_part()        # in the model, outside the data plate
        with pyro.plate("data", n, subsample_size=b) as idx:
            h = block.integrate(h0[idx], path)
        ...
        block.guide_part()               # in the guide

    ``block(h)`` does ``integrate(h, model_part())`` in one call; it raises when a data plate
    is open (the path would be drawn once per data point).

    Args:
        field: an ``nn.Module`` computing ``dh/dt`` from ``(t, h)`` or ``h``, mapping states
            ``(n, *state)`` to the same shape (:mod:`bayesdepth.sde.fields`, or your own:
            decorate its class with :func:`bayesdepth.saveable` to save the model).
        in_shape: shape of one incoming state: an int ``d`` for vectors ``(n, d)``, ``(C, L)``
            for sequences, ``(C, H, W)`` for images. The field sees ``state = in_shape`` with
            ``augment`` more features/channels.
        path_parameters: names (as in ``field.named_parameters()``) of the parameters forming
            w(t); default all. The others stay point estimates (or ``PyroSample`` priors).
        augment: zeros appended to ``h``'s first (feature/channel) dim on entry (ANODE-style
            augmentation, Dupont et al. 2019).
        steps: number K of grid steps on ``[0, t1]`` (uniform grid), or pass ``grid``.
        prior: the prior process (:class:`OUPrior`; default ``OUPrior(sigma=0.1)``).
        posterior: the correction ``g_phi(t, w)`` added to the prior drift (any ``nn.Module``
            drift); default :class:`BottleneckDrift` with ``rank``/``drift_hidden``.
        solver: a :class:`~bayesdepth.sde.StateSolver` (method, gradient checkpointing,
            compilation) or a method name ``"euler"`` (default), ``"heun"``, ``"midpoint"``.
        w0: ``"point"`` (learned point estimate, default) or ``"normal"`` (a latent).
        w0_prior_scale: prior standard deviation of ``w(0)`` (``w0="normal"``).
        w0_prior_mean: ``"zero"`` or ``"learned"`` (empirical Bayes; ``w0="normal"``).
        grid: explicit strictly increasing times (overrides ``steps``/``t1``).
        name: site-name prefix when the block is not a child of another ``PyroModule``.
        simulator: how weight paths are drawn, ``simulator(drift, sigma, grid, w0, eps) ->
            (K+1, batch, d)``; default :func:`~bayesdepth.sde.paths.euler_chain`;
            :func:`~bayesdepth.sde.paths.sdeint_euler` runs torchsde,
            :class:`~bayesdepth.sde.CompiledEuler` compiles the chain. A replacement must
            produce exactly the Euler–Maruyama chain from the increments ``eps``
            (docs/theory.md §8.10).

    Raises:
        ValueError / TypeError: bad arguments, naming the argument, the value and what is
            allowed; a field whose output shape differs from its input's (checked here on zeros
            of the state shape).
    """

    def __init__(
        self,
        field: nn.Module,
        in_shape: int | Sequence[int],
        *,
        path_parameters: Sequence[str] | None = None,
        augment: int = 0,
        steps: int = 20,
        t1: float = 1.0,
        prior: OUPrior | None = None,
        posterior: nn.Module | None = None,
        solver: StateSolver | str = "euler",
        w0: str = "point",
        w0_prior_scale: float = 1.0,
        w0_prior_mean: str = "zero",
        rank: int = 16,
        drift_hidden: int = 32,
        grid: torch.Tensor | None = None,
        name: str = "block",
        simulator: Simulator | None = None,
    ) -> None:
        super().__init__(name)
        self.in_shape = check_shape("in_shape", in_shape)
        self.augment = check_positive_int("augment", augment, minimum=0)
        self.state_shape = (self.in_shape[0] + self.augment, *self.in_shape[1:])
        if grid is None:
            steps = check_positive_int("steps", steps)
            t1 = check_positive("t1", t1)
        else:
            check_grid(grid)
            steps = grid.numel() - 1
        self.solver = StateSolver.of(solver)
        self.w0_mode = check_choice("w0", w0, ("point", "normal"))
        self.w0_prior_scale = check_positive("w0_prior_scale", w0_prior_scale)
        self.w0_prior_mean = check_choice("w0_prior_mean", w0_prior_mean, ("zero", "learned"))
        self.block_name = name
        prior = OUPrior(sigma=0.1) if prior is None else prior
        if not isinstance(prior, nn.Module) or not hasattr(prior, "sigma"):
            raise TypeError(f"prior must be an OUPrior-like nn.Module with .sigma, got {prior!r}")
        self.prior = prior

        self.weights = FieldWeights(field, path_parameters)
        self._check_field(field)
        init = self.weights.initial(field)
        self.weights.take_off(field)
        self.field = field
        self.num_weights = self.weights.num_weights
        check_fits_in_memory(
            f"steps={steps} with {self.num_weights} path weights",
            3 * (steps + 1) * self.num_weights * init.element_size(),
            "one weight path, its noise and the drift values saved for the gradient",
        )
        grid = torch.linspace(0.0, t1, steps + 1) if grid is None else grid.detach().clone()
        self.register_buffer("grid", grid)
        if self.w0_mode == "point":
            self.w0 = nn.Parameter(init)
        else:
            self.w0_loc = nn.Parameter(init)
            self.w0_log_scale = nn.Parameter(torch.full_like(init, math.log(1e-3)))
        if posterior is None:
            posterior = BottleneckDrift(self.num_weights, rank=rank, hidden=drift_hidden)
        elif not isinstance(posterior, nn.Module):
            raise TypeError(
                f"posterior must be an nn.Module drift g(t, w), got {type(posterior).__name__}"
            )
        self.posterior = PosteriorDrift(prior, posterior)
        self._check_drift(posterior)
        if simulator is not None and not callable(simulator):
            raise TypeError(f"simulator must be callable, got {type(simulator).__name__}")
        self.simulator = simulator
        self._compiled: dict = {}

    # ---------------------------------------------------------------- checks
    def _check_field(self, field: nn.Module) -> None:
        field = copy.deepcopy(field)  # a Pyro module that ran once can no longer be attached
        like = next(iter(field.parameters()), torch.zeros(()))
        h = torch.zeros(2, *self.state_shape, dtype=like.dtype, device=like.device)
        args = (torch.zeros((), dtype=h.dtype, device=h.device),) if self.weights.takes_time \
            else ()
        with torch.no_grad(), poutine.block(), torch.random.fork_rng(devices=[]):
            try:
                out = field(*args, h)
            except Exception as exc:  # a field that cannot take states of this shape at all
                call = "field(t, h)" if args else "field(h)"
                raise ValueError(
                    f"field must map states h of shape (n, {', '.join(map(str, self.state_shape))})"
                    f" to the same shape; calling {call} on zeros failed: {exc}"
                ) from exc
        _check_same_shape(f"field must return dh/dt with the shape of h {tuple(h.shape)}", out,
                          h, f" from {type(field).__name__}")

    def _check_drift(self, drift: nn.Module) -> None:
        w = torch.zeros(2, self.num_weights)
        with torch.no_grad():
            try:
                out = drift(torch.zeros(()), w.to(next(drift.parameters(), w).dtype))
            except Exception as exc:  # a drift that cannot take (t, w) at all
                raise ValueError(
                    f"posterior drift must accept (t, w) with w of shape "
                    f"(..., {self.num_weights}); calling it failed: {exc}"
                ) from exc
        _check_same_shape(f"posterior drift must return the shape of w {tuple(w.shape)}", out, w)

    # ---------------------------------------------------------------- sample sites
    def _site(self, suffix: str) -> str:
        prefix = self._pyro_name or self.block_name
        return f"{prefix}.{suffix}"

    @property
    def sigma(self) -> float:
        return float(self.prior.sigma)

    def prior_path(self, w0: torch.Tensor) -> EulerPath:
        """The prior chain started at ``w0``."""
        return EulerPath(self.prior, self.sigma, self.grid, w0, simulate=self.simulator)

    def posterior_path(self, w0: torch.Tensor, generator: torch.Generator | None = None):
        """The posterior chain started at ``w0``."""
        return EulerPath(
            self.posterior, self.sigma, self.grid, w0, generator=generator, simulate=self.simulator
        )

    def forward(self, h: torch.Tensor | None = None, guide: bool = False):
        if guide:
            _check_no_data_plate("SDEBNNBlock.guide_part()")
            return self._guide_part()
        _check_no_data_plate("SDEBNNBlock.model_part()" if h is None else "SDEBNNBlock(h)")
        path = self._model_part()
        return path if h is None else self.integrate(h, path)

    def model_part(self) -> torch.Tensor:
        """Sample the weight path at site ``"<name>.w"`` under the prior (outside any data plate).

        Returns the full path ``(..., K+1, d_w)`` (start included).
        """
        return self(None)

    def guide_part(self) -> torch.Tensor:
        """Sample the weight path at the same site under the posterior (call it in the guide)."""
        return self(guide=True)

    def _model_part(self) -> torch.Tensor:
        if self.w0_mode == "point":
            w0 = self.w0
        else:
            loc = self.w0_loc if self.w0_prior_mean == "learned" else torch.zeros_like(self.w0_loc)
            base = dist.Normal(loc, torch.full_like(loc, self.w0_prior_scale)).to_event(1)
            w0 = pyro.sample(self._site("w0"), base)
        sampled = self.weights.sample(self.field, self._site("field"))
        path = self.prior_path(w0)
        full = path.with_start(pyro.sample(self._site("w"), path))
        if sampled is None:
            return full
        # The field's PyroSample latents, constant in depth, as extra columns of the path.
        lead = torch.broadcast_shapes(full.shape[:-2], sampled.shape[:-1])
        steps = full.shape[-2]
        sampled = sampled.unsqueeze(-2).expand(*lead, steps, sampled.shape[-1])
        return torch.cat([full.expand(*lead, *full.shape[-2:]), sampled], dim=-1)

    def _guide_part(self) -> torch.Tensor:
        if self.w0_mode == "point":
            w0 = self.w0
        else:
            base = dist.Normal(self.w0_loc, self.w0_log_scale.exp()).to_event(1)
            w0 = pyro.sample(self._site("w0"), base)
        path = self.posterior_path(w0)
        return path.with_start(pyro.sample(self._site("w"), path))

    def point_path(self) -> torch.Tensor:
        """The constant path ``w(t) = w(0)`` (``(K+1, d_w)``): the same architecture as a
        deterministic ODE-net (``w0="point"``) or a mean-field Bayesian one (at a ``w(0)``
        draw)."""
        w0 = self.w0 if self.w0_mode == "point" else self.w0_loc
        return w0.expand(self.grid.numel(), -1)

    # ---------------------------------------------------------------- hidden state
    def _evaluate(self, t: torch.Tensor, h: torch.Tensor, weights: dict) -> torch.Tensor:
        first = next(iter(weights.values()))
        lead = first.shape[: first.dim() - len(self.weights.shapes[0])]
        field = self._modules["field"]  # plain access: no Pyro statements per step
        rows = len(self.state_shape) + 1
        out = self.weights.evaluate(field, t, h, weights, lead, rows - 1)
        if out.shape[out.dim() - rows:] != h.shape[h.dim() - rows:]:
            raise ValueError(
                f"field must return dh/dt with the shape of h {tuple(h.shape)}, got "
                f"{tuple(out.shape)} from {type(field).__name__}"
            )
        return out

    def check_state(self, h: torch.Tensor) -> None:
        """Raise unless ``h`` has shape ``(..., n, *in_shape)`` and a floating dtype."""
        k = len(self.in_shape)
        if not isinstance(h, torch.Tensor) or h.dim() < k + 1 or \
                tuple(h.shape[h.dim() - k:]) != self.in_shape:
            got = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            raise ValueError(
                f"h must have shape (..., n, {', '.join(map(str, self.in_shape))}), got {got}"
            )
        if not h.is_floating_point():
            raise TypeError(f"h must have a floating-point dtype, got {h.dtype}")

    @pyro_method
    def integrate(self, h: torch.Tensor, path: torch.Tensor) -> torch.Tensor:
        """Integrate ``h`` over the grid given a full weight path ``(..., K+1, d_w)``.

        ``h`` has shape ``(..., n, *in_shape)``; leading dims of the path (sample or particle
        dims, trailing singleton plate dims dropped) broadcast against ``h``'s, each set of
        weights applied to its own copy of the rows (``torch.vmap``). Returns ``h(t_K)`` of
        shape ``(..., n, *state_shape)``. With ``PyroSample`` priors on the field, pass the
        tensor :meth:`model_part` returned (the path plus the sampled values).
        """
        self.check_state(h)
        width = self.num_weights + self.weights.num_sampled
        if path.shape[-2:] != (self.grid.numel(), width):
            what = "d_w weights" + (
                f" + {self.weights.num_sampled} PyroSample values" if width > self.num_weights
                else "")
            raise ValueError(
                f"path must have shape (..., {self.grid.numel()}, {width}) (K+1 grid times, "
                f"{what}), got {tuple(path.shape)}"
            )
        if self.augment:
            pad = [0, 0] * (len(self.in_shape) - 1) + [0, self.augment]
            h = F.pad(h, pad)
        lead = strip_trailing_ones(path.shape[:-2])
        path = path.reshape(*lead, *path.shape[-2:])
        weights = {n: v.movedim(len(lead), 0) for n, v in self.weights.unflatten(path).items()}
        _ = self.field  # read through the PyroModule: registers the field's other parameters
        return self.solver.integrate(self._evaluate, h, self.grid, weights, self._compiled)
