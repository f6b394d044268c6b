"""bayesdepth: continuous-depth Bayesian neural networks for Pyro.

- SDE-BNNs (Xu et al. 2022): :class:`SDEBNNRegressor`, :class:`SDEBNNClassifier`, and the pieces
  to build your own (:class:`SDEBNNBlock`, :class:`OUPrior`, :class:`PosteriorDrift`,
  :class:`BottleneckDrift`, :class:`EulerPath`).
- Augmented neural ODEs (Dupont et al. 2019): :class:`AugmentedNeuralODE`,
  :class:`BayesianAugmentedNODE`, :class:`ODESolver`, :class:`SolveCost`, :func:`train_anode`.
- A Bayesian MLP baseline: :class:`BayesianMLP`.
- Training: :func:`fit` (Pyro SVI) with :class:`STLTrace_ELBO` (sticking the landing) by default,
  or :class:`KLOnlyTrace_ELBO`.
- :mod:`bayesdepth.data` (embedded data sets), :mod:`bayesdepth.metrics`,
  :mod:`bayesdepth.predictive` (what every ``predict`` returns).
- :mod:`bayesdepth.inference` (import it explicitly): SGD and SG-MCMC samplers over many chains,
  Langevin theory of SGD, ArviZ diagnostics.
"""

from . import data, metrics, predictive
from .anode import (
    AugmentedNeuralODE,
    BayesianAugmentedNODE,
    ODESolver,
    ODESolverError,
    SolveCost,
    train_anode,
)
from .bnn import BayesianMLP
from .sde import (
    BottleneckDrift,
    EulerPath,
    OUPrior,
    PosteriorDrift,
    SDEBNNBlock,
    SDEBNNClassifier,
    SDEBNNRegressor,
)
from .stl import STLTrace_ELBO
from .training import FitHistory, KLOnlyTrace_ELBO, fit

__version__ = "0.1.0"

__all__ = [
    "AugmentedNeuralODE",
    "BayesianAugmentedNODE",
    "BayesianMLP",
    "BottleneckDrift",
    "EulerPath",
    "FitHistory",
    "KLOnlyTrace_ELBO",
    "ODESolver",
    "ODESolverError",
    "OUPrior",
    "PosteriorDrift",
    "SDEBNNBlock",
    "SDEBNNClassifier",
    "SDEBNNRegressor",
    "STLTrace_ELBO",
    "SolveCost",
    "data",
    "fit",
    "metrics",
    "predictive",
    "train_anode",
]
