"""``SDEBNNBlock``: a hidden state driven by a network whose weights follow an SDE in depth.

Xu, Chen, Li, Duvenaud, "Infinitely Deep Bayesian Neural Networks with Stochastic Differential
Equations" (AISTATS 2022), equation (4):

    dh/dt = f_h(h, t; w(t)),   dw = f_w(t, w) dt + sigma dB,   t in [0, 1],

where ``w(t)`` is the whole flattened parameter vector of the small MLP ``f_h``
(``d -> hidden -> d``, ``tanh``). The weight path is *one Pyro sample site* (named
``"<block name>.w"``), global: it sits outside the data plate and one path is shared by a whole
minibatch. The prior at that site is the OU chain, the guide puts the posterior chain
(:class:`~bayesdepth.sde.paths.EulerPath`) there, so ``log q - log p`` is the discrete Girsanov sum
and any Pyro ELBO trains it. Given the sampled path, ``h`` is integrated on the *same grid* by a
plain loop (Euler; or Heun/midpoint on the path values), not by torchsde.

Start of the weight path: by default ``w(0)`` is a learned point estimate (as in the paper); with
``w0="normal"`` it is a latent with prior ``N(mu, w0_prior_scale^2 I)`` and a mean-field Normal
guide ``N(m, diag(s^2))``, sampled at the site ``"<block name>.w0"``. The prior mean ``mu`` is 0
(``w0_prior_mean="zero"``) or a hyperparameter fit by maximising the ELBO (``"learned"``,
empirical Bayes): the ELBO's optimum over ``mu`` is ``mu = m``, so the prior and the guide share
the one parameter ``w0_loc`` and the KL of ``w(0)``,
``sum_j [log(w0_prior_scale / s_j) + s_j^2 / (2 w0_prior_scale^2) - 1/2]``, prices only the
variances. With a zero prior mean, mean-field VI prunes most weights to the prior (their means go
to 0) and the network underfits; the learned mean keeps the capacity of the point estimate and
adds the uncertainty (docs/sdebnn.md).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn
from torch.nn import functional as F

from .._validation import check_choice, check_positive, check_positive_int
from .paths import EulerPath, Simulator, check_grid
from .processes import BottleneckDrift, OUPrior, PosteriorDrift

__all__ = ["SDEBNNBlock"]

SOLVERS = ("euler", "heun", "midpoint")


def _strip_trailing_ones(shape: torch.Size) -> torch.Size:
    shape = list(shape)
    while shape and shape[-1] == 1:
        shape.pop()
    return torch.Size(shape)


def _conv_field(h, w1, b1, w2, b2):
    z = torch.tanh(F.conv2d(h, w1, b1, padding=1))
    return F.conv2d(z, w2, b2, padding=1)


class SDEBNNBlock(PyroModule):
    """One SDE-BNN block: ``h(1)`` from ``h(0)`` through ``dh/dt = f_h(h; w(t))``.

    Use it inside your own Pyro model and guide::

        path = block.model_part()        # in the model, outside the data plate
        with pyro.plate("data", n, subsample_size=b) as idx:
            h = block.integrate(h0[idx], path)
        ...
        block.guide_part()               # in the guide

    ``block(h)`` does ``integrate(h, model_part())`` in one call (when no plate is open).

    Args:
        in_features: size of the incoming state ``h`` (channels for ``field="conv"``).
        hidden: width of ``f_h`` (hidden units or channels; default: the state size).
        steps: number K of grid steps on ``[0, t1]`` (uniform grid), or pass ``grid``.
        prior: the prior process (:class:`OUPrior`; default ``OUPrior(sigma=0.1)``).
        posterior: the correction ``g_phi(t, w)`` added to the prior drift (any ``nn.Module``
            drift); default :class:`BottleneckDrift` with ``rank``/``drift_hidden``.
        augment: zeros appended to ``h`` on entry (ANODE-style augmentation, Dupont et al. 2019).
        solver: ``"euler"`` (default), ``"heun"`` or ``"midpoint"`` for ``h`` on the path values.
        w0: ``"point"`` (learned point estimate, default) or ``"normal"`` (a latent).
        w0_prior_scale: prior standard deviation of ``w(0)`` (``w0="normal"``).
        w0_prior_mean: ``"zero"`` or ``"learned"`` (empirical Bayes; ``w0="normal"``).
        field: ``"mlp"`` (``h`` of shape ``(..., n, d)``) or ``"conv"``: two 3x3 convolutions
            ``C -> hidden -> C`` with ``tanh`` on images ``h`` of shape ``(..., n, C, H, W)``
            (e.g. 8x8 digits), padding keeps the size.
        grid: explicit strictly increasing times (overrides ``steps``/``t1``).
        name: site-name prefix when the block is not a child of another ``PyroModule``.
        simulator: how weight paths are drawn, ``simulator(drift, sigma, grid, w0, entropy) ->
            (K+1, batch, d)``; default :func:`~bayesdepth.sde.paths.sdeint_euler` (torchsde).
            A replacement must produce exactly the Euler–Maruyama chain (docs/theory.md §8),
            e.g. a hand-written loop for benchmarking.
    """

    def __init__(
        self,
        in_features: int,
        hidden: int | None = None,
        steps: int = 20,
        t1: float = 1.0,
        prior: OUPrior | None = None,
        posterior: nn.Module | None = None,
        augment: int = 0,
        solver: str = "euler",
        w0: str = "point",
        w0_prior_scale: float = 1.0,
        w0_prior_mean: str = "zero",
        rank: int = 16,
        drift_hidden: int = 32,
        grid: torch.Tensor | None = None,
        name: str = "block",
        field: str = "mlp",
        simulator: Simulator | None = None,
    ) -> None:
        super().__init__(name)
        self.in_features = check_positive_int("in_features", in_features)
        self.augment = check_positive_int("augment", augment, minimum=0)
        self.dim = self.in_features + self.augment
        self.hidden = self.dim if hidden is None else check_positive_int("hidden", hidden)
        if grid is None:
            steps = check_positive_int("steps", steps)
            t1 = check_positive("t1", t1)
            grid = torch.linspace(0.0, t1, steps + 1)
        check_grid(grid)
        self.register_buffer("grid", grid.detach().clone())
        self._dts = grid.diff().tolist()
        self.solver = check_choice("solver", solver, SOLVERS)
        self.w0_mode = check_choice("w0", w0, ("point", "normal"))
        self.field = check_choice("field", field, ("mlp", "conv"))
        self.w0_prior_scale = check_positive("w0_prior_scale", w0_prior_scale)
        self.w0_prior_mean = check_choice("w0_prior_mean", w0_prior_mean, ("zero", "learned"))
        self.block_name = name
        prior = OUPrior(sigma=0.1) if prior is None else prior
        if not isinstance(prior, nn.Module) or not hasattr(prior, "sigma"):
            raise TypeError(f"prior must be an OUPrior-like nn.Module with .sigma, got {prior!r}")
        self.prior = prior

        # f_h's parameter layout: W1 (hidden, dim[, 3, 3]), b1 (hidden), W2 (dim, hidden[, 3, 3]),
        # b2 (dim).
        d, m = self.dim, self.hidden
        k = 9 if self.field == "conv" else 1
        self._sizes = (m * d * k, m, d * m * k, d)
        self.num_weights = sum(self._sizes)
        parts = (*self._layer_init(m, d), *self._layer_init(d, m))
        init = torch.cat([t.flatten() for t in parts])
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

    def _layer_init(self, fan_out: int, fan_in: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.field == "conv":
            layer = nn.Conv2d(fan_in, fan_out, 3, padding=1)
        else:
            layer = nn.Linear(fan_in, fan_out)
        return layer.weight.detach(), layer.bias.detach()

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
        if not isinstance(out, torch.Tensor) or out.shape != w.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"posterior drift must return the shape of w {tuple(w.shape)}, got {got}"
            )

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
            return self._guide_part()
        path = self._model_part()
        return path if h is None else self.integrate(h, path)

    def model_part(self) -> torch.Tensor:
        """Sample the weight path at site ``"<name>.w"`` under the prior.

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
        path = self.prior_path(w0)
        return path.with_start(pyro.sample(self._site("w"), path))

    def _guide_part(self) -> torch.Tensor:
        if self.w0_mode == "point":
            w0 = self.w0
        else:
            base = dist.Normal(self.w0_loc, self.w0_log_scale.exp()).to_event(1)
            w0 = pyro.sample(self._site("w0"), base)
        path = self.posterior_path(w0)
        return path.with_start(pyro.sample(self._site("w"), path))

    # ---------------------------------------------------------------- hidden state
    def _unflatten(self, path: torch.Tensor):
        lead = path.shape[:-1]
        w1, b1, w2, b2 = path.split(self._sizes, dim=-1)
        d, m = self.dim, self.hidden
        if self.field == "conv":
            return (w1.reshape(*lead, m, d, 3, 3), b1, w2.reshape(*lead, d, m, 3, 3), b2)
        return (
            w1.reshape(*lead, m, d).transpose(-1, -2),
            b1.unsqueeze(-2),
            w2.reshape(*lead, d, m).transpose(-1, -2),
            b2.unsqueeze(-2),
        )

    def _field(self, h, w1, b1, w2, b2):
        if self.field == "mlp":
            return torch.tanh(h @ w1 + b1) @ w2 + b2
        if w1.dim() == 4:
            return _conv_field(h, w1, b1, w2, b2)
        # Weights with leading sample dims (h was given the same ones): vmap the convolution.
        fn = _conv_field
        for _ in range(w1.dim() - 4):
            fn = torch.vmap(fn)
        return fn(h, w1, b1, w2, b2)

    def integrate(self, h: torch.Tensor, path: torch.Tensor) -> torch.Tensor:
        """Integrate ``h`` over the grid given a full weight path ``(..., K+1, d_w)``.

        ``h`` has shape ``(..., n, in_features)`` (``(..., n, C, H, W)`` for ``field="conv"``);
        leading dims of the path (sample or particle dims, trailing singleton plate dims dropped)
        broadcast against ``h``'s. Returns ``h(t_K)`` with ``in_features + augment`` features.
        """
        feature_dim = -3 if self.field == "conv" else -1
        if h.dim() < (4 if self.field == "conv" else 2) or h.shape[feature_dim] != self.in_features:
            what = "(..., n, C, H, W) with C" if self.field == "conv" else "(..., n, d) with d"
            raise ValueError(
                f"h must have shape {what} = {self.in_features}, got {tuple(h.shape)}"
            )
        if self.augment:
            pad = (0, 0, 0, 0, 0, self.augment) if self.field == "conv" else (0, self.augment)
            h = F.pad(h, pad)
        lead = _strip_trailing_ones(path.shape[:-2])
        path = path.reshape(*lead, *path.shape[-2:])
        if len(lead) and self.field == "conv":
            # vmap over the sample dims: give h the same leading dims.
            h = h.expand(*lead, *h.shape[h.dim() - 4:]) if h.dim() == 4 else h
        w1t, b1, w2t, b2 = (p.movedim(len(lead), 0) for p in self._unflatten(path))
        for k, dt in enumerate(self._dts):
            f0 = self._field(h, w1t[k], b1[k], w2t[k], b2[k])
            if self.solver == "euler":
                h = h + dt * f0
            elif self.solver == "heun":
                f1 = self._field(h + dt * f0, w1t[k + 1], b1[k + 1], w2t[k + 1], b2[k + 1])
                h = h + 0.5 * dt * (f0 + f1)
            else:  # midpoint, weights averaged over the step
                mid = [0.5 * (p[k] + p[k + 1]) for p in (w1t, b1, w2t, b2)]
                h = h + dt * self._field(h + 0.5 * dt * f0, *mid)
        return h
