"""The one model protocol, for every ready-made model: model/guide signatures, predict from the
guide, from Predictive samples and from SG-MCMC chains, errors naming sites, fresh randomness,
and isolation (each model owns its parameters)."""

import inspect

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Predictive

import bayesdepth as bd
from bayesdepth import inference as bi
from bayesdepth.predictive import ClassificationPrediction, RegressionPrediction

X = torch.linspace(-1, 1, 24).unsqueeze(-1).repeat(1, 2) * torch.tensor([1.0, -0.5])
Y_REG = X.sum(-1).sin()
Y_CLS = (X[:, 0] > 0).long()


def _anode(likelihood, out, seed=0):
    net = bd.AugmentedNeuralODE(2, out, augment_dim=1, hidden=6,
                                solver=bd.ODESolver("rk4", step_size=0.25), seed=seed)
    return bd.BayesianAugmentedNODE(net, likelihood=likelihood, seed=seed)


MODELS = {
    "sdebnn-regressor": lambda: bd.SDEBNNRegressor(2, width=4, steps=3, seed=0),
    "sdebnn-classifier": lambda: bd.SDEBNNClassifier(2, 2, width=4, steps=3, seed=0),
    "bnn-regressor": lambda: bd.BayesianMLP(2, hidden=(6,), likelihood=bd.Gaussian(None),
                                            seed=0),
    "bnn-classifier": lambda: bd.BayesianMLP(2, 2, hidden=(6,), likelihood=bd.Categorical(),
                                             seed=0),
    "anode-regressor": lambda: _anode(bd.Gaussian(0.2), 1),
    "anode-classifier": lambda: _anode(bd.Categorical(), 2),
}


def _data(model):
    return (X, Y_REG) if isinstance(model.likelihood, bd.Gaussian) else (X, Y_CLS)


@pytest.fixture(params=sorted(MODELS))
def fitted(request):
    model = MODELS[request.param]()
    x, y = _data(model)
    bd.fit(model.model, model.guide, x, y, num_steps=15, lr=1e-2, progress=False, seed=0)
    return model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_signatures_are_the_protocol(name):
    model = MODELS[name]()
    assert isinstance(model, bd.BayesianModel)
    for method in (model.model, model.guide):
        params = inspect.signature(method).parameters
        assert list(params)[:2] == ["x", "y"]
        assert params["y"].default is None
        assert params["subsample_size"].kind is inspect.Parameter.KEYWORD_ONLY
    params = inspect.signature(model.predict).parameters
    for name_, default in (("num_samples", None), ("posterior_samples", None), ("seed", None)):
        assert params[name_].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name_].default is default


def test_predict_from_the_guide_is_seeded_and_typed(fitted):
    x, _ = _data(fitted)
    p1 = fitted.predict(x, num_samples=6, seed=3)
    p2 = fitted.predict(x, num_samples=6, seed=3)
    assert torch.equal(p1.samples, p2.samples)
    fresh = [fitted.predict(x, num_samples=6).samples for _ in range(2)]
    assert not torch.equal(*fresh)  # seed=None: fresh randomness
    if isinstance(fitted.likelihood, bd.Gaussian):
        assert isinstance(p1, RegressionPrediction) and p1.mean.shape == (24,)
        assert p1.samples.shape == (6, 24)
    else:
        assert isinstance(p1, ClassificationPrediction) and p1.probs.shape == (24, 2)
        torch.testing.assert_close(p1.probs.sum(-1), torch.ones(24))


def _reference(model, x, draws):
    """f at ``x`` for each draw, by conditioning the model on it (one draw at a time)."""
    n = next(iter(draws.values())).shape[0]
    out = []
    for i in range(n):
        conditioned = poutine.condition(model.model, {k: v[i] for k, v in draws.items()})
        out.append(poutine.trace(conditioned).get_trace(x).nodes["f"]["value"])
    return torch.stack(out)


