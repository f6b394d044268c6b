"""SGD and SG-MCMC as approximate posterior samplers, and the Langevin SDEs that describe them.

- Samplers (one per module, pure ``init``/``step`` over a leading chain dimension): :class:`SGLD`,
  :class:`SGHMC`, :class:`PSGLD`, :class:`SGD` (exactly ``torch.optim.SGD``), :class:`SVAG`;
  :class:`Adam` (exactly ``torch.optim.Adam``); step-size schedules :class:`Constant`,
  :class:`CyclicalCosine` (all in :mod:`.samplers`).
- Potentials from Pyro models or ``nn.Module``s (:func:`pyro_potential`,
  :func:`module_potential`; every chain draws its own minibatch) and the multi-chain runner
  :func:`sample` (checkpoints, resume, warm starts, non-finite policies) returning
  :class:`Chains`; :func:`find_step_size` picks a stable step size by a short pilot.
- Theory (docs/theory.md §0-§7), one idea per submodule: :mod:`.problem` (:class:`SGDProblem`,
  the argument of every closed form), :mod:`.langevin` (overdamped stationary laws),
  :mod:`.momentum` (phase space, underdamped, MSD, modified loss), :mod:`.regression` (exact
  moments on linear regression), :mod:`.sdes` (SME1/SME2/underdamped/stochastic modified flow as
  torchsde SDEs), :mod:`.noise` (gradient-noise statistics), :mod:`.heavy_tails` (alpha-stable
  noise, tail index), :mod:`.escape` (exit times, Eyring–Kramers).
- Which minimum SGD picks (docs/theory.md §13): :mod:`.degenerate` (free diffusion at singular
  minima), :mod:`.label_noise` (the slow flow on the zero-loss manifold), :mod:`.fokker_planck`
  (basin masses, spectral gap).
- When the SDE model holds (docs/theory.md §14): :mod:`.scale_invariance` (norm equilibrium of
  scale-invariant losses with weight decay, the linear-scaling-rule certificate) with the test
  models of :mod:`.normalised_models`; :mod:`.high_dim` (effective dynamics of summary statistics
  at the critical step size) with the exact instances of :mod:`.online_sgd`; :mod:`.anomalous`
  (the MSD exponent predicted from the spectrum).
- Checks against simulation: :mod:`.statistics` (chain covariances with standard errors, MSD),
  :mod:`.sgd_potentials` (mean-loss potentials of the test problems), :mod:`.experiments`
  (:func:`sgd_vs_prediction`, :func:`quadratic_vs_prediction`), :mod:`.plots` (figures).
- ArviZ export and plots live in :mod:`.diagnostics` (imported on demand: it loads ArviZ).

Ships as ``bayesdepth.inference``; it is not importable as a top-level ``inference``.
"""

if __name__ == "inference":  # imported from the source tree under the wrong name
    raise ImportError(
        "the folder 'inference/' is the package 'bayesdepth.inference'; "
        "use 'from bayesdepth import inference' instead of 'import inference'"
    )

# Submodules are attributes (``bi.langevin.stationary_covariance``), not part of ``__all__``.
from . import (  # noqa: F401
    anomalous,
    degenerate,
    escape,
    experiments,
    fokker_planck,
    heavy_tails,
    high_dim,
    label_noise,
    langevin,
    momentum,
    noise,
    normalised_models,
    online_sgd,
    plots,
    problem,
    regression,
    samplers,
    scale_invariance,
    sdes,
    sgd_potentials,
    sgld_moments,
    statistics,
)
from .experiments import SGDComparison, quadratic_vs_prediction, sgd_vs_prediction
from .langevin import stationary_covariance
from .module_potentials import module_potential
from .potentials import Potential
from .problem import SGDProblem
from .pyro_potentials import pyro_potential
from .runner import Chains, sample
from .samplers import (
    PSGLD,
    SGD,
    SGHMC,
    SGLD,
    SVAG,
    Adam,
    Constant,
    CyclicalCosine,
    Sampler,
    SamplerState,
    Schedule,
)
from .step_size import find_step_size

__all__ = [
    "PSGLD",
    "SGD",
    "SGHMC",
    "SGLD",
    "SVAG",
    "Adam",
    "Chains",
    "Constant",
    "CyclicalCosine",
    "Potential",
    "SGDComparison",
    "SGDProblem",
    "Sampler",
    "SamplerState",
    "Schedule",
    "find_step_size",
    "module_potential",
    "pyro_potential",
    "quadratic_vs_prediction",
    "sample",
    "sgd_vs_prediction",
    "stationary_covariance",
]
