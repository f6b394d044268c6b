"""Augmented neural ODEs (Dupont, Doucet, Teh 2019), deterministic and Bayesian."""

from .bayesian import BayesianAugmentedNODE
from .fields import ConvField, MLPField
from .model import AugmentedNeuralODE
from .solver import ODESolver, ODESolverError, SolveCost
from .training import TrainHistory, train_anode

__all__ = [
    "AugmentedNeuralODE",
    "BayesianAugmentedNODE",
    "ConvField",
    "MLPField",
    "ODESolver",
    "ODESolverError",
    "SolveCost",
    "TrainHistory",
    "train_anode",
]
