"""The multi-scale SDE-BNN image classifier of the paper, and its invertible downsampling.

Xu et al. (2022), section 6 and their released code: images ``(C, H, W)`` get ``augment`` zero
channels (Dupont et al. 2019), then ``S`` *stages* of SDE-BNN blocks, each block with its own
weight SDE (one Pyro site per block); between stages an invertible downsampling
(space-to-depth, "squeeze", Dinh et al. 2017) trades resolution for channels,

    (C, H, W) -> (4 C, H / 2, W / 2),   h'[4c + 2i + j, y, x] = h[c, 2y + i, 2x + j],

and a linear readout of the flattened final state gives the logits (docs/theory.md §8.12). Stage
``s`` therefore works on ``(C_0 4^s, H / 2^s, W / 2^s)`` with ``C_0 = C + augment``; the default
field of a stage is :class:`~bayesdepth.sde.ResNetField` ``(C_s, hidden)``.
:meth:`MultiScaleSDEBNN.preset` gives the sizes used in this repository, from a CPU-sized model
for 8x8 digits to the paper's CIFAR-10 size (about 0.7M SDE-driven weights);
``python benchmarks/sdebnn_paper.py --count`` prints their parameter counts.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import ClassVar

import torch
from pyro.nn import PyroModule
from torch import nn
from torch.nn import functional as F

from .._validation import check_positive_int, check_tensor
from ..likelihoods import Categorical
from ..seeding import seeded
from ..serialization import Recorded
from .block import SDEBNNBlock
from .fields import ResNetField
from .models import SDEBNNModel
from .processes import OUPrior

__all__ = ["MultiScaleSDEBNN", "SpaceToDepth"]


class SpaceToDepth(Recorded, nn.Module):
    """Invertible downsampling ``(..., C, H, W) -> (..., C r^2, H / r, W / r)``.

    Output channel ``c r^2 + i r + j`` holds the pixels at offset ``(i, j)`` of each ``r x r``
    patch of input channel ``c`` (``torch.nn.functional.pixel_unshuffle``); :meth:`inverse`
    undoes it exactly.

    Args:
        factor: the patch size ``r`` (2 in the paper).
    """

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = check_positive_int("factor", factor, minimum=2)

    def _check(self, h: torch.Tensor) -> None:
        if not isinstance(h, torch.Tensor) or h.dim() < 3:
            got = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            raise ValueError(f"h must have shape (..., C, H, W), got {got}")
        bad = [s for s in h.shape[-2:] if s % self.factor]
        if bad:
            raise ValueError(
                f"SpaceToDepth(factor={self.factor}) needs H and W divisible by {self.factor}, "
                f"got h of shape {tuple(h.shape)}"
            )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self._check(h)
        return F.pixel_unshuffle(h, self.factor)

    def inverse(self, h: torch.Tensor) -> torch.Tensor:
        """``(..., C r^2, H, W) -> (..., C, H r, W r)``, the exact inverse of ``forward``."""
        if not isinstance(h, torch.Tensor) or h.dim() < 3 or h.shape[-3] % self.factor**2:
            got = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            raise ValueError(
                f"h must have shape (..., C * {self.factor ** 2}, H, W), got {got}"
            )
        return F.pixel_shuffle(h, self.factor)


def _stage_fields(field, channels: list[int], hidden: int) -> list[nn.Module]:
    if field is None:
        return [ResNetField(c, hidden) for c in channels]
    fields = [field] if isinstance(field, nn.Module) else list(field)
    if not all(isinstance(f, nn.Module) for f in fields) or len(fields) != len(channels):
        raise ValueError(
            f"field must be None (a ResNetField per stage), or one nn.Module per stage "
            f"({len(channels)} stages with {channels} channels), got {field!r}"
        )
    return fields


class MultiScaleSDEBNN(SDEBNNModel):
    """Multi-scale SDE-BNN classifier for images ``(n, C, H, W)`` (see the module docstring).

    Args:
        in_shape: ``(C, H, W)`` of the images.
        num_classes: classes.
        blocks: SDE-BNN blocks per stage, e.g. ``(2, 2, 2)``: three stages, two downsamplings.
        augment: zero channels appended to the image (``C_0 = C + augment``).
        hidden: hidden channels of the default :class:`~bayesdepth.sde.ResNetField`.
        field: None (a ResNetField per stage), or one field module per stage mapping
            ``(n, C_s, H_s, W_s)`` to itself (every block of the stage gets its own copy,
            starting at the module's parameters).
        steps: Euler grid steps per block.
        prior: the OU prior of every weight SDE (default ``OUPrior(sigma=0.1)``).
        likelihood: a :class:`~bayesdepth.Categorical` (default).
        block_kwargs: passed on to every :class:`SDEBNNBlock` (``solver``, ``w0``, ``rank``,
            ``drift_hidden``, ...); the posterior drift defaults to a rank-2 bottleneck with 64
            hidden units (the paper's drift network is a narrow bottleneck too, so its size
            stays below the weights').
        seed: seeds the initial weights.

    Raises:
        ValueError: a downsampling stage on an odd spatial size (H and W must be divisible by
            ``2^(stages - 1)``), bad counts or shapes, naming the argument and the value.
    """

    default_num_samples = 16
    default_chunk_size = 4

    #: named sizes (see :meth:`preset`); counts: ``python benchmarks/sdebnn_paper.py --count``
    PRESETS: ClassVar[dict[str, dict]] = {
        "tiny": {"in_shape": (1, 8, 8), "blocks": (1, 1), "augment": 3, "hidden": 8, "steps": 4},
        "digits": {"in_shape": (1, 8, 8), "blocks": (1, 1), "augment": 3, "hidden": 32,
                   "steps": 10},
        "mnist": {"in_shape": (1, 28, 28), "blocks": (2, 2, 2), "augment": 1, "hidden": 32,
                  "steps": 20},
        "cifar10": {"in_shape": (3, 32, 32), "blocks": (2, 2, 2), "augment": 5, "hidden": 100,
                    "steps": 20},
    }

    @classmethod
    def preset(cls, name: str, num_classes: int = 10, **overrides) -> MultiScaleSDEBNN:
        """A model of one of :attr:`PRESETS` (``"tiny"``, ``"digits"``, ``"mnist"``,
        ``"cifar10"``); keyword arguments override its settings."""
        if name not in cls.PRESETS:
            raise ValueError(f"preset must be one of {', '.join(cls.PRESETS)}, got {name!r}")
        return cls(num_classes=num_classes, **{**cls.PRESETS[name], **overrides})

    def __init__(
        self,
        in_shape: Sequence[int] = (3, 32, 32),
        num_classes: int = 10,
        blocks: Sequence[int] = (2, 2, 2),
        augment: int = 5,
        hidden: int = 64,
        field: nn.Module | Sequence[nn.Module] | None = None,
        steps: int = 20,
        prior: OUPrior | None = None,
        likelihood: Categorical | None = None,
        block_kwargs: dict | None = None,
        seed: int | None = None,
    ) -> None:
        num_classes, likelihood = self.classifier_likelihood(num_classes, likelihood)
        super().__init__(likelihood, num_classes)
        self.num_classes = num_classes
        shape = tuple(in_shape) if not isinstance(in_shape, int) else (in_shape,)
        if len(shape) != 3:
            raise ValueError(f"in_shape must be (C, H, W), got {in_shape!r}")
        self.in_shape = tuple(check_positive_int("in_shape", s) for s in shape)
        counts = [blocks] if isinstance(blocks, int) else list(blocks)
        if not counts:
            raise ValueError("blocks must list at least one stage, e.g. (2, 2, 2)")
        counts = [check_positive_int("blocks", b) for b in counts]
        augment = check_positive_int("augment", augment, minimum=0)
        hidden = check_positive_int("hidden", hidden)
        down = 2 ** (len(counts) - 1)
        c, h, w = self.in_shape
        if h % down or w % down:
            raise ValueError(
                f"in_shape {self.in_shape} cannot be downsampled {len(counts) - 1} times by 2 "
                f"(blocks={tuple(counts)}): H and W must be divisible by {down}"
            )
        channels = [(c + augment) * 4**s for s in range(len(counts))]
        kwargs = {"rank": 2, "drift_hidden": 64, **(block_kwargs or {})}
        prior = OUPrior(sigma=0.1) if prior is None else prior
        self.stage_of: list[int] = []
        built = []
        with seeded(seed):
            fields = _stage_fields(field, channels, hidden)
            for s, (count, stage_field) in enumerate(zip(counts, fields)):
                size = (h // 2**s, w // 2**s)
                for j in range(count):
                    first = s == 0 and j == 0
                    built.append(SDEBNNBlock(
                        copy.deepcopy(stage_field),
                        (c if first else channels[s], *size), augment=augment if first else 0,
                        steps=steps, prior=prior, name=f"blocks.{len(built)}", **kwargs,
                    ))
                    self.stage_of.append(s)
            self.blocks = PyroModule[nn.ModuleList](built)
            self.downsample = SpaceToDepth(2)
            features = channels[-1] * (h // down) * (w // down)
            self.readout = PyroModule[nn.Linear](features, num_classes)
            self.stage_channels = channels
            self._attach_field_guide(torch.zeros(1, *self.in_shape))

    def check_inputs(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, ndim=4, floating=True)
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(
                f"x must have shape (n, {', '.join(map(str, self.in_shape))}), got "
                f"{tuple(x.shape)}"
            )
        return x

    def function(self, x: torch.Tensor, paths: list[torch.Tensor]) -> torch.Tensor:
        h = x
        for i, (block, path) in enumerate(zip(self.blocks, paths)):
            if i and self.stage_of[i] != self.stage_of[i - 1]:
                h = self.downsample(h)
            h = block.integrate(h, path)
        return self.readout(h.flatten(-3))

    def stage_table(self) -> list[dict]:
        """One row per stage: channels, spatial size, blocks, SDE-driven weights and drift
        parameters (summed over the stage's blocks)."""
        rows = []
        for s, channels in enumerate(self.stage_channels):
            members = [b for b, t in zip(self.blocks, self.stage_of) if t == s]
            rows.append({
                "stage": s, "channels": channels, "size": tuple(members[0].state_shape[1:]),
                "blocks": len(members),
                "sde_weights": sum(b.num_weights for b in members),
                "drift": sum(p.numel() for b in members for p in b.posterior.parameters()),
            })
        return rows

    def extra_repr(self) -> str:
        counts = self.parameter_counts()
        return (f"in_shape={self.in_shape}, stages={len(self.stage_channels)}, "
                f"sde_weights={counts['sde_weights']:,}, drift={counts['drift']:,}, "
                f"point={counts['point']:,}")


def count_table(presets: Sequence[str] | None = None) -> str:
    """A text table of :meth:`MultiScaleSDEBNN.parameter_counts` for the presets."""
    lines = [f"{'preset':<8} {'in_shape':<12} {'blocks':<10} {'hidden':>6} {'SDE weights':>12} "
             f"{'drift':>10} {'point':>8}"]
    for name in presets or MultiScaleSDEBNN.PRESETS:
        model = MultiScaleSDEBNN.preset(name)
        counts = model.parameter_counts()
        cfg = MultiScaleSDEBNN.PRESETS[name]
        lines.append(f"{name:<8} {cfg['in_shape']!s:<12} {cfg['blocks']!s:<10} "
                     f"{cfg['hidden']:>6} {counts['sde_weights']:>12,} {counts['drift']:>10,} "
                     f"{counts['point']:>8,}")
    return "\n".join(lines)

