"""A field's weight vector: which parameters form w(t), and the field evaluated at given weights.

An SDE-BNN block (docs/theory.md §8.9) drives the parameters of an ordinary ``nn.Module`` field
``f_h`` by a weight path ``w(t)``. :class:`FieldWeights` fixes the layout: the chosen parameters
(all of them by default, or a named subset), in ``named_parameters`` order, flattened and
concatenated into one vector of ``num_weights`` numbers. The block takes those parameters off the
field (they become non-persistent buffers that are never read: every evaluation passes the
path's values explicitly through :func:`torch.func.functional_call`); the other parameters stay
ordinary parameters (point estimates). A field that is a ``PyroModule`` may give parameters
``PyroSample`` priors instead: the block samples them as global latents (sites
``"<block>.field.<name>"``), constant in depth, and passes them in the same way, as
``num_sampled`` more columns after the path's.

Weights with leading sample dimensions (vectorised particles, ``Predictive(parallel=True)``,
SG-MCMC chains) are evaluated with :func:`torch.vmap` over those dimensions, so any field written
for one set of weights works unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import torch
from pyro.nn import PyroModule
from torch import nn
from torch.func import functional_call

from .layers import takes_time

__all__ = ["FieldWeights", "strip_trailing_ones"]


def strip_trailing_ones(shape: torch.Size) -> torch.Size:
    """``shape`` without its trailing 1s (the singleton dims plates leave on global latents)."""
    shape = list(shape)
    while shape and shape[-1] == 1:
        shape.pop()
    return torch.Size(shape)


def _priors(field: nn.Module) -> dict[str, object]:
    """``{name: prior}`` of the field's ``PyroSample`` attributes.

    Pyro keeps a ``PyroModule``'s sampled attributes in ``_pyro_samples`` and offers no public
    listing; they are only read here (and removed by :meth:`FieldWeights.take_off`).
    """
    out = {}
    for prefix, module in field.named_modules():
        if isinstance(module, PyroModule):
            for name, prior in module._pyro_samples.items():
                out[f"{prefix}.{name}" if prefix else name] = prior
    return out


def _owner(field: nn.Module, name: str) -> tuple[nn.Module, str]:
    owner, _, attr = name.rpartition(".")
    return field.get_submodule(owner), attr


class FieldWeights:
    """The layout of w(t) over a field's parameters, and the field's evaluation at weights.

    Args:
        field: the ``nn.Module`` computing ``dh/dt`` from ``(t, h)`` or ``h``
            (:func:`~bayesdepth.sde.layers.takes_time` decides which).
        names: parameters forming w(t) (names as in ``field.named_parameters()``); None: all.

    Raises:
        TypeError: ``field`` is no ``nn.Module``, or a chosen parameter is not floating point.
        ValueError: the field has no parameters, or a name is not one of its parameters.
    """

    def __init__(self, field: nn.Module, names: Sequence[str] | None = None) -> None:
        if not isinstance(field, nn.Module):
            raise TypeError(
                f"field must be an nn.Module computing dh/dt from (t, h) or h, got "
                f"{type(field).__name__}"
            )
        params = dict(field.named_parameters())
        if names is None:
            chosen = list(params)
            if not chosen:
                raise ValueError(
                    f"field must have floating-point parameters to form w(t); "
                    f"{type(field).__name__} has none"
                )
        else:
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise TypeError(f"path_parameters must be a list of parameter names, got {names!r}")
            unknown = [n for n in names if n not in params]
            if unknown or not names:
                raise ValueError(
                    f"path_parameters must name parameters of the field; got {list(names)!r}, "
                    f"unknown: {unknown}; the field's parameters are {list(params)}"
                )
            chosen = [n for n in params if n in set(names)]  # named_parameters order
        bad = [n for n in chosen if not params[n].is_floating_point()]
        if bad:
            raise TypeError(
                f"path parameters must be floating point; {bad} of the field have dtypes "
                f"{[str(params[n].dtype) for n in bad]}"
            )
        self.names = tuple(chosen)
        self.shapes = tuple(params[n].shape for n in chosen)
        self.sizes = tuple(math.prod(s) for s in self.shapes)
        self.num_weights = sum(self.sizes)
        self.priors = _priors(field)
        self.prior_shapes = {
            name: self._prior(field, name).batch_shape + self._prior(field, name).event_shape
            for name in self.priors
        }
        self.takes_time = takes_time(field)

    def _prior(self, field: nn.Module, name: str):
        prior = self.priors[name]
        if not hasattr(prior, "sample"):  # PyroSample(lambda module: distribution)
            prior = prior(_owner(field, name)[0])
        return prior

    @property
    def num_sampled(self) -> int:
        """Numbers drawn from the field's ``PyroSample`` priors (columns after the path)."""
        return sum(math.prod(s) for s in self.prior_shapes.values())

    def initial(self, field: nn.Module) -> torch.Tensor:
        """The chosen parameters' current values, flattened into one vector."""
        params = dict(field.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def take_off(self, field: nn.Module) -> None:
        """Replace the chosen parameters (and the ``PyroSample`` attributes) by non-persistent
        buffers: placeholders that ``functional_call`` fills and nothing reads."""
        for name in self.names:
            module, attr = _owner(field, name)
            value = getattr(module, attr).detach().clone()
            delattr(module, attr)
            module.register_buffer(attr, value, persistent=False)
        for name in self.priors:
            module, attr = _owner(field, name)
            delattr(module, attr)  # removes the PyroSample; the block samples it
            module.register_buffer(attr, torch.zeros(0), persistent=False)

    def sample(self, field: nn.Module, site: str) -> torch.Tensor | None:
        """Sample every ``PyroSample`` prior at ``"<site>.<name>"`` (as global latents);
        return them flattened, ``(..., num_sampled)``, or None when the field has none."""
        if not self.priors:
            return None
        values = []
        for name, shape in self.prior_shapes.items():
            value = pyro.sample(f"{site}.{name}", self._prior(field, name))
            values.append(value.reshape(*value.shape[: value.dim() - len(shape)], -1))
        lead = torch.broadcast_shapes(*(v.shape[:-1] for v in values))
        return torch.cat([v.expand(*lead, v.shape[-1]) for v in values], dim=-1)

    def unflatten(self, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(..., num_weights + num_sampled)`` -> ``{name: (..., *shape)}`` (views): the path's
        parameters, then the ``PyroSample`` values."""
        lead = weights.shape[:-1]
        names = self.names + tuple(self.prior_shapes)
        shapes = self.shapes + tuple(self.prior_shapes.values())
        parts = weights.split([math.prod(s) for s in shapes], dim=-1)
        return {n: p.reshape(*lead, *s) for n, p, s in zip(names, parts, shapes)}

    def evaluate(self, field: nn.Module, t: torch.Tensor, h: torch.Tensor,
                 weights: dict[str, torch.Tensor], lead: torch.Size,
                 event_dims: int) -> torch.Tensor:
        """``f(t, h)`` with the field's parameters replaced by ``weights``.

        ``weights`` values have shape ``(*lead, *param_shape)``; with ``lead`` empty one set of
        weights serves every row. ``h`` has shape ``(*lead', n, *event)`` (``event_dims``
        trailing dims per row) with ``lead'`` broadcastable to ``lead``; the result has the
        broadcast shape of ``h``.
        """
        args = (t,) if self.takes_time else ()
        event = h.shape[h.dim() - event_dims:]
        if not lead:  # one set of weights: the rows of every leading dim form one batch
            out = functional_call(field, weights, (*args, h.reshape(-1, *event)),
                                  tie_weights=False)
            return out.reshape(h.shape)
        batch = h.shape[h.dim() - event_dims - 1]
        rows = h.expand(*lead, batch, *event).reshape(-1, batch, *event)
        flat = {k: v.reshape(-1, *v.shape[len(lead):]) for k, v in weights.items()}

        def one(w, x):
            return functional_call(field, w, (*args, x), tie_weights=False)

        out = torch.vmap(one)(flat, rows)
        return out.reshape(*lead, batch, *event)
