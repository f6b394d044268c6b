"""``sample``: run K chains of any sampler on a potential, with checkpoints and host-side draws.

One loop for every sampler: warmup steps, then draws kept every ``thin``-th eligible step (a step
is eligible when the step-size schedule is in a sampling phase, so cyclical schedules keep draws
only there). Draws are mapped to the constrained space of the potential and copied to the host in
chunks of ``chunk_size``, so device memory does not grow with the number of draws.

Reproducibility: all randomness (initial values, minibatches, injected noise) comes from one
``torch.Generator`` on the chains' device. A checkpoint holds the sampler state, the generator
state, the loop counters and the draws so far; resuming from it yields bit-for-bit the draws of an
uninterrupted run with the same seed.

Non-finite potential or gradient norm in chain k at step s: ``on_nonfinite="raise"`` raises
``FloatingPointError`` naming both; ``"stop_chain"`` freezes chain k at its last finite state,
records ``(k, s)`` in :attr:`Chains.failures`, fills its later draws with NaN, sets its
``nonfinite`` sample statistic, and keeps the other chains going.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bayesdepth._validation import check_choice, check_positive_int

from .potentials import Potential
from .samplers._tree import chain_where, check_params
from .samplers.base import Sampler, SamplerState
from .samplers.schedules import Schedule

__all__ = ["Chains", "sample"]

_CHECKPOINT = "checkpoint.pt"


@dataclass
class Chains:
    """The result of :func:`sample`.

    Attributes:
        draws: ``{name: tensor (chains, draws, *shape)}`` on the CPU, constrained space.
        stats: ``{name: tensor (chains, draws)}``: potential, grad_norm, lr, temperature,
            nonfinite, and any extra statistics the sampler reports (e.g. grad_noise, grad_sq).
        failures: ``(chain, step)`` pairs where a non-finite value stopped a chain.
        observed_data: the potential's observed data, if it knows it.
        state: the sampler state after the last step (on the chains' device).
        steps: the total number of sampler steps taken.
    """

    draws: dict[str, torch.Tensor]
    stats: dict[str, torch.Tensor]
    failures: list[tuple[int, int]] = field(default_factory=list)
    observed_data: dict[str, torch.Tensor] | None = None
    state: Any = None
    steps: int = 0

    @property
    def num_chains(self) -> int:
        return next(iter(self.draws.values())).shape[0]

    @property
    def num_draws(self) -> int:
        return next(iter(self.draws.values())).shape[1]

    def to_arviz(self, **kwargs: Any) -> Any:
        """ArviZ ``InferenceData`` (see :func:`bayesdepth.inference.diagnostics.to_arviz`)."""
        from .diagnostics import to_arviz

        return to_arviz(self, **kwargs)


def _state_dict(state: SamplerState) -> dict[str, Any]:
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}


def _to_device(tree: Any, device: torch.device) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, Mapping):
        return {k: _to_device(v, device) for k, v in tree.items()}
    return tree


def _make_generator(seed, generator, device: torch.device) -> torch.Generator:
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if torch.device(generator.device).type != device.type:
            raise ValueError(
                f"generator lives on {generator.device} but the chains run on {device}; "
                "pass a generator on the chains' device, or a seed"
            )
        return generator
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        g.manual_seed(seed)
    return g


def _resolve_device(device, potential: Potential, init) -> torch.device:
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={str(device)!r} but CUDA is not available")
        return device
    if init is not None:
        first = init if isinstance(init, torch.Tensor) else next(iter(init.values()))
        if isinstance(first, torch.Tensor):
            return first.device
    return potential.device or torch.device("cpu")


class _Recorder:
    """Collects draws and stats per step on the device; flushes them to the host in chunks."""

    def __init__(self, chunk_size: int, host: dict[str, list[torch.Tensor]] | None = None):
        self.chunk_size = chunk_size
        self.pending: dict[str, list[torch.Tensor]] = {}
        self.host: dict[str, list[torch.Tensor]] = host or {}
        self.count = sum(x.shape[1] for x in next(iter(self.host.values()), []))

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for k, v in values.items():
            self.pending.setdefault(k, []).append(v.detach())
        self.count += 1
        if len(next(iter(self.pending.values()))) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        for k, v in self.pending.items():
            self.host.setdefault(k, []).append(torch.stack(v, dim=1).cpu())
        self.pending = {}

    def result(self) -> dict[str, torch.Tensor]:
        self.flush()
        return {k: torch.cat(v, dim=1) for k, v in self.host.items()}


def sample(
    potential: Potential,
    sampler: Sampler,
    num_chains: int = 4,
    num_draws: int = 1000,
    warmup: int = 0,
    thin: int = 1,
    init: Any = None,
    device: str | torch.device | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 1000,
    resume: bool = True,
    on_nonfinite: str = "raise",
    chunk_size: int = 256,
) -> Chains:
    """Run ``num_chains`` chains of ``sampler`` on ``potential`` as one batched computation.

    Args:
        potential: a :class:`~bayesdepth.inference.potentials.Potential` (e.g. from
            :func:`pyro_potential` or :func:`module_potential`).
        sampler: any sampler object (SGLD, SGHMC, PSGLD, SGD, SVAG, ...).
        num_chains: K >= 1.
        num_draws: draws kept per chain.
        warmup: steps before any draw is kept.
        thin: keep every ``thin``-th eligible step.
        init: initial parameters ``{name: (chains, *shape)}`` (unconstrained); None draws them with
            ``potential.init`` from the run's generator.
        device: where the chains run; default: where ``init`` or the potential's data live.
        seed, generator: the run's randomness (give one; a generator must be on ``device``).
        progress: show a tqdm bar with the running mean potential.
        checkpoint: a folder; every ``checkpoint_every`` draws the run is saved there, and with
            ``resume=True`` an existing checkpoint is continued.
        on_nonfinite: ``"raise"`` or ``"stop_chain"`` (see the module docstring).
        chunk_size: draws kept on the device before they are copied to the host.

    Returns:
        :class:`Chains` with draws and statistics on the CPU.
    """
    if not isinstance(sampler, Sampler):
        raise TypeError(f"sampler must be a Sampler (SGLD(...), SGD(...), ...), got {sampler!r}")
    if not isinstance(potential, Potential):
        raise TypeError(f"potential must be a Potential, got {type(potential).__name__}")
    num_chains = check_positive_int("num_chains", num_chains)
    num_draws = check_positive_int("num_draws", num_draws)
    warmup = check_positive_int("warmup", warmup, minimum=0)
    thin = check_positive_int("thin", thin)
    checkpoint_every = check_positive_int("checkpoint_every", checkpoint_every)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    check_choice("on_nonfinite", on_nonfinite, ("raise", "stop_chain"))
    if seed is not None and generator is not None:
        raise ValueError("give seed or generator, not both")

    device = _resolve_device(device, potential, init)
    if potential.device is not None and potential.device != device:
        potential = potential.to(device)
    gen = _make_generator(seed, generator, device)
    if init is None:
        params = potential.init(num_chains, gen)
    else:
        params = _to_device(potential.check_init(init, num_chains), device)
    if check_params(params, "init") != num_chains:
        raise ValueError(
            f"init has {check_params(params, 'init')} chains (leading dimension), "
            f"expected num_chains={num_chains}"
        )
    state = sampler.init(params)
    grad_fn = potential.grad_fn(num_chains)

    alive = torch.ones(num_chains, dtype=torch.bool, device=device)
    failures: list[tuple[int, int]] = []
    eligible = 0
    recorder = _Recorder(chunk_size)
    path = Path(checkpoint) / _CHECKPOINT if checkpoint is not None else None
    if path is not None and resume and path.exists():
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if ckpt["num_chains"] != num_chains or ckpt["sampler"] != type(sampler).__name__:
            raise ValueError(
                f"checkpoint {path} holds {ckpt['num_chains']} chains of {ckpt['sampler']}, "
                f"but this run asks for {num_chains} chains of {type(sampler).__name__}; "
                "use another folder or resume=False"
            )
        state = type(state)(**_to_device(ckpt["state"], device))
        gen.set_state(ckpt["generator"])
        alive = ckpt["alive"].to(device)
        failures = [tuple(f) for f in ckpt["failures"]]
        eligible = ckpt["eligible"]
        recorder = _Recorder(chunk_size, {k: [v] for k, v in ckpt["draws"].items()})

    def save() -> None:
        recorder.flush()
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "num_chains": num_chains,
            "sampler": type(sampler).__name__,
            "state": _to_device(_state_dict(state), torch.device("cpu")),
            "generator": gen.get_state(),
            "alive": alive.cpu(),
            "failures": [list(f) for f in failures],
            "eligible": eligible,
            "draws": {k: torch.cat(v, dim=1) for k, v in recorder.host.items()},
        }
        tmp = path.with_suffix(".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)

    cyclical = type(sampler.lr).sampling is not Schedule.sampling
    total = None if cyclical else warmup + num_draws * thin
    bar = tqdm(total=total, initial=state.step, disable=not progress, desc=type(sampler).__name__)
    try:
        while recorder.count < num_draws:
            step = state.step
            new_state, info = sampler.step(state, grad_fn, gen)
            finite = torch.isfinite(info["potential"]) & torch.isfinite(info["grad_norm"])
            bad = alive & ~finite
            if bool(bad.any()):
                chains = bad.nonzero().flatten().tolist()
                if on_nonfinite == "raise":
                    raise FloatingPointError(
                        f"non-finite potential or gradient in chain(s) {chains} at step {step}; "
                        "lower the step size, or pass on_nonfinite='stop_chain'"
                    )
                failures.extend((c, step) for c in chains)
                alive = alive & finite
            if not bool(alive.all()):
                fields = {
                    f.name: chain_where(alive, getattr(new_state, f.name), getattr(state, f.name))
                    for f in dataclasses.fields(new_state)
                    if f.name != "step"
                }
                new_state = new_state.replace(**fields)
            state = new_state
            bar.update(1)
            if progress and (step % 50 == 0):
                pot = info["potential"][alive]
                running = float(pot.mean()) if pot.numel() else float("nan")
                bar.set_postfix(potential=f"{running:.4g}", refresh=False)
            if state.step <= warmup or not sampler.lr.sampling(step):
                continue
            eligible += 1
            if eligible % thin:
                continue
            record = {f"draw:{k}": v for k, v in potential.constrain(state.params).items()}
            nan = torch.tensor(float("nan"), device=device)
            for k, v in record.items():
                mask = alive.reshape((-1,) + (1,) * (v.dim() - 1))
                record[k] = torch.where(mask, v, nan.to(v.dtype))
            for k, v in info.items():
                if isinstance(v, float):
                    v = torch.tensor(v, device=device, dtype=torch.float64)
                elif not isinstance(v, torch.Tensor):
                    v = torch.as_tensor(v, device=device)
                record[f"stat:{k}"] = v.expand(num_chains) if v.dim() == 0 else v
            record["stat:nonfinite"] = ~alive
            recorder.add(record)
            if path is not None and recorder.count % checkpoint_every == 0:
                save()
    finally:
        bar.close()
    out = recorder.result()
    return Chains(
        draws={k[5:]: v for k, v in out.items() if k.startswith("draw:")},
        stats={k[5:]: v for k, v in out.items() if k.startswith("stat:")},
        failures=failures,
        observed_data=potential.observed_data,
        state=state,
        steps=state.step,
    )
