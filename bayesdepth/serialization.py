"""Saving and loading models: constructor arguments plus module state, no pickled code.

A saved model is a ``torch.save`` file holding plain data only: the class name, the arguments the
model was constructed with (recorded when it was created; nested components such as a prior, a
likelihood or a vector field are recorded the same way), its ``state_dict`` (weights, buffers and
the guide's parameters, which every model owns) and optional JSON-like ``metadata``. Loading uses
``torch.load(weights_only=True)``: nothing is unpickled but tensors and containers, and classes
are looked up by name, from ``bayesdepth`` itself or from the ``classes`` the caller passes.

Your own component classes (a user-defined field, drift, ...) become saveable with the
:func:`saveable` class decorator, or by subclassing :class:`Recorded`.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["Recorded", "load", "read_metadata", "save", "saveable"]

_FORMAT = "bayesdepth.model"
_VERSION = 1
_MARK = "__bayesdepth_saveable__"


class Recorded:
    """Mixin that records the arguments an instance was constructed with (``init_arguments``)."""

    def __new__(cls, *args: Any, **kwargs: Any):
        self = super().__new__(cls)
        object.__setattr__(self, "_recorded_arguments", (args, kwargs))
        return self

    @property
    def init_arguments(self) -> dict[str, Any]:
        """The constructor arguments by name (defaults not passed are not included)."""
        args, kwargs = self._recorded_arguments
        bound = inspect.signature(type(self).__init__).bind(self, *args, **kwargs)
        arguments = dict(bound.arguments)
        arguments.pop(next(iter(arguments)))  # self
        return arguments


setattr(Recorded, _MARK, True)


def saveable(cls: type) -> type:
    """Class decorator: make instances of ``cls`` record their constructor arguments.

    Example:
        >>> @bayesdepth.saveable
        ... class MyField(torch.nn.Module):
        ...     def __init__(self, channels): ...
    """
    if not isinstance(cls, type):
        raise TypeError(f"saveable decorates a class, got {cls!r}")
    original = cls.__new__

    def __new__(klass, *args, **kwargs):
        self = original(klass) if original is object.__new__ else original(klass, *args, **kwargs)
        object.__setattr__(self, "_recorded_arguments", (args, kwargs))
        return self

    cls.__new__ = staticmethod(__new__)
    cls.init_arguments = Recorded.init_arguments
    setattr(cls, _MARK, True)
    return cls


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"cannot save {where}: a dict with non-string keys")
        return {"__dict__": {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}}
    if getattr(type(value), _MARK, False) and hasattr(value, "_recorded_arguments"):
        return {"__object__": _class_name(type(value)),
                "arguments": _encode(value.init_arguments, where)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
        return {"__object__": _class_name(type(value)), "arguments": _encode(fields, where)}
    raise TypeError(
        f"cannot save {where}: a {type(value).__name__} records no constructor arguments; "
        "build it from bayesdepth components or decorate its class with @bayesdepth.saveable"
    )


def _resolve(name: str, classes: Mapping[str, type]) -> type:
    if name in classes:
        return classes[name]
    module, _, qualname = name.partition(":")
    if module != "bayesdepth" and not module.startswith("bayesdepth."):
        raise ValueError(
            f"the saved model uses the class {name}; pass it to load(..., classes=[...]) "
            "(only bayesdepth's own classes are looked up by name)"
        )
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _decode(value: Any, classes: Mapping[str, type]) -> Any:
    if isinstance(value, list):
        return [_decode(v, classes) for v in value]
    if not isinstance(value, dict):
        return value
    if "__dtype__" in value:
        return getattr(torch, value["__dtype__"])
    if "__tuple__" in value:
        return tuple(_decode(v, classes) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v, classes) for k, v in value["__dict__"].items()}
    if "__object__" in value:
        cls = _resolve(value["__object__"], classes)
        return cls(**_decode(value["arguments"], classes))
    raise ValueError(f"malformed saved value {sorted(value)}")


def save(
    model: torch.nn.Module, path: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Save ``model`` (constructor arguments and ``state_dict``) to ``path``; returns the path.

    Args:
        model: a bayesdepth model (or any module whose class records its arguments).
        path: the file to write (parent folders are created; written atomically).
        metadata: JSON-like extra information stored beside the model (see
            :func:`read_metadata`), e.g. how the inputs were standardised.

    Raises:
        TypeError: a constructor argument cannot be saved (the message names it).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    name = type(model).__name__
    payload = {
        "format": _FORMAT,
        "version": _VERSION,
        "class": _class_name(type(model)),
        "arguments": _encode(_arguments_of(model), name),
        "state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": _encode(dict(metadata or {}), "metadata"),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def _arguments_of(model: torch.nn.Module) -> dict[str, Any]:
    if not hasattr(model, "_recorded_arguments"):
        raise TypeError(
            f"cannot save a {type(model).__name__}: its constructor arguments were not recorded; "
            "decorate its class with @bayesdepth.saveable"
        )
    return model.init_arguments


def _read(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated or foreign: one clear error naming the file
        raise ValueError(f"{path} is not a bayesdepth model file ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a bayesdepth model file")
    if payload.get("version") != _VERSION:
        raise ValueError(f"{path} has format version {payload.get('version')}, "
                         f"this bayesdepth reads version {_VERSION}")
    return payload


def load(
    path: str | os.PathLike,
    *,
    classes: Iterable[type] = (),
    device: str | torch.device | None = None,
) -> torch.nn.Module:
    """Rebuild a model saved with :func:`save`: same arguments, same state, same predictions.

    Args:
        path: the file.
        classes: your own (``@saveable``) classes used by the model, e.g. a custom field.
        device: where to put the model (default: the CPU).
    """
    payload = _read(path)
    known = {_class_name(c): c for c in classes}
    cls = _resolve(payload["class"], known)
    model = cls(**_decode(payload["arguments"], known))
    model.load_state_dict(payload["state"])
    return model if device is None else model.to(device)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata`` stored with a saved model."""
    return _decode(_read(path)["metadata"], {})
