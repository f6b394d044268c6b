"""bayesdepth: continuous-depth Bayesian neural networks for Pyro.

Public surface (everything else lives in private modules):

- :class:`STLTrace_ELBO`: the sticking-the-landing ELBO (zero-variance gradients at the posterior).
- :mod:`bayesdepth.data`: embedded, seeded data sets; :mod:`bayesdepth.metrics`: predictive metrics.
- SDE-BNN blocks and models, augmented neural ODEs, and :func:`fit`.
- :mod:`bayesdepth.inference` (imported on demand): SGD/SG-MCMC samplers and Langevin theory.
"""

from . import data, metrics
from .stl import STLTrace_ELBO

# --- sde (issue 3): SDE-BNN imports go here ---
# isort: split
from .sde import (
    BottleneckDrift,
    EulerPath,
    OUPrior,
    PosteriorDrift,
    SDEBNNBlock,
    SDEBNNClassifier,
    SDEBNNRegressor,
)
from .training import FitHistory, KLOnlyTrace_ELBO, fit

# --- end sde ---

# --- anode (issue 4): augmented neural ODE imports go here ---
# isort: split
from .anode import (
    AugmentedNeuralODE,
    BayesianAugmentedNODE,
    ODESolver,
    ODESolverError,
    SolveCost,
    train_anode,
)

# --- end anode ---

__version__ = "0.1.0"

__all__ = [
    "STLTrace_ELBO",
    "data",
    "metrics",
    # --- sde names ---
    "BottleneckDrift",
    "EulerPath",
    "FitHistory",
    "KLOnlyTrace_ELBO",
    "OUPrior",
    "PosteriorDrift",
    "SDEBNNBlock",
    "SDEBNNClassifier",
    "SDEBNNRegressor",
    "fit",
    # --- anode names ---
    "AugmentedNeuralODE",
    "BayesianAugmentedNODE",
    "ODESolver",
    "ODESolverError",
    "SolveCost",
    "train_anode",
]
