"""bayesdepth: continuous-depth Bayesian neural networks for Pyro.

- Models, all following one protocol (:class:`BayesianModel`: ``model``, ``guide``, ``predict``;
  each owns its parameters and can be saved with :func:`save` and loaded with :func:`load`):
  :class:`SDEBNNRegressor`, :class:`SDEBNNClassifier`, :class:`MultiScaleSDEBNN` (weights that
  follow an SDE in depth, Xu et al. 2022), :class:`BayesianAugmentedNODE` (Dupont et al. 2019)
  and the :class:`BayesianMLP` baseline, with a likelihood object (:class:`Gaussian`,
  :class:`Categorical`).
- Building blocks for your own Pyro models: :class:`SDEBNNBlock` over any ``nn.Module`` field and
  :class:`OUPrior` (:mod:`bayesdepth.sde` has the fields, the hidden-state solver and the rest),
  :class:`AugmentedNeuralODE` and :class:`ODESolver` (:mod:`bayesdepth.anode`).
- Training: :func:`fit` (Pyro SVI) with :class:`STLTrace_ELBO` (sticking the landing) by default,
  or :class:`KLOnlyTrace_ELBO`.
- :mod:`bayesdepth.data` (embedded data sets; MNIST and CIFAR-10 through torchvision),
  :mod:`bayesdepth.metrics`,
  :mod:`bayesdepth.predictive` (what ``predict`` returns), :mod:`bayesdepth.plotting`.
- :mod:`bayesdepth.inference` (import it explicitly): SGD, Adam and SG-MCMC samplers over many
  chains, Langevin theory of SGD, ArviZ diagnostics.
"""

from . import anode, data, distributed, metrics, plotting, predictive, sde, threads
from .anode import AugmentedNeuralODE, BayesianAugmentedNODE, ODESolver
from .bnn import BayesianMLP
from .elbo import KLOnlyTrace_ELBO, STLTrace_ELBO
from .likelihoods import Categorical, Gaussian
from .protocol import BayesianModel
from .sde import MultiScaleSDEBNN, OUPrior, SDEBNNBlock, SDEBNNClassifier, SDEBNNRegressor
from .serialization import load, save, saveable
from .svi import fit

__version__ = "0.1.0"

__all__ = [
    "AugmentedNeuralODE",
    "BayesianAugmentedNODE",
    "BayesianMLP",
    "BayesianModel",
    "Categorical",
    "Gaussian",
    "KLOnlyTrace_ELBO",
    "MultiScaleSDEBNN",
    "ODESolver",
    "OUPrior",
    "SDEBNNBlock",
    "SDEBNNClassifier",
    "SDEBNNRegressor",
    "STLTrace_ELBO",
    "anode",
    "data",
    "distributed",
    "fit",
    "load",
    "metrics",
    "plotting",
    "predictive",
    "save",
    "saveable",
    "sde",
    "threads",
]
