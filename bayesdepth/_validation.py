"""Argument checks shared by every public entry point.

Each check raises with a message that names the argument, the value received and what is
allowed, so that a user's mistake reads as one clear line rather than a deep traceback.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import weakref
from collections.abc import Iterable
from typing import Any

import torch


def positive_tensor(name: str, value: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A 0-dim tensor of ``dtype`` holding the positive number ``value``; raise when ``value`` is
    not a finite number > 0 or does not survive the conversion (under- or overflows)."""
    x = check_positive(name, value)
    t = torch.tensor(x, dtype=dtype)
    if not bool(torch.isfinite(t)) or float(t) <= 0:
        info = torch.finfo(dtype)
        raise ValueError(
            f"{name}={value!r} is not representable in {dtype} (its positive range is "
            f"[{info.tiny:.3g}, {info.max:.3g}])"
        )
    return t


def host_memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(setting: str, needed_bytes: int, what: str) -> None:
    """Refuse, before allocating, a size that cannot fit in this machine's memory.

    Args:
        setting: the argument(s) and value(s) responsible, e.g. ``"steps=1000000000"``.
        needed_bytes: the estimate of what one use of that size holds at once.
        what: what the estimate counts (shown in the message).
    """
    available = host_memory_bytes()
    if available is not None and needed_bytes > available:
        raise ValueError(
            f"{setting} needs about {needed_bytes / 2**30:.3g} GiB ({what}), more than the "
            f"{available / 2**30:.3g} GiB of memory of this machine"
        )


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """Return ``seed`` unchanged, or raise unless it is None or an int in ``[0, 2**63)``."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{name} must be an int in [0, 2**63) or None, got {seed!r}")
    if not 0 <= seed < 2**63:
        raise ValueError(f"{name} must be an int in [0, 2**63) or None, got {seed}")
    return seed


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_shape(name: str, value: Any, ranks: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """An input shape: an int (features) or a non-empty tuple of positive ints (``(C, H, W)``).

    ``ranks`` lists the allowed lengths of the tuple (``None``: any).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        shape = (value,)
    else:
        try:
            shape = tuple(value)
        except TypeError:
            raise TypeError(
                f"{name} must be an int (features) or a tuple such as (C, H, W), got {value!r}"
            ) from None
    if not shape or (ranks is not None and len(shape) not in ranks):
        allowed = "at least one" if ranks is None else " or ".join(map(str, ranks))
        raise ValueError(f"{name} must have {allowed} entries, got {value!r}")
    return tuple(check_positive_int(name, s) for s in shape)


def check_positive(name: str, value: Any, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, or raise if it is not finite and > 0 (>= 0 if allowed).

    Booleans and strings are refused (``True`` is not a learning rate, nor is ``"0.1"``).
    """
    is_scalar_tensor = isinstance(value, torch.Tensor) and value.numel() == 1
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or is_scalar_tensor):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    x = float(value)
    bound = ">= 0" if allow_zero else "> 0"
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return x


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Raise unless ``value`` is one of ``choices`` (the message lists them)."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_tensor(
    name: str,
    value: Any,
    ndim: int | tuple[int, ...] | None = None,
    floating: bool = False,
) -> torch.Tensor:
    """Raise unless ``value`` is a tensor with the given number of dimensions (and float dtype)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.dim() not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimension(s), "
                f"got shape {tuple(value.shape)}"
            )
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {value.dtype}")
    return value


def check_rows(name: str, value: torch.Tensor) -> torch.Tensor:
    """Raise unless ``value`` has at least one row and only finite entries (naming the first
    bad row, counted from 0)."""
    if value.shape[0] == 0:
        raise ValueError(f"{name} has no rows (shape {tuple(value.shape)})")
    if value.is_floating_point() or value.is_complex():
        bad = ~torch.isfinite(value.reshape(value.shape[0], -1)).all(-1)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            raise ValueError(f"{name} has a NaN or infinite value in row {row}")
    return value


#: ``id(tensor) -> (weak reference, version counter)`` of the tensors ``check_rows_once`` passed
_ROWS_PASSED: dict[int, tuple[weakref.ref, int]] = {}


def _version(value: torch.Tensor) -> int | None:
    try:
        return value._version
    except RuntimeError:  # an inference-mode tensor has no version counter
        return None


def check_rows_once(name: str, value: torch.Tensor) -> torch.Tensor:
    """:func:`check_rows`, skipped for a tensor that has passed it and is unmodified since.

    Pyro's ``plate(subsample_size=...)`` hands the model the whole data set at every SVI step;
    checking every entry each time cost 318 ms per step for MNIST-sized inputs (60000 x 784,
    one CPU thread) and a device synchronisation per step on a GPU. A tensor is checked again
    when it is another object or was written in place (its version counter moved). Writes
    that bypass the counter (through ``.data`` or a shared NumPy array) are not seen here;
    ``fit`` still reports the non-finite loss they lead to.
    """
    key, version = id(value), _version(value)
    seen = _ROWS_PASSED.get(key)
    if version is not None and seen is not None and seen[0]() is value and seen[1] == version:
        return value
    check_rows(name, value)
    if version is not None:
        ref = weakref.ref(value, lambda _, key=key: _ROWS_PASSED.pop(key, None))
        _ROWS_PASSED[key] = (ref, version)
    return value


def check_finite(name: str, value: torch.Tensor, step: int | None = None) -> torch.Tensor:
    """Raise ``FloatingPointError`` if ``value`` has a NaN or infinity (naming the step)."""
    if not bool(torch.isfinite(value).all()):
        where = f" at step {step}" if step is not None else ""
        raise FloatingPointError(f"{name} is not finite{where}: {value.detach().flatten()[:8]}")
    return value


def check_dtype(name: str, dtype: Any) -> torch.dtype:
    """Raise unless ``dtype`` is a floating torch dtype."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(
            f"{name} must be a floating torch dtype such as torch.float32 or torch.float64, "
            f"got {dtype!r}"
        )
    return dtype
