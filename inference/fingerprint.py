"""Content digests of what determines a run's draws, so a checkpoint knows which run it is.

:func:`digest` hashes a value by its content: tensors by dtype, shape and bytes, modules by their
class and ``state_dict``, generators by their state, functions by their qualified name, defaults
and closure, modules and classes by their names, containers and plain objects by their items
and attributes (caches left out). Two runs whose potential (model, data, options), sampler
(class, options, schedules), chain count, warm-up, thinning, randomness and start digest alike
produce the same draws; :func:`run_fingerprint` collects those digests under readable names, so
a mismatch can be reported setting by setting.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["digest", "run_fingerprint"]

_DEPTH = 8  # how deep plain objects are followed


def digest(value: Any) -> str:
    """A short hexadecimal digest of ``value``'s content (see the module docstring)."""
    h = hashlib.sha256()
    _feed(h, value, _DEPTH, {})
    return h.hexdigest()[:24]


def _feed(h, value: Any, depth: int, seen: dict[int, Any]) -> None:
    h.update(type(value).__qualname__.encode())
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        h.update(repr(value).encode())
        return
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return
    if isinstance(value, torch.dtype | torch.device):
        h.update(str(value).encode())
        return
    if isinstance(value, torch.Generator):
        h.update(value.get_state().numpy().tobytes())
        return
    if inspect.ismodule(value):  # code, not state (a closure over `pyro`): by name only
        h.update(value.__name__.encode())
        return
    if isinstance(value, type):
        h.update(f"{value.__module__}.{value.__qualname__}".encode())
        return
    if id(value) in seen or depth <= 0:
        return
    seen[id(value)] = value  # held, so that no later temporary reuses its id
    if isinstance(value, torch.nn.Module):
        for name, tensor in value.state_dict().items():
            h.update(name.encode())
            _feed(h, tensor, depth - 1, seen)
        h.update(repr(value).encode())  # the architecture (layer sizes, options)
        return
    if isinstance(value, Mapping):
        for key in sorted(value, key=repr):
            h.update(repr(key).encode())
            _feed(h, value[key], depth - 1, seen)
        return
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        for item in items:
            _feed(h, item, depth - 1, seen)
        return
    if inspect.ismethod(value):
        h.update(value.__func__.__qualname__.encode())
        _feed(h, value.__self__, depth - 1, seen)
        return
    if inspect.isfunction(value):
        h.update(f"{value.__module__}.{value.__qualname__}".encode())
        _feed(h, value.__defaults__, depth - 1, seen)
        cells = [c.cell_contents for c in (value.__closure__ or ()) if _filled(c)]
        _feed(h, cells, depth - 1, seen)
        return
    if callable(value) and not hasattr(value, "__dict__"):  # builtins, weak references
        h.update(getattr(value, "__qualname__", "").encode())  # never a repr with an address
        return
    attributes = getattr(value, "__dict__", None)
    if attributes is not None:
        kept = {k: v for k, v in attributes.items() if not k.startswith(_NOT_CONTENT)}
        _feed(h, kept, depth - 1, seen)


#: attributes that are not content: dunders, and caches such as the last value a
#: ``torch.distributions.Transform`` saw (``_cached_x_y``; ``biject_to`` returns shared instances)
_NOT_CONTENT = ("__", "_cached")


def _filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def run_fingerprint(
    potential: Any,
    sampler: Any,
    *,
    num_chains: int,
    warmup: int,
    thin: int,
    randomness: str,
    start: Any,
    on_nonfinite: str,
    chain_slice: tuple[int, int, int],
) -> dict[str, str]:
    """The named digests of everything that determines the draws of a run (not ``num_draws``:
    a run's first draws do not depend on how many follow)."""
    return {
        "potential": f"{type(potential).__qualname__} {digest(potential)}",
        "data": digest(getattr(potential, "observed_data", None)),
        "sampler": f"{type(sampler).__qualname__} {digest(sampler)}",
        "num_chains": str(num_chains),
        "warmup": str(warmup),
        "thin": str(thin),
        "randomness": randomness,
        "start": start if isinstance(start, str) else digest(start),
        "on_nonfinite": on_nonfinite,
        "chains of this process": "{}-{} of {}".format(*chain_slice),
    }
