"""MNIST and CIFAR-10 through torchvision (the optional ``vision`` extra).

``pip install "bayesdepth[vision]"`` installs torchvision; without it, :func:`mnist` and
:func:`cifar10` raise an ``ImportError`` naming the extra. The files are read by the real
``torchvision.datasets.MNIST`` / ``CIFAR10`` classes from ``root`` (default: the folder in
``$BAYESDEPTH_DATA``, else ``~/.cache/bayesdepth/data``), downloaded there on first use unless
``download=False``. Images come back as float tensors ``(n, C, H, W)``, scaled to ``[0, 1]`` and
standardised per channel with the *training* mean and standard deviation (of the training rows
returned), with integer labels, as a :class:`~bayesdepth.data.ClassificationData`.

A torchvision wheel built for CUDA next to a CPU build of torch fails at import with
``RuntimeError: operator torchvision::nms does not exist`` (its compiled detection operators do
not load). Only then, :func:`torchvision_datasets` defines the schemas of the two missing
operators, ``torchvision::nms`` and ``torchvision::qnms``, so that the package and its data sets
import (the detection operators themselves stay unavailable), and warns once.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

import torch

from .._validation import check_dtype, check_positive_int
from .embedded import ClassificationData

__all__ = ["cifar10", "default_root", "mnist", "torchvision_datasets"]

_MISSING_OP = "operator torchvision::nms does not exist"
_NMS_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
_DATASETS: ModuleType | None = None


def default_root() -> Path:
    """Where the data sets are kept: ``$BAYESDEPTH_DATA``, else ``~/.cache/bayesdepth/data``."""
    env = os.environ.get("BAYESDEPTH_DATA")
    return Path(env) if env else Path.home() / ".cache" / "bayesdepth" / "data"


def torchvision_datasets() -> ModuleType:
    """``torchvision.datasets``, imported once (with the operator workaround above if needed).

    Raises:
        ImportError: torchvision is not installed (the message names the ``vision`` extra).
    """
    global _DATASETS
    if _DATASETS is not None:
        return _DATASETS
    try:
        import torchvision.datasets as datasets
    except ImportError as exc:
        raise ImportError(
            "bayesdepth.data.mnist and cifar10 need torchvision: pip install 'bayesdepth[vision]' "
            f"(or pip install torchvision matching your torch {torch.__version__}); {exc}"
        ) from exc
    except RuntimeError as exc:
        if _MISSING_OP not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        for op in ("nms", "qnms"):
            try:
                torch.library.define(f"torchvision::{op}", _NMS_SCHEMA)
            except RuntimeError:  # defined already
                pass
        warnings.warn(
            f"torchvision's compiled operators do not load with this torch {torch.__version__} "
            f"({exc}); defined the schemas of torchvision::nms and torchvision::qnms so that its "
            "data sets import. Detection operators stay unavailable; install the torchvision "
            "build matching torch to use them",
            RuntimeWarning,
            stacklevel=2,
        )
        import torchvision.datasets as datasets
    _DATASETS = datasets
    return datasets


def _subset(n: int, size: int | None, seed: int, name: str) -> torch.Tensor | None:
    if size is None:
        return None
    size = check_positive_int(name, size)
    if size > n:
        raise ValueError(f"{name} must be at most the {n} images available, got {size}")
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size]


def _dataset(cls_name: str, root, train: bool, download: bool):
    datasets = torchvision_datasets()
    root = default_root() if root is None else Path(root)
    if not isinstance(download, bool):
        raise TypeError(f"download must be True or False, got {download!r}")
    try:
        return getattr(datasets, cls_name)(str(root), train=train, download=download)
    except RuntimeError as exc:
        if not download and "not found" in str(exc).lower():
            raise FileNotFoundError(
                f"{cls_name} files not found (or not intact) under {root} ({exc}); call with "
                "download=True, or pass root= the folder that holds them"
            ) from None
        raise


def _load(cls_name: str, root, download: bool, num_train, num_test, seed: int,
          dtype: torch.dtype, channels_last: bool) -> ClassificationData:
    check_dtype("dtype", dtype)
    parts = []
    for train, size, name in ((True, num_train, "num_train"), (False, num_test, "num_test")):
        ds = _dataset(cls_name, root, train, download)
        images = torch.as_tensor(ds.data)
        labels = torch.as_tensor(ds.targets).long()
        images = images.permute(0, 3, 1, 2) if channels_last else images.unsqueeze(1)
        idx = _subset(len(labels), size, seed + (0 if train else 1), name)
        if idx is not None:
            images, labels = images[idx], labels[idx]
        parts.append((images.to(torch.float64) / 255.0, labels))
    (x_tr, y_tr), (x_te, y_te) = parts
    mean = x_tr.mean((0, 2, 3), keepdim=True)
    std = x_tr.std((0, 2, 3), keepdim=True)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return ClassificationData(
        x_train=((x_tr - mean) / std).to(dtype), y_train=y_tr,
        x_test=((x_te - mean) / std).to(dtype), y_test=y_te, num_classes=10,
    )


def mnist(
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    num_train: int | None = None,
    num_test: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> ClassificationData:
    """MNIST (60,000 training and 10,000 test digits, 28x28, one channel) via torchvision.

    Args:
        root: folder holding (or receiving) ``MNIST/raw/``; default :func:`default_root`.
        download: fetch the files if they are missing (``False``: a ``FileNotFoundError``).
        num_train: a random subset of that many training images (seeded), or all (``None``).
        num_test: the same for the test images.
        seed: seeds the subsets.
        dtype: of the images (labels are int64).

    Returns:
        :class:`~bayesdepth.data.ClassificationData` with images ``(n, 1, 28, 28)``.
    """
    return _load("MNIST", root, download, num_train, num_test, seed, dtype, channels_last=False)


def cifar10(
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    num_train: int | None = None,
    num_test: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> ClassificationData:
    """CIFAR-10 (50,000 training and 10,000 test images, 32x32, RGB) via torchvision.

    Same arguments as :func:`mnist`; ``root`` holds ``cifar-10-batches-py/``. Returns images
    ``(n, 3, 32, 32)``.
    """
    return _load("CIFAR10", root, download, num_train, num_test, seed, dtype, channels_last=True)
