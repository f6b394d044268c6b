"""``torch.compile`` without its process-wide side effect on distribution validation.

The first ``torch.compile`` of a process runs torch's dynamo patches, one of which turns off
``torch.distributions`` argument validation for every distribution built afterwards, compiled or
not (``Distribution.set_default_validate_args(False)``). A user who opted into one compiled loop
would then lose Pyro's support checks everywhere: a NaN scale would pass silently. The functions
compiled here build no distributions, so the setting is put back as it was.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.distributions import Distribution


def compile_function(fn: Callable, mode: str | None = None) -> Callable:
    """``torch.compile(fn, mode=mode)``, keeping the process's distribution validation setting."""
    validate = Distribution._validate_args  # the default that set_default_validate_args sets
    try:
        return torch.compile(fn, mode=mode)
    finally:
        Distribution.set_default_validate_args(validate)
