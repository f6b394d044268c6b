"""SGD and SG-MCMC as approximate posterior samplers, and the Langevin SDEs that describe them.

- Samplers (one per module, pure ``init``/``step`` over a leading chain dimension): :class:`SGLD`,
  :class:`SGHMC`, :class:`PSGLD`, :class:`SGD` (exactly ``torch.optim.SGD``), :class:`SVAG`;
  step-size schedules :class:`Constant`, :class:`CyclicalCosine`.
- Potentials from Pyro models or ``nn.Module``s (:func:`pyro_potential`,
  :func:`module_potential`) and the multi-chain runner :func:`sample` (checkpoints, resume,
  non-finite policies) returning :class:`Chains`.
- Theory: :mod:`.langevin` and :mod:`.momentum` (closed-form stationary laws), :mod:`.sdes`
  (SME1/SME2/underdamped/stochastic modified flow as torchsde SDEs), :mod:`.noise` (gradient-noise
  statistics, tail index, alpha-stable noise), :mod:`.escape` (exit times), :mod:`.compare`
  (SGD chains against predictions, figures).
- ArviZ export and plots live in :mod:`.diagnostics` (imported on demand: it loads ArviZ).

Ships as ``bayesdepth.inference``; it is not importable as a top-level ``inference``.
"""

if __name__ == "inference":  # imported from the source tree under the wrong name
    raise ImportError(
        "the folder 'inference/' is the package 'bayesdepth.inference'; "
        "use 'from bayesdepth import inference' instead of 'import inference'"
    )

from . import compare, escape, langevin, momentum, noise, samplers, sdes
from .samplers import schedules
from .compare import sgd_vs_prediction
from .langevin import stationary_covariance
from .potentials import Potential, module_potential, pyro_potential
from .runner import Chains, sample
from .samplers import PSGLD, SGD, SGHMC, SGLD, SVAG, Sampler, SamplerState
from .samplers import Constant, CyclicalCosine

__all__ = [
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
    "compare",
    "escape",
    "langevin",
    "module_potential",
    "momentum",
    "noise",
    "pyro_potential",
    "sample",
    "samplers",
    "schedules",
    "sdes",
    "sgd_vs_prediction",
    "stationary_covariance",
]
