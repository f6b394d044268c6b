"""Named problems for the command line and the demo: embedded data sets or a user's CSV file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from . import data
from .tabular import read_csv

__all__ = ["Problem", "load_problem"]

EMBEDDED = ("toy1d", "annuli", "moons", "digits")


@dataclass(frozen=True)
class Problem:
    """Train (and test) tensors plus what a model needs to know about them.

    For regression ``num_classes`` is 0 and ``y_test`` may be None (``x_test`` is then a grid).
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor | None
    num_classes: int

    @property
    def is_regression(self) -> bool:
        return self.num_classes == 0

    @property
    def in_features(self) -> int:
        return self.x.shape[-1]

    def to(self, device: torch.device | str | None) -> Problem:
        """The same problem with every tensor moved to ``device`` (None: unchanged)."""
        if device is None:
            return self

        def move(t):
            return None if t is None else t.to(device)

        return Problem(self.name, move(self.x), move(self.y), move(self.x_test),
                       move(self.y_test), self.num_classes)


def _split(x, y, seed, test_fraction=0.2):
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    n_test = max(1, round(test_fraction * len(x)))
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


def _standardise(train: torch.Tensor, *others: torch.Tensor):
    mean, std = train.mean(0), train.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return [(t - mean) / std for t in (train, *others)]


def load_problem(
    name: str,
    target: str | None = None,
    task: str = "auto",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Problem:
    """An embedded data set by name, or a CSV file (``target`` names the label column).

    CSV data are split 80/20 (seeded) and features standardised with the training statistics;
    ``task="auto"`` treats an integer-valued target with at most 20 distinct values as class labels
    (relabelled 0..K-1), anything else as regression (the target is standardised too). The file is
    only read.
    """
    if name == "toy1d":
        d = data.toy_regression_1d(seed=seed, dtype=dtype)
        return Problem(name, d.x, d.y, d.x_test, None, 0)
    if name in ("annuli", "moons"):
        make = data.annuli if name == "annuli" else data.two_moons
        x, y = make(num_points=500, seed=seed, dtype=dtype)
        x_test, y_test = make(num_points=500, seed=seed + 1, dtype=dtype)
        return Problem(name, x, y, x_test, y_test, 2)
    if name == "digits":
        d = data.digits(seed=seed, dtype=dtype)
        return Problem(name, d.x_train, d.y_train, d.x_test, d.y_test, d.num_classes)
    path = Path(name)
    if path.suffix.lower() != ".csv" and not path.is_file():
        raise ValueError(
            f"data must be one of {', '.join(EMBEDDED)} or a path to a CSV file, got {name!r}"
        )
    if target is None:
        raise ValueError(f"target: a CSV file ({name}) needs --target naming the label column")
    if task not in ("auto", "regression", "classification"):
        raise ValueError(f"task must be auto, regression or classification, got {task!r}")
    table = read_csv(path, target=target, dtype=torch.float64)
    y = table.y
    integer = bool((y == y.round()).all())
    classes = torch.unique(y)
    if task == "auto":
        task = "classification" if integer and len(classes) <= 20 else "regression"
    if task == "classification":
        if not integer:
            raise ValueError(f"target column {target!r} has non-integer values; use --task "
                             "regression")
        y = torch.searchsorted(classes, y)
    x_tr, y_tr, x_te, y_te = _split(table.x, y, seed)
    x_tr, x_te = _standardise(x_tr, x_te)
    if task == "classification":
        return Problem(path.stem, x_tr.to(dtype), y_tr.long(), x_te.to(dtype), y_te.long(),
                       len(classes))
    y_tr, y_te = _standardise(y_tr, y_te)
    return Problem(path.stem, x_tr.to(dtype), y_tr.to(dtype), x_te.to(dtype), y_te.to(dtype), 0)
