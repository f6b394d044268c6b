import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoMultivariateNormal

from bayesdepth import data
from bayesdepth.sde.paths import EulerPath, kl_only
from bayesdepth.sde.processes import BottleneckDrift, OUPrior, PosteriorDrift
from bayesdepth.stl import STLTrace_ELBO
from bayesdepth.training import KLOnlyTrace_ELBO, _ScaleLatents, fit, make_elbo

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


def test_make_elbo_selects_the_estimators():
    assert type(make_elbo("stl")) is STLTrace_ELBO
    assert type(make_elbo("reparam")) is Trace_ELBO
    assert type(make_elbo("kl")) is KLOnlyTrace_ELBO
    custom = Trace_ELBO(num_particles=3)
    assert make_elbo(custom) is custom
    assert make_elbo("stl", num_particles=4).num_particles == 4


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


def test_non_finite_loss_names_the_step():
    def model(y):
        loc = pyro.param("loc", torch.tensor(0.0))
        pyro.sample("y", dist.Normal(loc, 1e-30), obs=y)  # log density overflows to -inf

    with pytest.raises(FloatingPointError, match="step 0"):
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


def _path_problem():
    sigma = 0.3
    prior = OUPrior(sigma)
    corr = BottleneckDrift(3, rank=2, hidden=3).double()
    torch.nn.init.normal_(corr.up.weight, std=0.5)
    post = PosteriorDrift(prior, corr)
    grid = torch.linspace(0, 1, 9, dtype=F64)
    w0 = torch.ones(3, dtype=F64)

    def model():
        path = pyro.sample("w", EulerPath(prior, sigma, grid, w0))
        pyro.sample("y", dist.Normal(path[-1].sum(), 0.5), obs=torch.tensor(1.0, dtype=F64))

    def guide():
        pyro.sample("w", EulerPath(post, sigma, grid, w0))

    return model, guide


def test_kl_only_estimator_replaces_the_log_ratio_by_half_integral_u_squared():
    model, guide = _path_problem()
    pyro.set_rng_seed(5)
    loss_kl = KLOnlyTrace_ELBO(max_plate_nesting=0).loss(model, guide)
    pyro.set_rng_seed(5)
    loss_tr = Trace_ELBO(max_plate_nesting=0).loss(model, guide)
    pyro.set_rng_seed(5)
    gt = poutine.trace(guide).get_trace()
    mt = poutine.trace(poutine.replay(model, trace=gt)).get_trace()
    q, p, v = gt.nodes["w"]["fn"], mt.nodes["w"]["fn"], gt.nodes["w"]["value"]
    log_ratio = (p.log_prob(v) - q.log_prob(v)).item()
    kl = kl_only(q, p, v).item()
    assert kl > 1e-3
    assert loss_kl == pytest.approx(loss_tr + log_ratio + kl, abs=1e-9)


def test_the_three_estimators_agree_in_expectation():
    """All three are unbiased for -ELBO: means over 400 draws agree within 3 standard errors."""
    model, guide = _path_problem()
    draws = {}
    for name, elbo in (("stl", STLTrace_ELBO()), ("reparam", Trace_ELBO()),
                       ("kl", KLOnlyTrace_ELBO())):
        pyro.set_rng_seed(0)
        draws[name] = torch.tensor([elbo.loss(model, guide) for _ in range(400)], dtype=F64)
    for name in ("reparam", "kl"):
        diff = draws[name].mean() - draws["stl"].mean()
        se = (draws[name].var() / 400 + draws["stl"].var() / 400).sqrt()
        assert diff.abs() < 3 * se + 1e-9, (name, diff, se)
    # STL and Trace_ELBO share the loss value draw for draw (only gradients differ).
    torch.testing.assert_close(draws["stl"], draws["reparam"])
