"""The command line's defaults, in one place: names of data sets, models and samplers, and how
each name becomes an object.

Importing this module is cheap (the names are plain tuples; torch, Pyro and the models are
imported by the builders), so the parser can list the choices without loading the libraries.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EMBEDDED_DATA",
    "FIT_MODELS",
    "SAMPLERS",
    "SAMPLE_MODELS",
    "TASKS",
    "VISION_DATA",
    "check_sampler",
    "fit_model",
    "make_sampler",
    "sampling_model",
]

#: data sets that ship with the package (``bayesdepth.data``)
EMBEDDED_DATA = ("toy1d", "annuli", "moons", "digits")
#: image data sets loaded through torchvision (``bayesdepth.data``; the ``vision`` extra),
#: given to the command line's models as flattened pixel vectors
VISION_DATA = ("mnist", "cifar10")
#: models ``bayesdepth fit`` trains by SVI
FIT_MODELS = ("sdebnn", "anode", "bnn")
#: models ``bayesdepth sample`` runs chains on
SAMPLE_MODELS = ("bnn", "anode")
#: how a CSV target is read
TASKS = ("auto", "regression", "classification")
#: samplers of ``bayesdepth sample``; their step size on the potential U = -log p(theta, data)
#: (a sum over the data, so no one value suits every data set) is ``--lr`` or, by default, the
#: one a pilot finds stable for the data (:func:`bayesdepth.inference.find_step_size`)
SAMPLERS = ("sgld", "sghmc", "psgld", "sgd", "svag")


def check_sampler(name: str, temperature: float = 1.0) -> None:
    """Raise unless ``name`` is a sampler of :data:`SAMPLERS` that takes ``temperature``."""
    if name not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")
    if name in ("sgd", "svag") and temperature != 1.0:
        raise ValueError(f"temperature applies to the SG-MCMC samplers, not to {name!r}")


def make_sampler(name: str, lr: float, temperature: float = 1.0) -> Any:
    """The sampler called ``name`` (see :data:`SAMPLERS`) with step size ``lr``."""
    from bayesdepth import inference as bi

    check_sampler(name, temperature)
    build = {
        "sgld": lambda: bi.SGLD(lr=lr, temperature=temperature),
        "sghmc": lambda: bi.SGHMC(lr=lr, temperature=temperature),
        "psgld": lambda: bi.PSGLD(lr=lr, temperature=temperature),
        "sgd": lambda: bi.SGD(lr=lr),
        "svag": lambda: bi.SVAG(lr=lr, l=4),
    }
    return build[name]()


def _likelihood(problem, latent_noise: bool = True):
    """Categorical for classes; for regression a Gaussian whose noise scale the data decide: a
    latent with a half-normal prior (standardised targets), or a point estimate."""
    from bayesdepth import Categorical, Gaussian

    if not problem.is_regression:
        return Categorical()
    return Gaussian(None) if latent_noise else Gaussian(0.1, learn_scale=True)


def _outputs(problem) -> int:
    return 1 if problem.is_regression else problem.num_classes


def _anode(problem, seed: int, solver=None):
    """A Bayesian ANODE whose guide starts at a network trained by maximum likelihood
    (200 Adam steps), which is much faster than starting SVI from a random network."""
    import torch

    from bayesdepth import AugmentedNeuralODE, BayesianAugmentedNODE
    from bayesdepth.anode import train_anode

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = AugmentedNeuralODE(problem.in_features, _outputs(problem), augment_dim=1,
                                 hidden=32, solver=solver)
    net = net.to(device=problem.x.device, dtype=problem.x.dtype)
    loss = "mse" if problem.is_regression else "cross_entropy"
    train_anode(net, problem.x, problem.y, loss=loss, steps=200,
                batch_size=min(128, len(problem.x)), seed=seed)
    return BayesianAugmentedNODE(net, likelihood=_likelihood(problem), seed=seed)


def fit_model(name: str, problem, seed: int = 0, steps: int = 10):
    """The model ``bayesdepth fit`` trains for ``name`` (see :data:`FIT_MODELS`)."""
    from bayesdepth import BayesianMLP, SDEBNNClassifier, SDEBNNRegressor

    if name == "sdebnn":
        if problem.is_regression:
            # the SDE-BNN's guide covers the weight paths only: the noise is a point estimate
            return SDEBNNRegressor(problem.in_features, width=16, steps=steps,
                                   likelihood=_likelihood(problem, latent_noise=False), seed=seed)
        return SDEBNNClassifier(problem.in_features, problem.num_classes, width=16,
                                steps=steps, seed=seed)
    if name == "anode":
        return _anode(problem, seed)
    if name == "bnn":
        return BayesianMLP(problem.in_features, _outputs(problem), hidden=(32,),
                           likelihood=_likelihood(problem), seed=seed)
    raise ValueError(f"model must be one of {', '.join(FIT_MODELS)}, got {name!r}")


def sampling_model(name: str, problem, seed: int = 0):
    """The model ``bayesdepth sample`` runs chains on, and the chains' start (or None)."""
    from bayesdepth import BayesianMLP, ODESolver

    if name == "bnn":
        model = BayesianMLP(problem.in_features, _outputs(problem), hidden=(16,),
                            likelihood=_likelihood(problem), seed=seed)
        return model, None
    if name == "anode":
        # A fixed-step solver: chains visit weights where an adaptive solver's steps collapse.
        model = _anode(problem, seed, solver=ODESolver("rk4", step_size=0.25))
        return model, model.point_weights()
    raise ValueError(f"model must be one of {', '.join(SAMPLE_MODELS)}, got {name!r}")
