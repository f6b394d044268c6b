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

import pyro
from pyro.infer import ELBO, SVI
from pyro.poutine.scale_messenger import ScaleMessenger
from tqdm.auto import tqdm

from ._validation import check_positive, check_positive_int
from .elbo import make_elbo
from .seeding import check_seed
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
    *args,
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
    **kwargs,
) -> FitHistory:
    """Fit ``guide`` to ``model`` by SVI; returns the :class:`FitHistory`.

    Args:
        model, guide: Pyro callables taking ``(*args, **kwargs)`` (e.g. ``x, y``).
        num_steps: SVI steps.
        lr: Adam learning rate (``pyro.optim.ClippedAdam``, gradient norm clipped at 10).
        final_lr_fraction: the learning rate decays geometrically to ``lr * final_lr_fraction``
            over ``num_steps`` (default optimiser only).
        optimizer: a Pyro optimiser instead of the default (``lr`` and the decay are then unused).
        estimator: ``"stl"`` (default), ``"reparam"``, ``"kl"`` or any Pyro ``ELBO`` instance.
        batch_size: minibatch size, passed to the model and guide as ``subsample_size=``.
        num_particles, vectorize_particles: Monte-Carlo samples per step.
        anneal_steps: KL annealing over this many steps (0: none).
        max_seconds: stop early after this much wall time.
        progress: show a tqdm bar with the running ELBO.
        seed: calls ``pyro.set_rng_seed(seed)`` first, which seeds torch's, NumPy's and
            Python's global generators: every minibatch, particle and weight path of the fit.
            It does not touch a model's initial weights (give the model its own ``seed=``);
            with both, the same fit gives the same numbers in every process.
        callback: ``callback(step, loss)``; returning ``True`` stops.

    Raises:
        FloatingPointError: the loss became NaN or infinite, or a distribution met invalid
            values (a scale driven to 0, a NaN in the model): the message names the step.
        RuntimeError: another thread is running Pyro code (see :mod:`bayesdepth.threads`).
    """
    num_steps = check_positive_int("num_steps", num_steps)
    lr = check_positive("lr", lr)
    final_lr_fraction = check_positive("final_lr_fraction", final_lr_fraction)
    anneal_steps = check_positive_int("anneal_steps", anneal_steps, minimum=0)
    if not callable(model) or not callable(guide):
        raise TypeError("model and guide must be callables (Pyro model and guide)")
    if batch_size is not None:
        kwargs["subsample_size"] = check_positive_int("batch_size", batch_size)
    if max_seconds is not None:
        max_seconds = check_positive("max_seconds", max_seconds)
    elbo = make_elbo(estimator, num_particles, vectorize_particles)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    with pyro_exclusive("bayesdepth.fit"):
        if check_seed(seed) is not None:
            pyro.set_rng_seed(seed)
        return _run(model, guide, args, kwargs, elbo, optimizer, num_steps, lr,
                    final_lr_fraction, anneal_steps, max_seconds, progress, callback)


def _run(model, guide, args, kwargs, elbo, optimizer, num_steps, lr, final_lr_fraction,
         anneal_steps, max_seconds, progress, callback) -> FitHistory:
    if optimizer is None:
        decay = final_lr_fraction ** (1.0 / num_steps)
        optimizer = pyro.optim.ClippedAdam({"lr": lr, "lrd": decay, "clip_norm": 10.0})
    state = {"beta": 1.0}
    if anneal_steps:
        model, guide = _annealed(model, state), _annealed(guide, state)
    svi = SVI(model, guide, optimizer, loss=elbo)
    history = FitHistory()
    start = time.perf_counter()
    running = None
    bar = tqdm(range(num_steps), disable=not progress, desc="SVI", leave=False)
    for step in bar:
        if anneal_steps:
            state["beta"] = min(1.0, (step + 1) / anneal_steps)
        try:
            loss = svi.step(*args, **kwargs)
        except ValueError as exc:  # a parameter driven out of its support, e.g. a scale to 0
            if "to satisfy the constraint" not in str(exc):
                raise  # a mistake in the model or data, not a diverging run
            bar.close()
            reason = str(exc).splitlines()[0].split(", but found")[0]
            hint = "try a smaller lr" if step else (
                "check the data for NaN or infinite values and the model's initial values, "
                "or try a smaller lr")
            raise FloatingPointError(
                f"training diverged at step {step}: {reason} ({hint})"
            ) from exc
        if not math.isfinite(loss):
            bar.close()
            raise FloatingPointError(
                f"the ELBO loss is not finite at step {step}: {loss} (try a smaller lr)"
            )
        history.loss.append(float(loss))
        history.beta.append(state["beta"])
        running = loss if running is None else 0.95 * running + 0.05 * loss
        if progress and step % 10 == 0:
            bar.set_postfix(elbo=f"{-running:.4g}", refresh=False)
        if callback is not None and callback(step, loss):
            break
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
    bar.close()
    history.seconds = time.perf_counter() - start
    return history