def test_predict_from_sgmcmc_chains_and_predictive_samples(fitted):
    x, y = _data(fitted)
    # chains started at guide draws, a few small SGLD steps
    guide_draws = Predictive(fitted.guide, num_samples=3)(x)
    shapes = fitted.latent_shapes(x)
    init = {k: v.reshape(3, *shapes[k]) for k, v in guide_draws.items() if k in shapes}
    potential = bi.pyro_potential(fitted.model, x, y, vectorize=False)
    init = {k: potential.transforms[k].inv(v) for k, v in init.items()}
    chains = bi.sample(potential, bi.SGLD(lr=1e-7), num_chains=3, num_draws=4, init=init,
                       seed=0)
    pred = fitted.predict(x, posterior_samples=chains)
    assert pred.num_samples == 12
    flat = {k: v.reshape(12, *v.shape[2:]) for k, v in chains.draws.items()}
    expected = _reference(fitted, x, flat)
    torch.testing.assert_close(pred.samples, expected.reshape(pred.samples.shape))
    again = fitted.predict(x, posterior_samples=chains.draws)  # the dict works the same
    torch.testing.assert_close(again.samples, pred.samples)
    # Predictive samples of the guide (sites with one leading draw dimension)
    samples = Predictive(fitted.guide, num_samples=5)(x)
    pred = fitted.predict(x, posterior_samples=samples)
    assert pred.num_samples == 5
    expected = _reference(fitted, x, {k: samples[k].reshape(5, *shapes[k]) for k in shapes})
    torch.testing.assert_close(pred.samples, expected.reshape(pred.samples.shape))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unknown_and_missing_sites_are_named(name):
    model = MODELS[name]()
    x, _ = _data(model)
    sites = sorted(model.latent_shapes(x))
    draws = {k: torch.ones(2, *v) for k, v in model.latent_shapes(x).items()}
    with pytest.raises(ValueError, match=r"unknown: \['bogus'\]"):
        model.predict(x, posterior_samples={**draws, "bogus": torch.zeros(2)})
    with pytest.raises(ValueError, match=rf"missing: \[{sites[0]!r}\]"):
        model.predict(x, posterior_samples={k: v for k, v in draws.items() if k != sites[0]})
    with pytest.raises(ValueError, match="shape"):
        model.predict(x, posterior_samples={k: v[0] for k, v in draws.items()})
    with pytest.raises(ValueError, match="non-finite"):
        model.predict(x, posterior_samples={k: v * float("nan") for k, v in draws.items()})
    with pytest.raises(ValueError, match="not both"):
        model.predict(x, posterior_samples=draws, num_samples=3)
    # derived and observed sites of the model (Predictive returns them) are ignored
    model.predict(x, posterior_samples={**draws, "f": torch.zeros(2, 24), "y": torch.zeros(2)})


@pytest.mark.parametrize("name", sorted(MODELS))
def test_inputs_of_another_dtype_or_without_rows_are_named(name):
    model = MODELS[name]()
    x, y = _data(model)
    for other in (torch.float64, torch.float16):
        with pytest.raises(TypeError, match=rf"x has dtype {other} but the model's parameters are "
                                            r"torch.float32; convert x"):
            model.model(x.to(other), y)
        with pytest.raises(TypeError, match=rf"x has dtype {other}"):
            model.predict(x.to(other), num_samples=2)
    with pytest.raises(ValueError, match="x has no rows"):
        model.model(x[:0], y[:0])
    bad = x.clone()
    bad[3, 1] = float("inf")
    with pytest.raises(ValueError, match="x has a NaN or infinite value in row 3"):
        model.model(bad, y)


def _fit_and_predict(make, seed):
    model = make(seed)
    x, y = _data(model)
    bd.fit(model.model, model.guide, x, y, num_steps=12, lr=2e-2, progress=False, seed=seed)
    return model, model.predict(x, num_samples=4, seed=0).samples


@pytest.mark.parametrize("kind", ["sdebnn", "bnn", "anode"])
def test_two_models_of_a_class_do_not_share_parameters(kind):
    make = {
        "sdebnn": lambda s: bd.SDEBNNRegressor(2, width=4, steps=3, seed=s),
        "bnn": lambda s: bd.BayesianMLP(2, hidden=(6,), seed=s),
        "anode": lambda s: _anode(bd.Gaussian(0.2), 1, seed=s),
    }[kind]
    alone_b = _fit_and_predict(make, 1)[1]
    pyro.clear_param_store()
    a, first_a = _fit_and_predict(make, 0)
    _, second_b = _fit_and_predict(make, 1)
    assert torch.equal(second_b, alone_b)  # B fitted after A gives what B gives alone
    assert torch.equal(a.predict(_data(a)[0], num_samples=4, seed=0).samples, first_a)
    assert list(pyro.get_param_store().keys()) == []  # nothing leaks into Pyro's global store


def test_a_diverged_fit_does_not_poison_the_next_one():
    alone = _fit_and_predict(lambda s: bd.BayesianMLP(2, hidden=(6,), seed=s), 1)[1]
    bad = bd.BayesianMLP(2, hidden=(6,), seed=0)
    with pytest.raises(FloatingPointError):
        bd.fit(bad.model, bad.guide, X, Y_REG, num_steps=50, lr=1e6, progress=False, seed=0)
    after = _fit_and_predict(lambda s: bd.BayesianMLP(2, hidden=(6,), seed=s), 1)[1]
    assert torch.equal(after, alone)


def test_user_params_in_the_global_store_survive_a_model_call():
    """A user's own guide keeps its parameters in Pyro's global store; the model's scope must
    neither hide nor break them (SVI reads ``.unconstrained`` after the step)."""
    model = bd.BayesianMLP(2, hidden=(4,), seed=0)
    guide = pyro.infer.autoguide.AutoDelta(model.model)
    svi = pyro.infer.SVI(model.model, guide, pyro.optim.Adam({"lr": 1e-2}), pyro.infer.Trace_ELBO())
    first = svi.step(X, Y_REG)
    for _ in range(20):
        last = svi.step(X, Y_REG)
    assert last < first
    assert any(k.startswith("AutoDelta") for k in pyro.get_param_store().keys())
