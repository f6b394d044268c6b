"""Named problems for the command line and the demo: embedded data sets or a user's CSV file.

A :class:`Problem` carries the train and test tensors and the :class:`Preprocessing` that produced
them (feature names, standardisation, class labels), so a saved model can be applied to a new CSV
file in the original units (``bayesdepth predict``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bayesdepth import data

from .recipes import EMBEDDED_DATA, TASKS, VISION_DATA
from .tabular import read_csv, read_features

__all__ = ["Preprocessing", "Problem", "load_problem", "read_inputs"]


@dataclass(frozen=True)
class Preprocessing:
    """How raw feature columns become model inputs, and model outputs become targets.

    ``x_model = (x_raw - x_mean) / x_std``; for regression ``y_raw = y_model * y_std + y_mean``;
    for classification the model's class ``k`` is the label ``classes[k]``.
    """

    feature_names: tuple[str, ...]
    x_mean: tuple[float, ...]
    x_std: tuple[float, ...]
    target: str = "y"
    y_mean: float = 0.0
    y_std: float = 1.0
    classes: tuple[float, ...] = ()

    @property
    def is_regression(self) -> bool:
        return not self.classes

    def inputs(self, x_raw: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Standardised model inputs from raw feature columns."""
        mean = torch.tensor(self.x_mean, dtype=torch.float64)
        std = torch.tensor(self.x_std, dtype=torch.float64)
        return ((x_raw.to(torch.float64) - mean) / std).to(dtype)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Preprocessing:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v
                      for k, v in values.items() if k in names})

    @classmethod
    def identity(cls, num_features: int, classes: tuple[float, ...] = ()) -> Preprocessing:
        names = tuple(f"x{i}" for i in range(num_features))
        return cls(names, (0.0,) * num_features, (1.0,) * num_features, classes=classes)


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
    preprocessing: Preprocessing = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.preprocessing is None:
            classes = tuple(float(k) for k in range(self.num_classes))
            object.__setattr__(self, "preprocessing",
                               Preprocessing.identity(self.in_features, classes))

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

        return dataclasses.replace(self, x=move(self.x), y=move(self.y),
                                   x_test=move(self.x_test), y_test=move(self.y_test))


def _split(x, y, seed, test_fraction=0.2):
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    n_test = max(1, round(test_fraction * len(x)))
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


def _label(value: torch.Tensor) -> str:
    v = float(value)
    return str(int(v)) if v.is_integer() else str(v)


def _moments(train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(0), train.std(0)
    return mean, torch.where(std > 0, std, torch.ones_like(std))


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
    if name in VISION_DATA:
        d = getattr(data, name)(seed=seed, dtype=dtype)
        return Problem(name, d.x_train.flatten(1), d.y_train, d.x_test.flatten(1), d.y_test,
                       d.num_classes)
    path = Path(name)
    if path.suffix.lower() != ".csv" and not path.is_file():
        raise ValueError(
            f"data must be one of {', '.join(EMBEDDED_DATA + VISION_DATA)} or a path to a CSV "
            f"file, got {name!r}"
        )
    if target is None:
        raise ValueError(f"target: a CSV file ({name}) needs --target naming the label column")
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    table = read_csv(path, target=target, dtype=dtype)  # values must fit the working dtype
    x, y = table.x.double(), table.y.double()
    if len(y) < 2:
        raise ValueError(f"{path}: need at least 2 data rows (a training and a test row), "
                         f"got {len(y)}")
    integer = bool((y == y.round()).all())
    classes = torch.unique(y)
    if task == "auto":
        task = "classification" if integer and len(classes) <= 20 else "regression"
    if task == "classification":
        if not integer:
            raise ValueError(f"target column {target!r} has non-integer values; use --task "
                             "regression")
        if len(classes) < 2:
            raise ValueError(f"target column {target!r} has a single class "
                             f"({_label(classes[0])}): nothing to classify")
        y = torch.searchsorted(classes, y.contiguous())
    x_tr, y_tr, x_te, y_te = _split(x, y, seed)
    x_mean, x_std = _moments(x_tr)
    pre = Preprocessing(table.feature_names, tuple(x_mean.tolist()), tuple(x_std.tolist()),
                        target)
    x_tr, x_te = pre.inputs(x_tr, dtype), pre.inputs(x_te, dtype)
    if task == "classification":
        pre = dataclasses.replace(pre, classes=tuple(classes.tolist()))
        return Problem(path.stem, x_tr, y_tr.long(), x_te, y_te.long(), len(classes), pre)
    y_mean, y_std = (float(v) for v in _moments(y_tr.unsqueeze(-1)))
    pre = dataclasses.replace(pre, y_mean=y_mean, y_std=y_std)
    return Problem(path.stem, x_tr, ((y_tr - y_mean) / y_std).to(dtype), x_te,
                   ((y_te - y_mean) / y_std).to(dtype), 0, pre)


def read_inputs(path: str | Path, pre: Preprocessing, dtype: torch.dtype):
    """Model inputs from a CSV file with the columns ``pre.feature_names`` (and, if present, the
    raw target column, for scoring)."""
    x_raw, y_raw = read_features(path, pre.feature_names, pre.target)
    return pre.inputs(x_raw, dtype), y_raw
