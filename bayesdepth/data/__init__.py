"""Data sets: embedded generators that need no download, and MNIST / CIFAR-10 via torchvision.

Every function takes ``seed`` and ``dtype`` (float32 by default) and returns tensors on the CPU;
move them with ``.to(device)``. Bad arguments raise errors naming the argument.

- :func:`toy_regression_1d`: the SDE-BNN paper's 1-D regression (Xu et al. 2022).
- :func:`anode_1d_map` and :func:`annuli`: the augmented-neural-ODE tasks (Dupont et al. 2019).
- :func:`two_moons`.
- :func:`digits`: scikit-learn's bundled 8x8 digits, fixed stratified split, standardised.
- :func:`linear_regression`: Bayesian linear regression with its exact conjugate posterior.
- :func:`mnist`, :func:`cifar10`: through torchvision (``pip install "bayesdepth[vision]"``),
  downloaded once to a cache folder (:mod:`bayesdepth.data.vision`).
"""

from .embedded import (
    ClassificationData,
    LinearRegressionData,
    RegressionData,
    annuli,
    anode_1d_map,
    conjugate_linear_regression,
    digits,
    linear_regression,
    toy_regression_1d,
    two_moons,
)
from .vision import cifar10, mnist

__all__ = [
    "ClassificationData",
    "LinearRegressionData",
    "RegressionData",
    "annuli",
    "anode_1d_map",
    "cifar10",
    "conjugate_linear_regression",
    "digits",
    "linear_regression",
    "mnist",
    "toy_regression_1d",
    "two_moons",
]
