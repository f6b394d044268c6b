"""SDE-BNN: Bayesian neural networks whose weights follow an SDE in depth (Xu et al. 2022).

- :class:`SDEBNNBlock`: one block over any field ``nn.Module`` (model part + guide part) to
  compose in your own Pyro models; :class:`StateSolver`: how its hidden state is integrated
  (method, gradient checkpointing, ``torch.compile``).
- Fields: :class:`MLPField`, :class:`Conv2dField`, :class:`Conv1dField`, :class:`ResNetField`;
  time-conditioned layers :class:`ConcatLinear`, :class:`ConcatConv1d`, :class:`ConcatConv2d`,
  :class:`TimeSequential`.
- :class:`OUPrior`, :class:`BottleneckDrift`, :class:`PosteriorDrift`: the weight processes.
- :class:`EulerPath`: a weight path on a grid as a Pyro distribution (exact Euler–Maruyama
  density); :func:`kl_only`: the ``1/2 int |u|^2 dt`` estimator. Simulators of its chain:
  :func:`euler_chain` (the default), :func:`sdeint_euler` (through torchsde) and
  :class:`CompiledEuler` (opt-in, compiled).
- :class:`OUObservation`: an OU path observed at ``t = 1`` whose exact posterior (a Doob
  h-transform) is known, for checking ELBO estimators.
- Models: :class:`SDEBNNRegressor`, :class:`SDEBNNClassifier`, and the multi-scale image
  classifier :class:`MultiScaleSDEBNN` with its invertible downsampling :class:`SpaceToDepth`.
"""

from .block import SDEBNNBlock
from .compiled import CompiledEuler
from .exact import OUObservation
from .fields import Conv1dField, Conv2dField, MLPField, ResNetField
from .layers import ConcatConv1d, ConcatConv2d, ConcatLinear, TimeSequential
from .models import SDEBNNClassifier, SDEBNNRegressor
from .multiscale import MultiScaleSDEBNN, SpaceToDepth
from .paths import EulerPath, euler_chain, kl_only, sdeint_euler
from .processes import BottleneckDrift, OUPrior, PosteriorDrift
from .solver import StateSolver

__all__ = [
    "BottleneckDrift",
    "CompiledEuler",
    "ConcatConv1d",
    "ConcatConv2d",
    "ConcatLinear",
    "Conv1dField",
    "Conv2dField",
    "EulerPath",
    "MLPField",
    "MultiScaleSDEBNN",
    "OUObservation",
    "OUPrior",
    "PosteriorDrift",
    "ResNetField",
    "SDEBNNBlock",
    "SDEBNNClassifier",
    "SDEBNNRegressor",
    "SpaceToDepth",
    "StateSolver",
    "TimeSequential",
    "euler_chain",
    "kl_only",
    "sdeint_euler",
]
