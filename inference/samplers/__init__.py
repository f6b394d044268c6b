"""SG-MCMC and SGD samplers: one algorithm per module, pure init/step over a chain dimension.

See :mod:`.base` for the protocol (parameters with a leading chain dimension, ``grad_fn(params,
generator) -> (grad, potential)``, ``step(state, grad_fn, generator) -> (state, info)``) and
:mod:`.schedules` for step-size and temperature schedules. This package imports nothing from its
parent ``bayesdepth.inference``.
"""

from .adam import Adam, AdamState
from .base import GradFn, Sampler, SamplerState
from .psgld import PSGLD, PSGLDState
from .schedules import Constant, CyclicalCosine, Schedule
from .sgd import SGD, SGDState
from .sghmc import SGHMC, SGHMCState
from .sgld import SGLD
from .svag import SVAG

__all__ = [
    "PSGLD",
    "SGD",
    "SGHMC",
    "SGLD",
    "SVAG",
    "Adam",
    "AdamState",
    "Constant",
    "CyclicalCosine",
    "GradFn",
    "PSGLDState",
    "SGDState",
    "SGHMCState",
    "Sampler",
    "SamplerState",
    "Schedule",
]
