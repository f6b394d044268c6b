"""Bayesian augmented neural ODE: Normal priors on every weight of the vector field and readout.

    w ~ N(0, s^2 I),   h(0) = [x, 0_p],   dh/dt = f(h, t; w_f),   out = W h(T) + b,
    y_n | w ~ N(out_n, sigma^2)  (regression)  or  Categorical(softmax(out_n))  (classification).

Each weight tensor is a sample site (named after the parameter, e.g.
``net.field.layers.0.weight``), drawn once per model call, *outside* the data plate; the
likelihood sits in ``pyro.plate("data", N, subsample_size=B)``, so the ELBO of a minibatch is
scaled by ``N / B`` and needs no hand-set KL weight. The sampled weights are passed to the ODE
solve explicitly (``torch.func.functional_call``), so gradients reach them through direct
backpropagation or through the adjoint alike (docs/theory.md §10). Train with
:class:`~bayesdepth.STLTrace_ELBO` and the model's mean-field guide, or sample the weights by
SG-MCMC.

Weights with leading sample dimensions (``Predictive(parallel=True)``, vectorised ELBO particles)
are solved as one ODE whose state stacks a copy of the rows per draw, the field evaluated per draw
with ``torch.vmap``; an adaptive solver then chooses one step-size sequence for the stacked state
(its error norm covers every draw), a fixed-step solver gives each draw exactly its own solve
(docs/theory.md §10.5).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.func import functional_call

from .._validation import positive_tensor
from ..likelihoods import Categorical, Likelihood
from ..protocol import BayesianModel
from ..seeding import seeded
from .model import AugmentedNeuralODE
from .solver import SolveCost

__all__ = ["BayesianAugmentedNODE"]


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


def _frozen_copy(net: AugmentedNeuralODE) -> AugmentedNeuralODE:
    """A copy of ``net`` whose parameters are buffers: the architecture the sampled weights are
    plugged into (``torch.func.functional_call``), with the weights it was given as values."""
    arch = copy.deepcopy(net)
    for module in arch.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            delattr(module, name)
            module.register_buffer(name, param.detach().clone())
    return arch


def _lead(value: torch.Tensor, shape: torch.Size) -> torch.Size:
    """Leading sample dims of a weight draw, trailing singleton (plate) dims dropped."""
    lead = list(value.shape[: value.dim() - len(shape)])
    while lead and lead[-1] == 1:
        lead.pop()
    return torch.Size(lead)


class _DrawwiseField(nn.Module):
    """``f(t, H)`` for a stacked state ``H = (draws, n, ...)``, each draw with its own weights.

    The weights are buffers ``w0, w1, ...`` (names of the field's parameters in ``names``), so
    the solver passes the sampled values in explicitly (``params=``, also to the adjoint).
    """

    def __init__(self, field: nn.Module, names: list[str], shapes: list[torch.Size]):
        super().__init__()
        self.field = field
        self.names = names
        for i, shape in enumerate(shapes):
            self.register_buffer(f"w{i}", torch.zeros(shape), persistent=False)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        weights = {n: getattr(self, f"w{i}") for i, n in enumerate(self.names)}
        return torch.vmap(lambda w, x: functional_call(self.field, w, (t, x)))(weights, h)


class BayesianAugmentedNODE(BayesianModel):
    """A Pyro model over the weights of an :class:`AugmentedNeuralODE`.

    Args:
        net: the architecture; the guide's means start at its current parameter values (its
            initialisation, or a trained network's weights).
        likelihood: default :class:`~bayesdepth.Categorical` (outputs are logits); a
            :class:`~bayesdepth.Gaussian` needs one output.
        prior_scale: standard deviation ``s`` of the Normal prior on every weight.
        init_scale: initial posterior standard deviation of the :class:`AutoNormal` guide.
        seed: seeds the guide's initialisation (None: torch's global random state).

    The weight sites are named ``"net.<parameter name>"`` (e.g. ``net.field.layers.0.weight``).
    Solver costs are recorded inside ``with bnn.counting(cost):``.

    Example:
        >>> bnn = BayesianAugmentedNODE(AugmentedNeuralODE(2, 2, augment_dim=1))
        >>> svi = pyro.infer.SVI(bnn.model, bnn.guide, pyro.optim.Adam({"lr": 1e-2}),
        ...                      bayesdepth.STLTrace_ELBO())
        >>> for step in range(500): svi.step(x, y, subsample_size=64)
        >>> bnn.predict(x_test, num_samples=32).probs      # (n, classes)
    """

    vectorized = True
    default_num_samples = 32

    def __init__(
        self,
        net: AugmentedNeuralODE,
        likelihood: Likelihood | None = None,
        prior_scale: float = 1.0,
        init_scale: float = 0.01,
        seed: int | None = None,
    ):
        if not isinstance(net, AugmentedNeuralODE):
            raise TypeError(f"net must be an AugmentedNeuralODE, got {type(net).__name__}")
        super().__init__(Categorical() if likelihood is None else likelihood, net.out_features)
        dtype = next(net.parameters()).dtype
        prior_scale = positive_tensor("prior_scale", prior_scale, dtype)
        init_scale = float(positive_tensor("init_scale", init_scale, dtype))
        self.arch = _frozen_copy(net)
        self.register_buffer("prior_scale", prior_scale)
        self._shapes = {name: p.shape for name, p in net.named_parameters()}
        self._cost: SolveCost | None = None
        start = {f"net.{name}": p.detach().clone() for name, p in net.named_parameters()}
        example = torch.zeros(1, *net.in_shape, dtype=dtype)
        with seeded(seed):
            self._attach_autoguide(example, init_loc_fn=_InitAt(start), init_scale=init_scale)

    @contextlib.contextmanager
    def counting(self, cost: SolveCost) -> Iterator[SolveCost]:
        """Add the NFE of every ODE solve inside the block to ``cost``."""
        if not isinstance(cost, SolveCost):
            raise TypeError(f"cost must be a SolveCost, got {type(cost).__name__}")
        previous, self._cost = self._cost, cost
        try:
            yield cost
        finally:
            self._cost = previous

    def point_weights(self) -> dict[str, torch.Tensor]:
        """The architecture's weights (the guide's initial means) by site name."""
        return {f"net.{name}": self.arch.get_buffer(name) for name in self._shapes}

    def check_inputs(self, x: torch.Tensor) -> torch.Tensor:
        self.arch.augment(x[:1] if isinstance(x, torch.Tensor) else x)  # validates x
        return x

    def sample_latents(self) -> dict[str, torch.Tensor]:
        """Every weight of the vector field and readout: ``N(0, s^2)``, outside the plate."""
        zero = torch.zeros((), dtype=self.prior_scale.dtype, device=self.prior_scale.device)
        return {
            name: pyro.sample(f"net.{name}", dist.Normal(zero, self.prior_scale)
                              .expand(shape).to_event(len(shape)))
            for name, shape in self._shapes.items()
        }

    def function(self, x: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        lead = torch.Size()
        for name, value in weights.items():
            lead = torch.broadcast_shapes(lead, _lead(value, self._shapes[name]))
        if lead:
            return self._drawwise(x, weights, lead)
        field_w = {k[len("field."):]: v for k, v in weights.items() if k.startswith("field.")}
        head_w = {k[len("readout."):]: v for k, v in weights.items() if k.startswith("readout.")}
        arch = self.arch
        return arch.head(arch.flow(x, cost=self._cost, params=field_w), head_w or None)

    def _drawwise(self, x: torch.Tensor, weights: dict[str, torch.Tensor],
                  lead: torch.Size) -> torch.Tensor:
        """``function`` for weights with leading sample dims ``lead``: ``(*lead, n, out)``."""
        draws = 1
        for size in lead:
            draws *= size
        flat = {}
        for name, value in weights.items():
            shape = self._shapes[name]
            value = value.reshape(*_lead(value, shape), *shape).expand(*lead, *shape)
            flat[name] = value.reshape(draws, *shape)
        arch = self.arch
        names = [n[len("field."):] for n in flat if n.startswith("field.")]
        field = _DrawwiseField(arch.field, names, [flat["field." + n].shape[1:] for n in names])
        h0 = arch.augment(x)
        h0 = h0.expand(draws, *h0.shape)
        h = arch.solver.integrate(field, h0, cost=self._cost, params={
            f"w{i}": flat["field." + n] for i, n in enumerate(names)})
        h = h.flatten(2)
        if arch.readout is None:
            out = h[..., : self.out_features]
        else:
            w, b = flat["readout.weight"], flat["readout.bias"]
            out = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        return out.reshape(*lead, x.shape[0], self.out_features)

    def guide_body(self, x, y, subsample_size) -> None:
        self.autoguide(x, y, subsample_size=subsample_size)
