"""``fit``: stochastic variational inference for any Pyro ``model``/``guide`` pair.

Pyro SVI with the ELBO gradient estimator of :func:`bayesdepth.elbo.make_elbo` (default: the
sticking-the-landing :class:`~bayesdepth.STLTrace_ELBO`; Xu et al. 2022, section 4; Roeder et
al. 2017), a clipped Adam with a geometric learning-rate decay, KL annealing, minibatches, a
progress bar, and a clear error when training diverges (docs/theory.md §9.4).

Minibatches: with ``batch_size`` the model is called with ``subsample_size=batch_size`` and is
expected to pass it to its ``pyro.plate(..., subsample_size=...)``, which rescales the likelihood
by ``n / batch_size`` (so no hand-set KL coefficient is needed). KL annealing multiplies the log
densities of the *latent* sites (model and guide) by ``beta_t = min(1, (t + 1) / anneal_steps)``
through a :class:`pyro.poutine.scale`-style messenger, leaving observed sites unscaled.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer import ELBO, SVI
from pyro.poutine.scale_messenger import ScaleMessenger
from pyro.poutine.util import site_is_subsample
from tqdm.auto import tqdm

from ._validation import check_positive, check_positive_int, check_seed, positive_tensor
from .elbo import make_elbo
from .seeding import seed_everything
from .threads import pyro_exclusive

__all__ = ["FitHistory", "fit"]


class _ScaleLatents(ScaleMessenger):
    """``poutine.scale`` restricted to latent (non-observed) sample sites."""

    def _process_message(self, msg):
        if msg["type"] == "sample" and not msg["is_observed"]:
            super()._process_message(msg)


def _annealed(fn: Callable, state: dict) -> Callable:
    def wrapped(*args, **kwargs):
        with _ScaleLatents(state["beta"]):
            return fn(*args, **kwargs)

    return wrapped


@dataclass
class FitHistory:
    """What :func:`fit` returns: per-step loss (``-ELBO`` estimate, nats) and KL weights."""

    loss: list[float] = field(default_factory=list)
    beta: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def elbo(self) -> list[float]:
        return [-v for v in self.loss]

    @property
    def steps(self) -> int:
        return len(self.loss)


def fit(
    model: Callable,
    guide: Callable,
    *args: Any,
    num_steps: int = 1000,
    lr: float = 1e-2,
    final_lr_fraction: float = 1.0,
    optimizer: pyro.optim.PyroOptim | None = None,
    estimator: str | ELBO = "stl",
    batch_size: int | None = None,
    num_particles: int = 1,
    vectorize_particles: bool = False,
    anneal_steps: int = 0,
    max_seconds: float | None = None,
    progress: bool = True,
    seed: int | None = None,
    callback: Callable[[int, float], bool | None] | None = None,
    distributed: bool = False,
    **kwargs: Any,
) -> FitHistory:
    """Fit ``guide`` to ``model`` by SVI; returns the :class:`FitHistory`.

    Args:
        model: a Pyro model taking ``(*args, **kwargs)`` (e.g. ``x, y``).
        guide: its guide, with the same arguments.
        *args: the data passed to both.
        num_steps: SVI steps.
        lr: Adam learning rate (``pyro.optim.ClippedAdam``, gradient norm clipped at 10).
        final_lr_fraction: the learning rate decays geometrically to ``lr * final_lr_fraction``
            over ``num_steps`` (default optimiser only).
        optimizer: a Pyro optimiser instead of the default (``lr`` and the decay are then unused).
        estimator: ``"stl"`` (default), ``"reparam"``, ``"kl"`` or any Pyro ``ELBO`` instance.
        batch_size: minibatch size, passed to the model and guide as ``subsample_size=``.
        num_particles: Monte-Carlo samples per step.
        vectorize_particles: draw the particles as one vectorised batch.
        anneal_steps: KL annealing over this many steps (0: none).
        max_seconds: stop early after this much wall time.
        progress: show a tqdm bar with the running ELBO.
        seed: an int in ``[0, 2**63)``; seeds torch's, NumPy's and Python's global generators
            first (as ``pyro.set_rng_seed`` does): every minibatch, particle and weight path.
            It does not touch a model's initial weights (give the model its own ``seed=``);
            with both, the same fit gives the same numbers in every process.
        callback: ``callback(step, loss)``; returning ``True`` stops.
        distributed: data-parallel SVI over the processes ``torchrun`` started (see
            :mod:`bayesdepth.distributed`; needs ``batch_size``). Every rank draws its own
            ``batch_size`` rows from a stream seeded by ``(seed, rank)``, while the latent draws
            (guide samples, weight paths) are the same on every rank; the gradients are averaged
            across ranks (one all-reduce) and every rank applies the same update, so the
            parameters stay identical. One step is then exactly the single-process step on the
            ``R * batch_size`` concatenated rows: an unbiased estimate of the full-data ELBO's
            gradient with plate scaling ``N / (R * batch_size)``. Rank 0 shows the progress bar.

    Raises:
        FloatingPointError: the loss became NaN or infinite, or a distribution met invalid
            values (a scale driven to 0, a NaN in the model): the message names the step.
        RuntimeError: another thread is running Pyro code (see :mod:`bayesdepth.threads`).
    """
    num_steps = check_positive_int("num_steps", num_steps)
    lr = check_positive("lr", lr)
    positive_tensor("lr", lr)  # a rate float32 cannot hold is refused, not overflowed in Adam
    final_lr_fraction = check_positive("final_lr_fraction", final_lr_fraction)
    if final_lr_fraction > 1:
        raise ValueError(f"final_lr_fraction must lie in (0, 1] (the learning rate decays to "
                         f"lr * final_lr_fraction), got {final_lr_fraction!r}")
    anneal_steps = check_positive_int("anneal_steps", anneal_steps, minimum=0)
    if not callable(model) or not callable(guide):
        raise TypeError("model and guide must be callables (Pyro model and guide)")
    if batch_size is not None:
        kwargs["subsample_size"] = check_positive_int("batch_size", batch_size)
    if max_seconds is not None:
        max_seconds = check_positive("max_seconds", max_seconds)
    # a bayesdepth model knows its plate depth, so Pyro need not guess it (and log the guess)
    nesting = getattr(getattr(model, "__self__", None), "max_plate_nesting", None)
    elbo = make_elbo(estimator, num_particles, vectorize_particles, nesting)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if not isinstance(distributed, bool):
        raise TypeError(f"distributed must be True or False, got {distributed!r}")
    if distributed and batch_size is None:
        raise ValueError("distributed=True needs batch_size: every rank draws its own minibatch")
    check_seed(seed)
    with pyro_exclusive("bayesdepth.fit"):
        if optimizer is None:
            decay = final_lr_fraction ** (1.0 / num_steps)
            optimizer = pyro.optim.ClippedAdam({"lr": lr, "lrd": decay, "clip_norm": 10.0})
        state = {"beta": 1.0}
        if anneal_steps:
            model, guide = _annealed(model, state), _annealed(guide, state)
        if distributed:
            step_fn, group = _distributed_steps(model, guide, args, kwargs, elbo, optimizer, seed)
            progress = progress and group.is_main

            def agree(stop: bool) -> bool:  # every rank stops at the same step
                return group.agree(stop, "agreeing on when to stop")
        else:
            if seed is not None:
                seed_everything(seed)
            svi = SVI(model, guide, optimizer, loss=elbo)

            def step_fn() -> float:
                return svi.step(*args, **kwargs)

            def agree(stop: bool) -> bool:
                return stop

        return _run(step_fn, agree, state, num_steps, anneal_steps, max_seconds, progress,
                    callback)


def _subsampled_plates(model: Callable, args, kwargs) -> dict[str, tuple[int, int]]:
    """``{plate name: (size, subsample size)}`` of the model's subsampled plates (one prior run,
    the global random state kept)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad(), poutine.block():
        trace = poutine.trace(model).get_trace(*args, **kwargs)
    return {name: (int(site["fn"].size), int(site["fn"].subsample_size))
            for name, site in trace.nodes.items()
            if site_is_subsample(site) and site["fn"].subsample_size is not None
            and site["fn"].subsample_size < site["fn"].size}


