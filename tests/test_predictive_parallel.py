"""Pyro's vectorised tools on every weight-path model and the Bayesian ANODE.

``Predictive(parallel=True)`` draws all samples in one model run (a plate over draws) and
``vectorize_particles=True`` all ELBO particles in one run: each draw's output must equal the
model's function evaluated at that draw's latents alone, and the vectorised ELBO estimate must
agree with the looped one.
"""

import math

import pyro
import pytest
import torch
from pyro.infer import Predictive

import bayesdepth as bd
from bayesdepth.anode import AugmentedNeuralODE, BayesianAugmentedNODE, ODESolver
from bayesdepth.elbo import STLTrace_ELBO
from bayesdepth.sde import Conv1dField, MultiScaleSDEBNN


def _anode(solver):
    net = AugmentedNeuralODE(2, 2, augment_dim=1, hidden=6, solver=solver, seed=0)
    return BayesianAugmentedNODE(net, seed=0, init_scale=0.1)


CASES = {
    "sdebnn-regressor": (lambda: bd.SDEBNNRegressor(2, width=3, steps=3, num_blocks=2, seed=0),
                         (7, 2), 1e-6),
    "sdebnn-conv": (lambda: bd.SDEBNNClassifier(1, 3, width=2, steps=2, field="conv",
                                                image_size=(4, 4), seed=0), (5, 1, 4, 4), 1e-6),
    "sdebnn-sequences": (lambda: bd.SDEBNNClassifier(
        2, 3, width=3, steps=2, field=Conv1dField(3, 2), image_size=(6,), seed=0), (5, 2, 6),
        1e-6),
    "multiscale": (lambda: MultiScaleSDEBNN.preset("tiny", num_classes=3, seed=0), (4, 1, 8, 8),
                   1e-5),
    "anode-rk4": (lambda: _anode(ODESolver("rk4", step_size=0.25)), (6, 2), 1e-6),
    # an adaptive solver picks one step-size sequence for all stacked draws: tolerance 1e-3
    "anode-dopri5": (lambda: _anode(ODESolver()), (6, 2), 5e-3),
}


@pytest.mark.parametrize("case", list(CASES))
def test_parallel_predictive_draws_equal_the_function_at_each_draw(case):
    build, shape, tol = CASES[case]
    model = build()
    assert model.vectorized
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    latents = list(model.latent_shapes(x))
    draws = Predictive(model.model, guide=model.guide, num_samples=4, parallel=True,
                       return_sites=[*latents, "f"])(x)
    assert draws["f"].shape[0] == 4
    outs = []
    for i in range(4):
        one = {name: draws[name][i].reshape(model.latent_shapes(x)[name]) for name in latents}
        if isinstance(model, BayesianAugmentedNODE):
            value = {name.removeprefix("net."): v for name, v in one.items()}
        else:  # the paths, in block order
            value = [one[f"blocks.{j}.w"] for j in range(len(model.blocks))]
            value = [b.posterior_path(b.w0.detach()).with_start(v)
                     for b, v in zip(model.blocks, value)]
        with torch.no_grad():
            outs.append(model.function(x, value).reshape(draws["f"][i].shape))
    for i in range(4):
        torch.testing.assert_close(draws["f"][i], outs[i], rtol=tol, atol=tol)
    assert not torch.allclose(outs[0], outs[1])  # the draws differ


@pytest.mark.parametrize("case", ["sdebnn-regressor", "multiscale", "anode-rk4"])
def test_vectorised_particles_estimate_the_same_elbo(case):
    build, shape, _ = CASES[case]
    model = build()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=gen)
    y = x.flatten(1).sum(-1) if isinstance(model, bd.SDEBNNRegressor) else \
        torch.randint(0, model.out_features, (shape[0],), generator=gen)
    estimates = {}
    for vectorize in (False, True):
        elbo = STLTrace_ELBO(num_particles=4, vectorize_particles=vectorize, max_plate_nesting=1)
        pyro.set_rng_seed(3)
        estimates[vectorize] = torch.tensor([elbo.loss(model.model, model.guide, x, y)
                                             for _ in range(40)])
    a, b = estimates[False], estimates[True]
    se = math.sqrt(a.var() / len(a) + b.var() / len(b))
    assert a.std() > 0 and abs(a.mean() - b.mean()) < 3 * se
    hist = bd.fit(model.model, model.guide, x, y, num_steps=3, num_particles=3,
                  vectorize_particles=True, progress=False, seed=0)
    assert all(math.isfinite(v) for v in hist.loss)
