"""SGD and SG-MCMC as approximate posterior samplers, and the Langevin SDEs that describe them.

Ships as ``bayesdepth.inference``; it is not importable as a top-level ``inference``.
"""

if __name__ == "inference":  # imported from the source tree under the wrong name
    raise ImportError(
        "the folder 'inference/' is the package 'bayesdepth.inference'; "
        "use 'from bayesdepth import inference' instead of 'import inference'"
    )

# --- samplers (issue 5): imports go here ---
from . import samplers, schedules
from .potentials import Potential, module_potential, pyro_potential
from .runner import Chains, sample
from .samplers import PSGLD, SGD, SGHMC, SGLD, SVAG, Sampler, SamplerState
from .schedules import Constant, CyclicalCosine

# --- end samplers ---

# --- langevin (issue 6): imports go here ---
from . import compare, escape, langevin, momentum, noise, sdes
from .compare import sgd_vs_prediction
from .langevin import stationary_covariance

# --- end langevin ---

__all__ = [
    # --- samplers names ---
    "PSGLD",
    "SGD",
    "SGHMC",
    "SGLD",
    "SVAG",
    "Chains",
    "Constant",
    "CyclicalCosine",
    "Potential",
    "Sampler",
    "SamplerState",
    "module_potential",
    "pyro_potential",
    "sample",
    "samplers",
    "schedules",
    # --- langevin names ---
    "compare",
    "escape",
    "langevin",
    "momentum",
    "noise",
    "sdes",
    "sgd_vs_prediction",
    "stationary_covariance",
]
