import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer.autoguide import AutoMultivariateNormal

from bayesdepth import data
from bayesdepth.svi import _ScaleLatents, fit

F64 = torch.float64


def _linear_model(x, y=None, subsample_size=None):
    w = pyro.sample("w", dist.Normal(torch.zeros(x.shape[1], dtype=x.dtype), 1.0).to_event(1))
    with pyro.plate("data", x.shape[0], subsample_size=subsample_size) as idx:
        pyro.sample("y", dist.Normal(x[idx] @ w, 0.5), obs=None if y is None else y[idx])


def test_fit_recovers_a_conjugate_posterior_with_any_model_and_guide():
    d = data.linear_regression(num_points=50, dim=3, dtype=F64)
    x, y = d.x, d.y

    def model(x, y=None, subsample_size=None):
        w = pyro.sample("w", dist.Normal(torch.zeros(x.shape[1], dtype=F64),
                                         d.prior_scale).to_event(1))
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size) as idx:
            pyro.sample("y", dist.Normal(x[idx] @ w, d.noise_scale), obs=y[idx])

    guide = AutoMultivariateNormal(model)
    hist = fit(model, guide, x, y, num_steps=600, lr=5e-2, final_lr_fraction=0.02,
               progress=False, seed=0)
    assert hist.steps == 600 and hist.elbo[-1] == -hist.loss[-1]
    loc = guide.median()["w"].detach()
    sd = d.posterior_cov.diagonal().sqrt()
    assert ((loc - d.posterior_mean).abs() / sd).max() < 0.3


def test_same_seed_same_history():
    x = torch.randn(30, 2, dtype=F64)
    y = x.sum(-1)

    def run():
        pyro.clear_param_store()
        guide = pyro.infer.autoguide.AutoNormal(_linear_model)
        return fit(_linear_model, guide, x, y, num_steps=20, batch_size=10, progress=False,
                   seed=3).loss

    assert run() == run()


def test_batch_size_is_passed_as_subsample_size():
    seen = []

    def model(x, subsample_size=None):
        seen.append(subsample_size)
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size) as idx:
            pyro.sample("z", dist.Normal(0.0, 1.0), obs=x[idx])

    fit(model, lambda x, subsample_size=None: None, torch.zeros(10), num_steps=2,
        batch_size=4, progress=False)
    assert seen == [4, 4]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"estimator": "score"}, ValueError, "estimator"),
        ({"num_steps": 0}, ValueError, "num_steps"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"anneal_steps": -1}, ValueError, "anneal_steps"),
    ],
)
def test_bad_fit_arguments(kwargs, exc, match):
    x = torch.randn(5, 2)
    with pytest.raises(exc, match=match):
        fit(_linear_model, lambda *a, **k: None, x, x.sum(-1), progress=False, **kwargs)


def test_invalid_values_at_the_first_step_are_a_numerical_failure():
    def model(y):
        loc = pyro.param("loc", torch.tensor(float("nan")))
        pyro.sample("y", dist.Normal(loc, 1.0), obs=y)

    with pytest.raises(FloatingPointError, match=r"diverged at step 0.*check the data for NaN"):
        fit(model, lambda y: None, torch.tensor(1.0), num_steps=3, progress=False)


def test_non_finite_loss_names_the_step():
    def model(y):
        loc = pyro.param("loc", torch.tensor(0.0))
        pyro.sample("y", dist.Normal(loc, 1e-30), obs=y)  # log density overflows to -inf

    with pytest.raises(FloatingPointError, match=r"diverged at step 0: the ELBO loss is -?inf"):
        fit(model, lambda y: None, torch.tensor(1.0), num_steps=3, progress=False)


def test_invalid_values_are_a_numerical_failure_without_distribution_validation():
    def model(y):
        loc = pyro.param("loc", torch.tensor(float("nan")))
        pyro.sample("y", dist.Normal(loc, 1.0), obs=y)

    with pyro.validation_enabled(False), pytest.raises(
            FloatingPointError, match=r"diverged at step 0: the ELBO loss is nan.*check the data"):
        fit(model, lambda y: None, torch.tensor(1.0), num_steps=3, progress=False)


def test_annealing_scales_latent_sites_only_and_ramps_up():
    def model():
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Normal(z, 1.0), obs=torch.tensor(0.5))

    with _ScaleLatents(0.25):
        tr = poutine.trace(model).get_trace()
    assert tr.nodes["z"]["scale"] == 0.25 and tr.nodes["y"]["scale"] == 1.0

    guide = pyro.infer.autoguide.AutoNormal(model)
    hist = fit(model, guide, num_steps=8, anneal_steps=4, progress=False, seed=0)
    assert hist.beta == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0]
