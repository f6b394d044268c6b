"""``sample``: run K chains of any sampler on a potential, with checkpoints and host-side draws.

One loop for every sampler: warmup steps, then draws kept every ``thin``-th eligible step (a step
is eligible when the step-size schedule is in a sampling phase, so cyclical schedules keep draws
only there). Draws are mapped to the constrained space of the potential and copied to the host in
chunks of ``chunk_size`` (:class:`~.recorder.Recorder`), so device memory does not grow with the
number of draws. A run that could never keep ``num_draws`` draws (a schedule without sampling
steps) is refused before the first step.

Reproducibility: all randomness (initial values, minibatches, injected noise) comes from one
``torch.Generator`` on the chains' device. A checkpoint (:mod:`.checkpoints`) holds the sampler
state, the generator state, the loop counters and the draws so far, with the run's fingerprint
(:mod:`.fingerprint`) and a checksum; resuming from it yields bit-for-bit the draws of an
uninterrupted run with the same seed, and a checkpoint of another run is refused, naming the
settings that differ.

Distributed (``distributed=True`` under ``torchrun``): the K chains are split into contiguous
blocks, one per process (on its own device with NCCL); every process draws the random numbers of
all K chains from the shared seed and keeps its block's (:mod:`.samplers.streams`), so its draws
are those of a single-process run with the same seed, bit for bit on the CPU. Each process writes
its own checkpoint; rank 0 gathers the chains into one :class:`Chains`.

Non-finite values in chain k at step s (the potential or gradient norm at the state the step
started from, or any entry of the state it produced, so an update that overflows counts at the
step that made it, step 0 included): ``on_nonfinite="raise"`` raises ``FloatingPointError`` naming
both; ``"stop_chain"`` freezes chain k at its last finite state, records ``(k, s)`` in
:attr:`Chains.failures`, fills its later draws with NaN, sets its ``nonfinite`` sample statistic,
and keeps the other chains going.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import torch
from tqdm.auto import tqdm

from bayesdepth import threads
from bayesdepth._validation import check_choice, check_positive_int, check_seed

from .chains import Chains
from .checkpoints import (
    check_resume,
    checkpoint_file,
    load_checkpoint,
    save_checkpoint,
    state_dict,
    to_device,
)
from .fingerprint import digest, run_fingerprint
from .potentials import Potential
from .recorder import Recorder
from .samplers._tree import chain_where, check_params, leaves
from .samplers.base import Sampler, SamplerState
from .samplers.streams import ChainStream, local

__all__ = ["Chains", "sample"]


def _block(num_chains: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous chains ``[lo, hi)`` of process ``rank`` (block sizes differ by <= 1)."""
    if num_chains < world_size:
        raise ValueError(f"num_chains={num_chains} is smaller than the {world_size} processes: "
                         "every process needs at least one chain")
    base, extra = divmod(num_chains, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


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
        g.manual_seed(seed)
    return g


def _resolve_device(device, potential: Potential, start: Any) -> torch.device:
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={str(device)!r} but CUDA is not available")
        return device
    if isinstance(start, torch.Tensor | Mapping):
        first = leaves(start)[0]
        if isinstance(first, torch.Tensor):
            return first.device
    return potential.device or torch.device("cpu")


def _check_state(state: Any, sampler: Sampler, num_chains: int, device: torch.device):
    """A warm-start state: the sampler's own state type and chain count, moved to ``device``."""
    expected = type(sampler.init(state.params)) if isinstance(state, SamplerState) else None
    if expected is None or type(state) is not expected:
        raise TypeError(
            f"state must be a {expected.__name__ if expected else 'SamplerState'} from "
            f"{type(sampler).__name__} (e.g. chains.state of an earlier run), got "
            f"{type(state).__name__}"
        )
    chains = check_params(state.params, "state.params")
    if chains != num_chains:
        raise ValueError(
            f"state holds {chains} chains (leading dimension), expected num_chains={num_chains}"
        )
    moved = {k: to_device(v, device) for k, v in state_dict(state).items() if k != "step"}
    return state.replace(**moved)


def _finite_per_chain(state: SamplerState) -> torch.Tensor:
    """Whether every floating entry of a state is finite, per chain (shape (chains,))."""
    ok = None
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        if value is None or isinstance(value, int | float):
            continue
        for leaf in leaves(value):
            if leaf.is_floating_point():
                finite = torch.isfinite(leaf.reshape(leaf.shape[0], -1)).all(-1)
                ok = finite if ok is None else ok & finite
    return ok


def _planned_steps(sampler: Sampler, start: int, warmup: int, num_draws: int,
                   thin: int) -> int | None:
    """Steps the run needs after step ``start`` (None when the schedule cannot tell); raises
    when no draw can be kept, naming the arguments."""
    try:
        after = sampler.lr.steps_for(num_draws * thin, start=start + warmup)
    except ValueError as exc:
        raise ValueError(
            f"sample(num_draws={num_draws}, thin={thin}, warmup={warmup}) can never keep a "
            f"draw with lr={sampler.lr!r}: {exc}"
        ) from None
    return None if after is None else warmup + after


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
    state: SamplerState | None = None,
    overwrite: bool = False,
    extend: bool = False,
    distributed: bool = False,
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
        device: where the chains run; default: where ``init`` (or ``state``) or the potential's
            data live.
        seed: seeds the run's randomness (give ``seed`` or ``generator``, not both).
        generator: the run's ``torch.Generator`` instead of a seed (on ``device``).
        progress: show a tqdm bar with the running mean potential.
        checkpoint: a folder; every ``checkpoint_every`` draws (and at the end) the run is saved
            there, and with ``resume=True`` an existing checkpoint of the same run is continued
            (a checkpoint of another run is an error naming the settings that differ).
        on_nonfinite: ``"raise"`` or ``"stop_chain"`` (see the module docstring).
        chunk_size: draws kept on the device before they are copied to the host.
        state: a warm start instead of ``init``: a state of this sampler (e.g. ``chains.state``
            of an earlier run, whose pSGLD preconditioner, SGHMC velocity or SGD momentum it
            keeps; with ``PSGLD(adapt=False)`` the preconditioner stays frozen). Its step
            counter goes on (schedules continue where they were); ``warmup`` counts from it.
        overwrite: start afresh even if ``checkpoint`` holds a run (it is replaced).
        extend: resume a checkpoint whose run was started for fewer draws than ``num_draws``.
        distributed: split the chains across the processes ``torchrun`` started (see the
            module docstring); rank 0 returns all chains, the other ranks their own.

    Returns:
        :class:`Chains` with draws and statistics on the CPU.

    Raises:
        ValueError: for arguments out of range (named), or a schedule with which no draw could
            ever be kept (e.g. a cyclical schedule without sampling steps).
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
    seed = check_seed(seed)
    if seed is not None and generator is not None:
        raise ValueError("give seed or generator, not both")
    if state is not None and init is not None:
        raise ValueError("give init (parameters) or state (a warm start), not both")
    for name, flag in (("resume", resume), ("overwrite", overwrite), ("extend", extend),
                       ("distributed", distributed), ("progress", progress)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    device = _resolve_device(device, potential, init if state is None else state.params)
    group, lo, hi = None, 0, num_chains
    if distributed:
        if generator is not None:
            raise ValueError("distributed=True takes a seed (shared by the processes), not a "
                             "generator")
        from bayesdepth import distributed as ddp

        group = ddp.process_group(device=device)
        if group.backend == "nccl":
            device = group.device
        seed = ddp.shared_seed(seed, group)
        lo, hi = _block(num_chains, group.rank, group.world_size)
        progress = progress and group.is_main
    if potential.device is not None and potential.device != device:
        potential = potential.to(device)
    if distributed:
        gen = ChainStream.create(device, lo, hi, num_chains)
        gen.manual_seed(seed)
    else:
        gen = _make_generator(seed, generator, device)
    randomness = ("fresh" if seed is None and generator is None else f"seed {seed}"
                  if generator is None else f"generator {digest(generator.get_state())}")
    if state is not None:
        start_of_run = state_dict(state)
        state = _check_state(state, sampler, num_chains, device)
        state = state.replace(**{k: local(v, lo, hi, num_chains)
                                 for k, v in state_dict(state).items() if k != "step"})
    else:
        start_of_run = "potential.init" if init is None else init
        if init is None:
            params = potential.init(num_chains, gen)  # for all chains: a run's start is global
        else:
            params = to_device(potential.check_init(init, num_chains), device)
        if check_params(params, "init") != num_chains:
            raise ValueError(
                f"init has {check_params(params, 'init')} chains (leading dimension), "
                f"expected num_chains={num_chains}"
            )
        state = sampler.init(local(params, lo, hi, num_chains))
    grad_fn = potential.grad_fn(hi - lo)
    start = state.step
    fingerprint = run_fingerprint(
        potential, sampler, num_chains=num_chains, warmup=warmup, thin=thin,
        randomness=randomness, start=start_of_run, on_nonfinite=on_nonfinite,
        chain_slice=(lo, hi, num_chains))

    alive = torch.ones(hi - lo, dtype=torch.bool, device=device)
    failures: list[tuple[int, int]] = []
    eligible = 0
    recorder = Recorder(chunk_size)
    path = None
    if checkpoint is not None:
        path = (checkpoint_file(checkpoint) if group is None
                else checkpoint_file(checkpoint, group.rank, group.world_size))
    if path is not None and path.exists() and not overwrite:
        stored, ckpt = load_checkpoint(path)
        check_resume(path, stored, fingerprint, held=_held(ckpt["draws"]),
                     target=ckpt["num_draws"], num_draws=num_draws, extend=extend)
        if not resume:
            raise ValueError(f"checkpoint {path} holds this run already: pass resume=True to "
                             "continue it, or overwrite=True to start afresh")
        state = type(state)(**to_device(ckpt["state"], device))
        gen.set_state(ckpt["generator"])
        alive = ckpt["alive"].to(device)
        failures = [tuple(f) for f in ckpt["failures"]]
        eligible = ckpt["eligible"]
        start = ckpt["start"]
        recorder = Recorder(chunk_size, {k: [v] for k, v in ckpt["draws"].items()})
    planned = _planned_steps(sampler, start, warmup, num_draws, thin)

    def save() -> None:
        recorder.flush()
        save_checkpoint(path, fingerprint, {
            "num_draws": num_draws,
            "state": state_dict(state),
            "generator": gen.get_state(),
            "alive": alive,
            "failures": [list(f) for f in failures],
            "eligible": eligible,
            "start": start,
            "draws": {k: torch.cat(v, dim=1) for k, v in recorder.host.items()},
        })

    bar = tqdm(total=planned, initial=state.step - start, disable=not progress,
               desc=type(sampler).__name__)
    exclusive = (threads.pyro_exclusive("bayesdepth.inference.sample") if potential.uses_pyro
                 else contextlib.nullcontext())
    with exclusive:
        try:
            while recorder.count < num_draws:
                step = state.step
                new_state, info = sampler.step(state, grad_fn, gen)
                finite = torch.isfinite(info["potential"]) & torch.isfinite(info["grad_norm"])
                finite = finite & _finite_per_chain(new_state)
                bad = alive & ~finite
                if bool(bad.any()):
                    chains = bad.nonzero().flatten().tolist()
                    if on_nonfinite == "raise":
                        raise FloatingPointError(
                            f"non-finite potential, gradient or update in chain(s) "
                            f"{[lo + c for c in chains]} at step {step}; lower the step size, or "
                            "pass on_nonfinite='stop_chain'"
                        )
                    failures.extend((lo + c, step) for c in chains)
                    alive = alive & finite
                state = _freeze_stopped(alive, new_state, state)
                bar.update(1)
                if progress and (step % 50 == 0):
                    pot = info["potential"][alive]
                    running = float(pot.mean()) if pot.numel() else float("nan")
                    bar.set_postfix(potential=f"{running:.4g}", refresh=False)
                if state.step - start <= warmup or not sampler.lr.sampling(step):
                    continue
                eligible += 1
                if eligible % thin:
                    continue
                recorder.add(_record(potential, state, info, alive, device))
                if path is not None and recorder.count % checkpoint_every == 0:
                    save()
        finally:
            bar.close()
    if path is not None:
        save()  # the finished run, so that asking for it again returns it
    out = recorder.result()
    chains = Chains(
        draws={k[5:]: v for k, v in out.items() if k.startswith("draw:")},
        stats={k[5:]: v for k, v in out.items() if k.startswith("stat:")},
        failures=failures,
        observed_data=potential.observed_data,
        state=state,
        steps=state.step,
        potential=potential,
    )
    if group is None:
        return chains
    parts = group.gather(chains.detached(), "gathering the chains")
    return chains if parts is None else Chains.concatenate(parts, potential=potential)


def _freeze_stopped(alive: torch.Tensor, new: SamplerState, old: SamplerState) -> SamplerState:
    """``new``, with the stopped chains (``~alive``) kept at their ``old`` state."""
    if bool(alive.all()):
        return new
    return new.replace(**{f.name: chain_where(alive, getattr(new, f.name), getattr(old, f.name))
                          for f in dataclasses.fields(new) if f.name != "step"})


def _held(draws: dict[str, torch.Tensor]) -> int:
    return next(iter(draws.values())).shape[1] if draws else 0


def _record(potential: Potential, state: SamplerState, info: dict, alive: torch.Tensor,
            device: torch.device) -> dict[str, torch.Tensor]:
    """One draw of every chain (NaN for stopped chains) and the step's statistics."""
    num_chains = alive.shape[0]
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
    return record
