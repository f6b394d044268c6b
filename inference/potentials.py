r"""The potential protocol ``U(params, batch) -> (value per chain, aux)`` shared by every sampler.

The potential is the negative log joint density (docs/theory.md §5.1)

.. math::

    U(\theta) = -\log p(\theta) - \frac{N}{B}\sum_{i \in \text{batch}} \log p(x_i \mid \theta),

evaluated for K chains at once: ``params`` is a dict ``{name: tensor of shape (chains, ...)}`` and
the value has shape ``(chains,)``. **Every chain draws its own minibatch at every gradient call**
(indices of shape ``(chains, B)``): chains that shared a batch would share their gradient noise,
contract onto each other and make between-chain diagnostics (R-hat, ESS, standard errors)
overconfident. Two builders: :func:`~bayesdepth.inference.pyro_potential` (a Pyro model, in
:mod:`.pyro_potentials`) and :func:`~bayesdepth.inference.module_potential` (an ``nn.Module``, in
:mod:`.module_potentials`).

A :class:`Potential` also draws minibatches, initialises chains, maps parameters to the
constrained space reported to ArviZ, knows its observed data and, where it can, evaluates draws
afterwards (:meth:`Potential.pointwise`: pointwise log-likelihood and derived quantities).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, NamedTuple

import torch

from bayesdepth._validation import check_positive_int, check_tensor

from .samplers._tree import Params, leaves
from .samplers.streams import chain_slice, local

__all__ = ["Pointwise", "Potential", "over_draws", "subsample_indices"]


class Pointwise(NamedTuple):
    """What :meth:`Potential.pointwise` returns: ``{site: (chains, draws, ...)}`` on the CPU."""

    log_likelihood: dict[str, torch.Tensor]  #: log p(y_i | theta) per observation
    derived: dict[str, torch.Tensor]  #: deterministic functions of the draw (e.g. Pyro's "f")


class Potential:
    """Base class of potentials over a dict of stacked parameters.

    Subclasses implement :meth:`__call__` and usually :meth:`init` and :meth:`sample_batch`.
    ``shapes`` maps each parameter name to its per-chain shape (used to validate init values).
    """

    shapes: ClassVar[dict[str, torch.Size]] = {}
    observed_data: dict[str, torch.Tensor] | None = None
    #: the potential runs Pyro code, whose global state one thread at a time may use
    uses_pyro: ClassVar[bool] = False

    def __call__(self, params: Params, batch: Any = None) -> tuple[torch.Tensor, Any]:
        """Potential per chain (shape (chains,)) and auxiliary output."""
        raise NotImplementedError

    def sample_batch(self, num_chains: int, generator: torch.Generator | None) -> Any:
        """Draw the minibatches of one gradient evaluation, one per chain (None: full batch)."""
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

    def pointwise(self, draws: Mapping[str, torch.Tensor], chunk_size: int = 64) -> Pointwise:
        """Pointwise log-likelihood and derived quantities of constrained draws.

        Args:
            draws: ``{name: (chains, draws, *shape)}`` in constrained space (``Chains.draws``).
            chunk_size: draws evaluated at once (bounds memory).

        Raises:
            NotImplementedError: when the potential cannot evaluate single observations.
        """
        raise NotImplementedError(f"{type(self).__name__} has no pointwise log-likelihood")

    def posterior_predictive(
        self, draws: Mapping[str, torch.Tensor], seed: int | None = None
    ) -> dict[str, torch.Tensor]:
        """A new draw of every observation at every draw, ``{site: (chains, draws, ...)}``.

        Raises:
            NotImplementedError: when the potential cannot draw observations.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot draw observations")

    def prior(self, num_samples: int, seed: int | None = None) -> dict[str, torch.Tensor]:
        """``num_samples`` draws of the parameters from the prior, ``{name: (num_samples, ...)}``.

        Raises:
            NotImplementedError: when the potential has no prior to draw from.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot draw from its prior")

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

        Each call draws fresh minibatches (one per chain) with :meth:`sample_batch` and
        differentiates the sum of the per-chain potentials (chains are independent, so this gives
        every chain its own gradient). With a :class:`~.samplers.streams.ChainStream` the
        minibatches are drawn for all of the run's chains and this process's are kept.
        """

        def grad_fn(params: Params, generator: torch.Generator | None):
            lo, hi, total = chain_slice(generator, num_chains)
            batch = local(self.sample_batch(total, generator), lo, hi, total)
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


def subsample_indices(
    size: int, batch: int, num: int, generator: torch.Generator | None, device: Any
) -> torch.Tensor:
    """``num`` independent rows of ``batch`` distinct indices out of ``size``, shape (num, batch).

    Each row is a uniformly random subset, so a minibatch is drawn without replacement inside a
    row and independently across rows and calls (docs/theory.md §0.3, §5.1). ``batch >= size``
    gives every index in every row. Two exact methods, by cost:

    - the ``batch`` largest of ``size`` uniform keys per row (``O(num size)`` random numbers):
      for large batches, and on accelerators (no host synchronisation);
    - on the CPU, for ``4 batch <= size``: ``batch`` uniform indices per row, the repeated ones
      drawn again until every row is distinct (``O(num batch)`` numbers, a few rounds). Which
      copy of a repeat is redrawn does not depend on the labels' values, so the set a row ends
      with is invariant under relabelling the data: a uniformly random subset.
    """
    if batch >= size:
        return torch.arange(size, device=device).expand(num, size)
    if torch.device(device or "cpu").type != "cpu" or 4 * batch > size:
        keys = torch.rand(num, size, generator=generator, device=device)
        return keys.topk(batch, dim=-1, sorted=False).indices
    rows = torch.randint(size, (num, batch), generator=generator, device=device)
    while True:
        rows, _ = rows.sort(-1)
        repeat = torch.zeros_like(rows, dtype=torch.bool)
        repeat[:, 1:] = rows[:, 1:] == rows[:, :-1]
        count = int(repeat.sum())
        if not count:
            return rows
        rows[repeat] = torch.randint(size, (count,), generator=generator, device=device)


@contextlib.contextmanager
def seeded_torch(seed: int | None, device: torch.device | None) -> Iterator[None]:
    """Seed torch's global generator for a block (Pyro samples from it) and restore it after."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.manual_seed(check_positive_int("seed", seed, minimum=0))
        yield


def over_draws(
    fn: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
    draws: Mapping[str, torch.Tensor],
    chunk_size: int,
    device: torch.device | None,
) -> dict[str, torch.Tensor]:
    """Apply ``fn`` to chunks of flattened draws; results come back as ``(chains, draws, ...)``.

    ``fn`` takes ``{name: (n, *shape)}`` on ``device`` and returns ``{key: (n, ...)}``; at most
    ``chunk_size`` draws are on the device at once and every result is copied to the CPU.
    """
    chunk_size = check_positive_int("chunk_size", chunk_size)
    first = next(iter(draws.values()))
    lead = tuple(first.shape[:2])
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in draws.items()}
    total = flat[next(iter(flat))].shape[0]
    pieces: dict[str, list[torch.Tensor]] = {}
    for start in range(0, total, chunk_size):
        part = {k: v[start : start + chunk_size].to(device) for k, v in flat.items()}
        with torch.no_grad():
            out = fn(part)
        for key, value in out.items():
            pieces.setdefault(key, []).append(value.detach().cpu())
    return {k: torch.cat(v).reshape(*lead, *v[0].shape[1:]) for k, v in pieces.items()}
