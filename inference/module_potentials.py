r"""The potential of an ``nn.Module`` with a log-likelihood per example and a prior.

docs/theory.md §5.1:

.. math:: U(\theta) = -\log p(\theta) - \frac{N}{B}\sum_{i\in\text{batch}} \ell(f_\theta(x_i), y_i)

Parameters are a dict ``{parameter name: tensor (chains, *shape)}``; the forward pass of all chains
is one ``torch.func.vmap`` over ``torch.func.functional_call(module, params, (x,))``, each chain
with its own minibatch of ``B`` distinct indices at every call.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from bayesdepth._validation import check_positive, check_positive_int, check_tensor

from .potentials import Pointwise, Potential, over_draws, subsample_indices
from .samplers._tree import Params

__all__ = ["ModulePotential", "module_potential"]


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
            self.prior_fn, self.prior_scale = prior, None
        else:
            self.prior_fn, self.prior_scale = None, check_positive("prior", prior)
        self.param_names = [n for n, p in module.named_parameters() if p.requires_grad]
        self.shapes = {n: p.shape for n, p in module.named_parameters() if p.requires_grad}
        self.observed_data = {"y": y.detach()}
        self._forward_all = torch.func.vmap(self._forward, in_dims=(0, None))
        self._forward_each = torch.func.vmap(self._forward, in_dims=(0, 0))

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: torch.device | str) -> ModulePotential:
        new = copy.copy(self)
        new.module = copy.deepcopy(self.module).to(device)
        new.x, new.y = self.x.to(device), self.y.to(device)
        new.observed_data = {"y": new.y}
        new._forward_all = torch.func.vmap(new._forward, in_dims=(0, None))
        new._forward_each = torch.func.vmap(new._forward, in_dims=(0, 0))
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
        if self.prior_fn is not None:
            return self.prior_fn(params)
        s = self.prior_scale
        total = sum(v.reshape(v.shape[0], -1).pow(2).sum(-1) for v in params.values())
        count = sum(v[0].numel() for v in params.values())
        return -0.5 * total / s**2 - count * (math.log(s) + 0.5 * math.log(2 * math.pi))

    def __call__(self, params: Params, batch: Any = None) -> tuple[torch.Tensor, Any]:
        if batch is None:
            out, target = self._forward_all(params, self.x), self.y
        else:
            out, target = self._forward_each(params, self.x[batch]), self.y[batch]
        log_lik = self.log_likelihood(out, target)
        log_lik = log_lik.reshape(log_lik.shape[0], -1).sum(-1) * (self.num_data / self.batch_size)
        return -(log_lik + self.log_prior(params)), {"log_likelihood": log_lik.detach()}

    def pointwise(self, draws: Mapping[str, torch.Tensor], chunk_size: int = 64) -> Pointwise:
        """``log_likelihood(f(x_i), y_i)`` of every row at every draw, under the name ``"y"``."""

        def fn(params):
            return {"y": self.log_likelihood(self._forward_all(params, self.x), self.y)}

        params = {n: draws[n] for n in self.param_names}
        return Pointwise(over_draws(fn, params, chunk_size, self.device), {})

    def posterior_predictive(self, draws: Mapping[str, torch.Tensor], seed: int | None = None):
        """Not available: a log-likelihood function says how likely ``y`` is, not how to draw it.

        Raises:
            NotImplementedError: always (build the model in Pyro and use ``pyro_potential``).
        """
        raise NotImplementedError(
            "a module potential knows log p(y | f) but not how to draw y; posterior predictive "
            "draws need a Pyro model (pyro_potential)"
        )



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
        x: the training inputs (N rows).
        y: the training targets (N rows).
        prior: a number ``s`` for an isotropic ``N(0, s^2)`` prior on every parameter, or a
            callable ``params -> log p(params)`` of shape ``(chains,)`` on the stacked dict.
        batch_size: minibatch size B (None: full batch).
    """
    return ModulePotential(module, log_likelihood, x, y, prior, batch_size)
