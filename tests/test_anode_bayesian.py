"""BayesianAugmentedNODE: priors on every weight, plate scaling, adjoint, predictive uncertainty."""

import operator

import pyro
import pytest
import torch
from pyro import poutine

from bayesdepth import Categorical, Gaussian, STLTrace_ELBO, data
from bayesdepth.anode import (
    AugmentedNeuralODE,
    BayesianAugmentedNODE,
    ODESolver,
    SolveCost,
    train_anode,
)


def _regressor(noise=0.1, **kwargs):
    torch.manual_seed(0)
    net = AugmentedNeuralODE(1, 1, augment_dim=1, hidden=16)
    return BayesianAugmentedNODE(net, likelihood=Gaussian(noise), seed=0, **kwargs)


def test_every_weight_is_a_normal_sample_site_outside_the_plate():
    bnn = _regressor(prior_scale=0.7)
    x = torch.randn(10, 1)
    trace = poutine.trace(bnn.model).get_trace(x, torch.randn(10), subsample_size=4)
    names = list(bnn.latent_shapes(x))
    assert names == [f"net.{n}" for n, _ in bnn.arch.named_buffers()]
    names = [n.removeprefix("net.") for n in names]
    assert len(names) == 6
    for name in names:
        site = trace.nodes[f"net.{name}"]
        assert site["type"] == "sample" and not site["is_observed"]
        assert site["cond_indep_stack"] == ()  # global latent: one draw per call
        base = site["fn"].base_dist
        assert torch.allclose(base.scale, torch.tensor(0.7)) and torch.all(base.loc == 0)
        assert site["value"].shape == bnn.arch.get_buffer(name).shape
    obs = trace.nodes["y"]
    assert obs["is_observed"] and obs["value"].shape == (4,)
    assert obs["scale"] == pytest.approx(10 / 4)  # the minibatch is scaled up to N


def test_categorical_model_and_predict_probabilities():
    x, y = data.annuli(num_points=40, seed=1)
    bnn = BayesianAugmentedNODE(AugmentedNeuralODE(2, 2, augment_dim=1, hidden=8),
                                likelihood=Categorical())
    trace = poutine.trace(bnn.model).get_trace(x, y)
    assert trace.nodes["f"]["value"].shape == (40, 2)
    probs = bnn.predict(x, num_samples=4, seed=5).probs
    assert probs.shape == (40, 2)
    assert torch.equal(probs, bnn.predict(x, num_samples=4, seed=5).probs)
    assert not torch.equal(probs, bnn.predict(x, num_samples=4, seed=6).probs)
    assert torch.allclose(probs.sum(-1), torch.ones(40), atol=1e-5)
    assert torch.all(probs >= 0)


def test_model_call_reports_cost_and_reuses_one_draw():
    bnn = _regressor()
    cost = SolveCost()
    x = torch.randn(5, 1)
    with bnn.counting(cost):
        tr = poutine.trace(bnn.model).get_trace(x)
    assert cost.forward_nfe > 0 and cost.solves == 1
    # replaying the same weights gives the same outputs
    again = poutine.trace(poutine.replay(bnn.model, trace=tr)).get_trace(x)
    assert torch.allclose(again.nodes["f"]["value"], tr.nodes["f"]["value"])
    assert cost.solves == 1  # outside the block nothing is counted


def test_adjoint_elbo_gradients_match_direct():
    torch.manual_seed(0)
    net = AugmentedNeuralODE(2, 2, augment_dim=1, hidden=6).double()
    bnn = BayesianAugmentedNODE(net, prior_scale=0.5).double()
    bnn.arch.field.activation = torch.nn.Tanh()  # smooth field for a tight comparison
    x, y = data.annuli(num_points=12, seed=2, dtype=torch.float64)
    params = list(bnn.autoguide.parameters())
    grads = []
    for adjoint in (False, True):
        bnn.arch.solver = ODESolver(rtol=1e-10, atol=1e-10, adjoint=adjoint)
        pyro.set_rng_seed(3)
        loss = STLTrace_ELBO().differentiable_loss(bnn.model, bnn.guide, x, y)
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
    rel = (grads[1] - grads[0]).norm() / grads[0].norm()
    assert rel < 1e-4, rel


def test_predictive_sd_far_from_data_exceeds_sd_on_data():
    pyro.set_rng_seed(0)
    d = data.toy_regression_1d(num_points=40)
    bnn = _regressor(prior_scale=1.0)
    svi = pyro.infer.SVI(bnn.model, bnn.guide, pyro.optim.Adam({"lr": 1e-2}), STLTrace_ELBO())
    for _ in range(400):
        svi.step(d.x, d.y, subsample_size=20)
    pred = bnn.predict(d.x, num_samples=32)
    mean, sd = pred.mean, pred.epistemic_sd
    assert torch.sqrt(torch.mean((mean - d.y) ** 2)) < 0.5  # it has learned something
    assert torch.allclose(pred.sd**2, sd**2 + 0.1**2)
    far = torch.cat([torch.linspace(-3, -2.5, 8), torch.linspace(2.5, 3, 8)]).unsqueeze(-1)
    sd_far = bnn.predict(far, num_samples=32).epistemic_sd
    print(f"predictive sd: on data {sd.mean():.3f}, far {sd_far.mean():.3f}")
    assert sd_far.mean() > 2 * sd.mean()