def _distributed_steps(model, guide, args, kwargs, elbo, optimizer, seed):
    """The step of data-parallel SVI (see :func:`fit`): own rows, shared latents, mean gradient."""
    from . import distributed as ddp

    like = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
    group = ddp.process_group(device=None if like is None else like.device)
    seed = ddp.shared_seed(seed, group)
    seed_everything(seed)  # the latent draws: the same on every rank
    plates = _subsampled_plates(model, args, kwargs)
    if not plates:
        raise ValueError("distributed=True: the model has no subsampled pyro.plate (it must pass "
                         "subsample_size=... to its data plate)")
    rows = ddp.rank_generator(seed, group.rank)  # the minibatches: this rank's own
    device = like.device if like is not None else torch.device("cpu")

    def step_fn() -> float:
        data = {name: torch.randperm(size, generator=rows)[:b].to(device)
                for name, (size, b) in plates.items()}
        with poutine.trace(param_only=True) as capture:
            loss = elbo.loss_and_grads(poutine.condition(model, data=data),
                                       poutine.condition(guide, data=data), *args, **kwargs)
        params = [site["value"].unconstrained()
                  for _, site in sorted(capture.trace.nodes.items())]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        mean_loss = torch.tensor([float(loss)], dtype=params[0].dtype if params else None)
        group.all_mean([*(p.grad for p in params), mean_loss], "averaging the gradients")
        optimizer(params)
        pyro.infer.util.zero_grads(set(params))
        return float(mean_loss[0])

    return step_fn, group


def _diverged(step: int, reason: str) -> FloatingPointError:
    """The error of a run that went non-finite or out of a support at ``step``: at step 0 the
    data or the initial values are the likely cause, later the learning rate."""
    hint = "try a smaller lr" if step else (
        "check the data for NaN or infinite values and the model's initial values, "
        "or try a smaller lr")
    return FloatingPointError(f"training diverged at step {step}: {reason} ({hint})")


def _run(step_fn, agree, state, num_steps, anneal_steps, max_seconds, progress,
         callback) -> FitHistory:
    history = FitHistory()
    start = time.perf_counter()
    running = None
    bar = tqdm(range(num_steps), disable=not progress, desc="SVI", leave=False)
    for step in bar:
        if anneal_steps:
            state["beta"] = min(1.0, (step + 1) / anneal_steps)
        try:
            loss = step_fn()
        except ValueError as exc:  # a parameter driven out of its support, e.g. a scale to 0
            if "to satisfy the constraint" not in str(exc):
                raise  # a mistake in the model or data, not a diverging run
            bar.close()
            reason = str(exc).splitlines()[0].split(", but found")[0]
            raise _diverged(step, reason) from exc
        if not math.isfinite(loss):
            bar.close()
            raise _diverged(step, f"the ELBO loss is {loss}")
        history.loss.append(float(loss))
        history.beta.append(state["beta"])
        running = loss if running is None else 0.95 * running + 0.05 * loss
        if progress and step % 10 == 0:
            bar.set_postfix(elbo=f"{-running:.4g}", refresh=False)
        stop = bool(callback is not None and callback(step, loss))
        stop = stop or (max_seconds is not None and time.perf_counter() - start > max_seconds)
        if agree(stop):
            break
    bar.close()
    history.seconds = time.perf_counter() - start
    return history

