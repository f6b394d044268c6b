"""Minibatch Adam training of a deterministic :class:`AugmentedNeuralODE`, with NFE per step."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._validation import check_choice, check_positive, check_positive_int, check_seed, check_tensor
from .model import AugmentedNeuralODE
from .solver import SolveCost

__all__ = ["TrainHistory", "train_anode"]


@dataclass
class TrainHistory:
    """Per-step loss and solver cost of :func:`train_anode`, and the total wall time (s)."""

    loss: list[float] = field(default_factory=list)
    forward_nfe: list[int] = field(default_factory=list)
    backward_nfe: list[int] = field(default_factory=list)
    seconds: float = 0.0


def train_anode(
    model: AugmentedNeuralODE,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str = "cross_entropy",
    steps: int = 200,
    batch_size: int | None = None,
    lr: float = 1e-2,
    seed: int | None = 0,
    progress: bool = False,
) -> TrainHistory:
    """Fit ``model`` to ``(x, y)`` by Adam on minibatches; returns the history.

    Args:
        loss: ``"cross_entropy"`` (``y`` integer labels) or ``"mse"`` (``y`` shaped like the
            output, or (n,) for one output).
        steps: optimiser steps; batch_size: rows per step (None: all rows);
        lr: Adam learning rate; seed: seeds the minibatch draws (``torch.Generator``; None:
            fresh randomness).
        progress: show a tqdm bar with the running loss and NFE.

    Raises:
        FloatingPointError: the loss became non-finite (naming the step).
    """
    check_choice("loss", loss, ("cross_entropy", "mse"))
    steps = check_positive_int("steps", steps)
    lr = check_positive("lr", lr)
    check_tensor("y", y)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have {x.shape[0]} rows like x, got shape {tuple(y.shape)}")
    n = x.shape[0]
    batch_size = n if batch_size is None else min(check_positive_int("batch_size", batch_size), n)
    gen = torch.Generator(device="cpu")
    if check_seed(seed) is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = TrainHistory()
    start = time.perf_counter()
    bar = tqdm(range(steps), disable=not progress, desc="anode")
    for step in bar:
        idx = torch.randperm(n, generator=gen)[:batch_size].to(x.device)
        cost = SolveCost()
        out = model(x[idx], cost=cost)
        target = y[idx]
        if loss == "cross_entropy":
            value = F.cross_entropy(out, target)
        else:
            value = F.mse_loss(out, target.reshape(out.shape))
        if not torch.isfinite(value):
            raise FloatingPointError(f"loss is not finite at step {step}: {value.item()}")
        opt.zero_grad()
        value.backward()
        opt.step()
        history.loss.append(value.item())
        history.forward_nfe.append(cost.forward_nfe)
        history.backward_nfe.append(cost.backward_nfe)
        bar.set_postfix(loss=f"{value.item():.4f}", nfe=cost.forward_nfe)
    history.seconds = time.perf_counter() - start
    return history
