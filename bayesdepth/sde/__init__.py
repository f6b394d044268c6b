"""SDE-BNN: Bayesian neural networks whose weights follow an SDE in depth (Xu et al. 2022).

- :class:`OUPrior`, :class:`BottleneckDrift`, :class:`PosteriorDrift`: the weight processes.
- :class:`EulerPath`: a weight path on a grid as a Pyro distribution (sampled with torchsde,
  exact Euler–Maruyama density); :func:`kl_only`: the ``1/2 int |u|^2 dt`` estimator.
- :class:`SDEBNNBlock`: one block (model part + guide part) to compose in your own Pyro models.
- :class:`OUObservation`: an OU path observed at ``t = 1`` whose exact posterior (a Doob
  h-transform) is known, for checking ELBO estimators.
- :class:`SDEBNNRegressor`, :class:`SDEBNNClassifier`: ready-made models with ``predict``.
"""

from .block import SDEBNNBlock
from .exact import OUObservation
from .models import SDEBNNClassifier, SDEBNNRegressor
from .paths import EulerPath, kl_only
from .processes import BottleneckDrift, OUPrior, PosteriorDrift

__all__ = [
    "BottleneckDrift",
    "EulerPath",
    "OUObservation",
    "OUPrior",
    "PosteriorDrift",
    "SDEBNNBlock",
    "SDEBNNClassifier",
    "SDEBNNRegressor",
    "kl_only",
]