def test_bad_arguments():
    net = AugmentedNeuralODE(2, 2, augment_dim=1, hidden=4)
    with pytest.raises(TypeError, match="likelihood"):
        BayesianAugmentedNODE(net, likelihood="poisson")
    with pytest.raises(ValueError, match="Gaussian likelihood needs 1 output"):
        BayesianAugmentedNODE(net, likelihood=Gaussian(0.1))
    with pytest.raises(ValueError, match="prior_scale"):
        BayesianAugmentedNODE(net, prior_scale=0.0)
    with pytest.raises(ValueError, match=r"prior_scale=1e-50 is not representable in torch.float"):
        BayesianAugmentedNODE(net, prior_scale=1e-50)  # would underflow to a zero prior scale
    with pytest.raises(TypeError, match="init_scale"):
        BayesianAugmentedNODE(net, init_scale=True)
    with pytest.raises(TypeError, match="net must be an AugmentedNeuralODE"):
        BayesianAugmentedNODE(torch.nn.Linear(2, 2))
    bnn = BayesianAugmentedNODE(net)
    x = torch.randn(6, 2)
    with pytest.raises(ValueError, match=r"y must have shape \(6,\)"):
        bnn.model(x, torch.zeros(5, dtype=torch.long))
    with pytest.raises(TypeError, match="integer class labels"):
        bnn.model(x, torch.zeros(6))
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        bnn.model(torch.randn(6, 3))
    with pytest.raises(ValueError, match="subsample_size"):
        bnn.model(x, subsample_size=0)


def test_sgld_samples_the_bayesian_anode():
    """SG-MCMC (bayesdepth.inference) on the Pyro model, started at a fitted network: the chains
    stay finite and near the data, and their predictive is wider far from the data than on it."""
    from bayesdepth.inference import SGLD, pyro_potential, sample

    d = data.toy_regression_1d(num_points=20)
    torch.manual_seed(0)
    net = AugmentedNeuralODE(1, 1, augment_dim=1, hidden=32)
    train_anode(net, d.x, d.y, loss="mse", steps=200, lr=1e-2, seed=0)
    bnn = BayesianAugmentedNODE(net, likelihood=Gaussian(0.1))
    # vectorize=False: torchdiffeq's solvers cannot be vmapped over chains (see docs/anode.md)
    potential = pyro_potential(bnn.model, d.x, d.y, subsample_size=10, vectorize=False)
    assert set(potential.shapes) == {f"net.{n}" for n, _ in net.named_parameters()}
    k = 2
    init = {f"net.{n}": p.detach().expand(k, *p.shape).clone() for n, p in net.named_parameters()}
    chains = sample(potential, SGLD(lr=1e-4), num_chains=k, num_draws=40, warmup=60, thin=2,
                    init=init, seed=0)
    u = chains.stats["potential"]
    assert u.shape == (k, 40) and torch.isfinite(u).all()
    draws = chains.draws  # (chains, draws, ...) as SG-MCMC returns them
    assert draws["net.readout.weight"].shape == (2, 40, 1, 2)
    pred = bnn.predict(d.x, posterior_samples=draws)
    mean, sd = pred.mean, pred.epistemic_sd
    far = torch.cat([torch.linspace(-3, -2.5, 8), torch.linspace(2.5, 3, 8)]).unsqueeze(-1)
    sd_far = bnn.predict(far, posterior_samples=draws).epistemic_sd
    print(f"SGLD: rmse {torch.sqrt(torch.mean((mean - d.y) ** 2)):.3f}, sd on data "
          f"{sd.mean():.3f}, far {sd_far.mean():.3f}")
    assert torch.sqrt(torch.mean((mean - d.y) ** 2)) < 0.3
    assert sd.mean() > 0  # the chains move
    assert sd_far.mean() > sd.mean()


def test_guide_starts_at_the_networks_weights_and_follows_dtype():
    torch.manual_seed(0)
    net = AugmentedNeuralODE(2, 2, augment_dim=1, hidden=4)
    bnn = BayesianAugmentedNODE(net, init_scale=0.05).double()  # moved after construction
    x = torch.randn(5, 2, dtype=torch.float64)
    assert bnn.predict(x, num_samples=2, seed=0).probs.dtype == torch.float64
    locs = dict(bnn.autoguide.named_parameters())
    for name, p in net.named_parameters():
        loc = locs[f"locs.net.{name}_unconstrained"]
        assert loc.dtype == torch.float64
        assert torch.allclose(loc, p.detach().double())
    scale = operator.attrgetter("net.readout.bias")(bnn.autoguide.scales)  # constrained scales
    assert torch.allclose(scale, torch.full((2,), 0.05, dtype=torch.float64))
