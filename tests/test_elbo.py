"""The ELBO estimators: STL (same loss as Trace_ELBO, zero-variance gradients at the exact
posterior), KL-only at weight paths, and the estimator choice."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoMultivariateNormal, AutoNormal
from torch import nn

from bayesdepth import KLOnlyTrace_ELBO, STLTrace_ELBO, data
from bayesdepth.elbo import make_elbo
from bayesdepth.sde.paths import EulerPath, kl_only
from bayesdepth.sde.processes import BottleneckDrift, OUPrior, PosteriorDrift

F64 = torch.float64
X_OBS = torch.tensor(1.3, dtype=F64)


def conjugate_model(x, shift=0.0):
    z = pyro.sample("z", dist.Normal(torch.tensor(0.0, dtype=x.dtype), 1.0))
    pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def conjugate_guide(x, shift=0.0):
    # Exact posterior: N(x / 2, 1 / 2).
    loc = pyro.param("loc", x / 2 + shift)
    log_scale = pyro.param("log_scale", torch.tensor(0.5, dtype=x.dtype).sqrt().log())
    pyro.sample("z", dist.Normal(loc, log_scale.exp()))


def gradient_draws(elbo, model, guide, *args, num_draws=200):
    """Per-draw gradients of the surrogate loss with respect to every param (draws, params)."""
    rows = []
    for i in range(num_draws):
        pyro.set_rng_seed(i)
        loss = elbo.differentiable_loss(model, guide, *args)
        params = [p for _, p in sorted(pyro.get_param_store().named_parameters())]
        grads = torch.autograd.grad(loss, params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


@pytest.mark.parametrize(
    "elbo",
    [
        STLTrace_ELBO(),
        STLTrace_ELBO(num_particles=3),
        STLTrace_ELBO(num_particles=3, vectorize_particles=True, max_plate_nesting=0),
    ],
    ids=["one", "looped", "vectorised"],
)
def test_zero_gradient_variance_at_exact_posterior(elbo):
    stl = gradient_draws(elbo, conjugate_model, conjugate_guide, X_OBS)
    assert stl.shape == (200, 2)
    assert (stl.var(0) < 1e-12).all(), stl.var(0)


def test_trace_elbo_is_noisy_at_exact_posterior():
    reparam = gradient_draws(Trace_ELBO(), conjugate_model, conjugate_guide, X_OBS)
    assert (reparam.var(0) > 0.1).all(), reparam.var(0)


@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_loss_value_equals_trace_elbo_on_same_draw(shift):
    for seed in range(5):
        values = []
        for elbo in (Trace_ELBO(), STLTrace_ELBO()):
            pyro.clear_param_store()
            pyro.set_rng_seed(seed)
            values.append(elbo.differentiable_loss(conjugate_model, conjugate_guide, X_OBS, shift))
        assert abs(values[0].item() - values[1].item()) < 1e-12
        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        assert abs(STLTrace_ELBO().loss(conjugate_model, conjugate_guide, X_OBS, shift)
                   - values[0].item()) < 1e-12


def test_gradient_is_unbiased_away_from_posterior():
    """Away from the posterior both estimators have the same expectation."""
    stl = gradient_draws(STLTrace_ELBO(), conjugate_model, conjugate_guide, X_OBS, 0.8,
                         num_draws=2000)
    rep = gradient_draws(Trace_ELBO(), conjugate_model, conjugate_guide, X_OBS, 0.8,
                         num_draws=2000)
    diff = stl.mean(0) - rep.mean(0)
    se = (stl.var(0) / 2000 + rep.var(0) / 2000).sqrt()
    assert (diff.abs() < 4 * se).all(), (diff, se)
    # The loc gradient is nonzero here: the guide is 0.8 to the right of the posterior mean.
    assert stl.mean(0)[0] > 0.5


def hierarchical_model(x):
    # a ~ N(0, 1), b | a ~ N(a, 1), x | b ~ N(b, 1)
    a = pyro.sample("a", dist.Normal(torch.tensor(0.0, dtype=x.dtype), 1.0))
    b = pyro.sample("b", dist.Normal(a, 1.0))
    pyro.sample("x", dist.Normal(b, 1.0), obs=x)


def hierarchical_guide(x):
    # Exact posterior: a | x ~ N(x / 3, 2 / 3); b | a, x ~ N((a + x) / 2, 1 / 2).
    half = torch.tensor(0.5, dtype=x.dtype)
    loc_a = pyro.param("loc_a", x / 3)
    log_scale_a = pyro.param("log_scale_a", (2 / 3 * torch.ones_like(x)).sqrt().log())
    offset = pyro.param("offset", x / 2)
    slope = pyro.param("slope", half.clone())
    log_scale_b = pyro.param("log_scale_b", half.sqrt().log())
    a = pyro.sample("a", dist.Normal(loc_a, log_scale_a.exp()))
    pyro.sample("b", dist.Normal(offset + slope * a, log_scale_b.exp()))


def test_hierarchical_guide_at_exact_posterior():
    stl = gradient_draws(STLTrace_ELBO(), hierarchical_model, hierarchical_guide, X_OBS)
    assert stl.shape == (200, 5)
    assert (stl.var(0) < 1e-10).all(), stl.var(0)
    reparam = gradient_draws(Trace_ELBO(), hierarchical_model, hierarchical_guide, X_OBS)
    assert (reparam.var(0) > 1e-2).all()


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.loc = nn.Linear(1, 1).double()
        with torch.no_grad():  # exact posterior mean x / 2
            self.loc.weight.fill_(0.5)
            self.loc.bias.zero_()


def test_amortised_module_guide_at_exact_posterior():
    encoder = Encoder()
    xs = torch.linspace(-1, 2, 7, dtype=torch.float64)

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(encoder.loc(x.unsqueeze(-1)).squeeze(-1), 0.5**0.5))

    grads = []
    for seed in range(100):
        pyro.set_rng_seed(seed)
        loss = STLTrace_ELBO().differentiable_loss(model, guide, xs)
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(
            loss, list(encoder.parameters()))]))
    assert (torch.stack(grads).var(0) < 1e-12).all()


def test_non_reparameterised_site_keeps_pyro_gradient():
    def model():
        k = pyro.sample("k", dist.Bernoulli(torch.tensor(0.3, dtype=torch.float64)))
        pyro.sample("y", dist.Normal(2.0 * k, 1.0), obs=torch.tensor(1.5, dtype=torch.float64))

    def guide():
        p = pyro.param("p", torch.tensor(0.6, dtype=torch.float64),
                       constraint=dist.constraints.unit_interval)
        pyro.sample("k", dist.Bernoulli(p))

    for seed in range(5):
        grads = []
        for elbo in (Trace_ELBO(), STLTrace_ELBO()):
            pyro.clear_param_store()
            pyro.set_rng_seed(seed)
            loss = elbo.differentiable_loss(model, guide)
            grads.append(torch.autograd.grad(loss, pyro.param("p").unconstrained())[0])
        assert torch.equal(grads[0], grads[1])


def blr_model(x, y, prior_scale, noise_scale):
    d = x.shape[-1]
    w = pyro.sample("w", dist.Normal(torch.zeros(d, dtype=x.dtype), prior_scale).to_event(1))
    with pyro.plate("data", len(x)):
        pyro.sample("y", dist.Normal((x * w).sum(-1), noise_scale), obs=y)


def test_autonormal_vectorised_particles_run_with_svi():
    problem = data.linear_regression(num_points=30, dim=3, seed=1)
    args = (problem.x, problem.y, problem.prior_scale, problem.noise_scale)
    guide = AutoNormal(blr_model)
    elbo = STLTrace_ELBO(num_particles=4, vectorize_particles=True)
    svi = SVI(blr_model, guide, pyro.optim.Adam({"lr": 0.05}), elbo)
    losses = [svi.step(*args) for _ in range(500)]
    assert losses[-1] < losses[0]
    loc = guide.median()["w"]
    rel = (loc - problem.posterior_mean).norm() / problem.posterior_mean.norm()
    assert rel < 0.02


def test_svi_reaches_exact_posterior_with_full_rank_guide():
    """SVI + STL on d = 5 Bayesian linear regression recovers the conjugate posterior."""
    problem = data.linear_regression(num_points=100, dim=5, seed=0)
    args = (problem.x, problem.y, problem.prior_scale, problem.noise_scale)
    guide = AutoMultivariateNormal(blr_model, init_scale=0.05)
    svi = SVI(blr_model, guide, pyro.optim.Adam({"lr": 0.03}), STLTrace_ELBO())
    for _ in range(1500):
        svi.step(*args)

    posterior = guide.get_posterior()
    mean = posterior.loc.detach()
    cov = posterior.covariance_matrix.detach()
    mean_err = (mean - problem.posterior_mean).norm() / problem.posterior_mean.norm()
    cov_err = (cov - problem.posterior_cov).norm() / problem.posterior_cov.norm()
    assert mean_err < 0.02, mean_err
    assert cov_err < 0.02, cov_err

    stl = gradient_draws(STLTrace_ELBO(), blr_model, guide, *args, num_draws=100)
    reparam = gradient_draws(Trace_ELBO(), blr_model, guide, *args, num_draws=100)
    assert stl.var(0).sum() * 100 < reparam.var(0).sum()


def test_zero_particles_are_refused():
    for cls in (STLTrace_ELBO, KLOnlyTrace_ELBO):
        with pytest.raises(ValueError, match="num_particles must be an integer >= 1"):
            cls(num_particles=0)


def test_make_elbo_selects_the_estimators():
    assert type(make_elbo("stl")) is STLTrace_ELBO
    assert type(make_elbo("reparam")) is Trace_ELBO
    assert type(make_elbo("kl")) is KLOnlyTrace_ELBO
    custom = Trace_ELBO(num_particles=3)
    assert make_elbo(custom) is custom
    assert make_elbo("stl", num_particles=4).num_particles == 4


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
