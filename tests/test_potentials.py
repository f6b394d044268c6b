"""Potentials from Pyro models and nn.Modules: values, Jacobians, N/B scaling, vmap, errors."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from bayesdepth.inference import SGLD, module_potential, pyro_potential, sample
from torch.distributions import biject_to

N, B = 24, 6


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 2, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0], dtype=torch.float64) + 0.5 * torch.randn(
        N, generator=g, dtype=torch.float64
    )
    return x, y


def regression_model(x, y, batch_size=None):
    w = pyro.sample("w", dist.Normal(torch.zeros(2, dtype=x.dtype), 1.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(torch.tensor(1.0, dtype=x.dtype)))
    with pyro.plate("data", x.shape[0], subsample_size=batch_size) as idx:
        pyro.sample("obs", dist.Normal(x[idx] @ w, sigma), obs=y[idx])


def _manual_potential(params, x, y, idx):
    """The log joint written out by hand; ``idx`` is (B,) for all chains or (chains, B)."""
    w, log_sigma = params["w"], params["sigma"]
    sigma = log_sigma.exp()
    lp = dist.Normal(0.0, 1.0).log_prob(w).sum(-1) + dist.HalfNormal(1.0).log_prob(sigma)
    idx = idx.expand(w.shape[0], -1)
    mean = torch.einsum("kbd,kd->kb", x[idx], w)
    lik = dist.Normal(mean, sigma[:, None]).log_prob(y[idx]).sum(-1)
    return -(lp + log_sigma + (N / idx.shape[-1]) * lik)  # log|d sigma / d log sigma| = log sigma


def test_pyro_potential_value_jacobian_and_scaling(data):
    x, y = data
    pot = pyro_potential(regression_model, x, y, batch_size=B)
    assert pot.shapes == {"w": torch.Size([2]), "sigma": torch.Size([])}
    assert pot.transforms["sigma"] == biject_to(dist.HalfNormal(1.0).support)
    g = torch.Generator().manual_seed(1)
    params = pot.init(5, g)
    assert params["w"].shape == (5, 2) and params["w"].abs().max() <= 2
    batch = pot.sample_batch(5, g)
    idx = batch["data"]
    assert idx.shape == (5, B)  # one minibatch per chain, B distinct indices each
    assert all(len(set(row.tolist())) == B for row in idx)
    assert len({tuple(row.tolist()) for row in idx}) == 5
    value, _ = pot(params, batch)
    torch.testing.assert_close(value, _manual_potential(params, x, y, idx))
    looped = pyro_potential(regression_model, x, y, batch_size=B, vectorize=False)
    torch.testing.assert_close(looped(params, batch)[0], value)
    constrained = pot.constrain(params)
    torch.testing.assert_close(constrained["sigma"], params["sigma"].exp())


def test_pyro_grad_fn_matches_autograd_per_chain(data):
    x, y = data
    pot = pyro_potential(regression_model, x, y)  # full batch: no subsampling
    assert pot.sample_batch(3, None) is None
    params = pot.init(3, torch.Generator().manual_seed(0))
    grad, value = pot.grad_fn(3)(params, None)
    idx = torch.arange(N)
    for k in range(3):
        single = {n: v[k : k + 1].clone().requires_grad_(True) for n, v in params.items()}
        u = _manual_potential(single, x, y, idx)
        gw, gs = torch.autograd.grad(u.sum(), [single["w"], single["sigma"]])
        torch.testing.assert_close(grad["w"][k], gw[0])
        torch.testing.assert_close(grad["sigma"][k], gs[0])
        torch.testing.assert_close(value[k], u[0].detach())


def test_pyro_observed_data_is_gathered_across_subsamples(data):
    x, y = data
    pot = pyro_potential(regression_model, x, y, batch_size=5)  # 24 = 4 * 5 + 4: overlapping tail
    assert torch.equal(pot.observed_data["obs"], y)


def test_discrete_latent_site_is_named():
    def model():
        pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.sample("component", dist.Categorical(torch.ones(3)))

    with pytest.raises(ValueError, match="discrete latent site 'component'"):
        pyro_potential(model)


def test_local_latent_in_subsampled_plate_is_named():
    def model():
        with pyro.plate("data", N, subsample_size=B):
            pyro.sample("z", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="'z' lies inside the subsampled plate 'data'"):
        pyro_potential(model)


def test_pyro_init_with_wrong_shape_is_named(data):
    x, y = data
    pot = pyro_potential(regression_model, x, y)
    init = {
        "w": torch.zeros(3, 3, dtype=torch.float64),
        "sigma": torch.zeros(3, dtype=torch.float64),
    }
    with pytest.raises(ValueError, match=r"init\['w'\] must have shape \(3, 2\)"):
        sample(pot, SGLD(1e-3), num_chains=3, num_draws=2, init=init)


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(2, 5)
        self.out = torch.nn.Linear(5, 1)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x))).squeeze(-1)


def _gauss_loglik(out, y):
    return dist.Normal(out, 0.5).log_prob(y)


def test_module_potential_matches_per_chain_loop(data):
    x, y = data
    net = _Net().double()
    pot = module_potential(net, _gauss_loglik, x, y, prior=2.0, batch_size=B)
    g = torch.Generator().manual_seed(0)
    params = pot.init(4, g)
    assert set(params) == {"hidden.weight", "hidden.bias", "out.weight", "out.bias"}
    assert not torch.allclose(params["hidden.weight"][0], params["hidden.weight"][1])
    batch = pot.sample_batch(4, g)
    assert batch.shape == (4, B) and not torch.equal(batch[0], batch[1])  # per-chain batches
    value, aux = pot(params, batch)
    for k in range(4):
        p = {n: v[k] for n, v in params.items()}
        out = torch.func.functional_call(net, p, (x[batch[k]],))
        lik = (N / B) * _gauss_loglik(out, y[batch[k]]).sum()
        prior = sum(dist.Normal(0.0, 2.0).log_prob(v).sum() for v in p.values())
        torch.testing.assert_close(value[k], -(lik + prior))
        torch.testing.assert_close(aux["log_likelihood"][k], lik)
    full, _ = module_potential(net, _gauss_loglik, x, y, prior=2.0)(params, None)
    assert full.shape == (4,)


def test_module_potential_bad_input(data):
    x, y = data
    with pytest.raises(ValueError, match="batch_size"):
        module_potential(_Net().double(), _gauss_loglik, x, y, batch_size=N + 1)
    with pytest.raises(ValueError, match="same length"):
        module_potential(_Net().double(), _gauss_loglik, x, y[:-1])
    with pytest.raises(TypeError, match=r"nn\.Module"):
        module_potential(lambda v: v, _gauss_loglik, x, y)


@pytest.mark.slow
def test_sgld_on_pyro_model_agrees_with_nuts():
    g = torch.Generator().manual_seed(0)
    n = 60
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0], dtype=torch.float64) + 0.5 * torch.randn(
        n, generator=g, dtype=torch.float64
    )
    pyro.set_rng_seed(0)
    mcmc = pyro.infer.MCMC(
        pyro.infer.NUTS(regression_model), num_samples=800, warmup_steps=300, disable_progbar=True
    )
    mcmc.run(x, y)
    nuts = mcmc.get_samples()
    pot = pyro_potential(regression_model, x, y, init_radius=0.5)
    chains = sample(pot, SGLD(1e-3), num_chains=8, num_draws=1500, warmup=300, seed=0)
    for name in ("w", "sigma"):
        draws = chains.draws[name].reshape(-1, *chains.draws[name].shape[2:])
        mean, ref_mean = draws.mean(0), nuts[name].mean(0)
        sd, ref_sd = draws.std(0), nuts[name].std(0)
        assert ((mean - ref_mean).abs() <= 0.1 * ref_mean.abs()).all(), (name, mean, ref_mean)
        assert ((sd - ref_sd).abs() <= 0.15 * ref_sd).all(), (name, sd, ref_sd)


def test_models_vmap_cannot_run_fall_back_to_a_loop_with_a_warning():
    def model():
        mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
        if mu > 0:  # data-dependent Python control flow: vmap cannot trace this
            pyro.sample("obs", dist.Normal(mu, 1.0), obs=torch.tensor(0.5, dtype=torch.float64))
        else:
            pyro.sample("obs", dist.Normal(mu, 2.0), obs=torch.tensor(0.5, dtype=torch.float64))

    pot = pyro_potential(model)
    params = {"mu": torch.tensor([-1.0, 1.0], dtype=torch.float64)}
    with pytest.warns(RuntimeWarning, match="vmap failed"):
        value, _ = pot(params)
    expected = [
        -(dist.Normal(0.0, 1.0).log_prob(m) + dist.Normal(m, s).log_prob(torch.tensor(0.5)))
        for m, s in ((torch.tensor(-1.0), 2.0), (torch.tensor(1.0), 1.0))
    ]
    torch.testing.assert_close(value, torch.stack(expected).double())
    assert not pot.vectorize


# ------------------------------------------------------------------ minibatches and draws
@pytest.mark.parametrize(("size", "batch"), [(12, 2), (12, 9)], ids=["redraw", "keys"])
def test_subsample_indices_are_uniform_subsets(size, batch):
    """Both methods (repeats redrawn for 4 B <= N, top-B keys otherwise): every row distinct,
    each index with probability B/N and each pair with B(B-1)/(N(N-1)), within 4 standard
    errors over 40000 rows."""
    from bayesdepth.inference.potentials import subsample_indices

    rows = subsample_indices(size, batch, 40000, torch.Generator().manual_seed(0), "cpu")
    assert rows.shape == (40000, batch)
    assert (rows.sort(-1).values.diff(dim=-1) > 0).all()  # distinct inside every row
    hits = torch.zeros(40000, size).scatter_(1, rows, 1.0)
    p1 = batch / size
    se1 = (p1 * (1 - p1) / 40000) ** 0.5
    assert ((hits.mean(0) - p1).abs() < 4 * se1).all()
    pairs = (hits.T @ hits / 40000)[torch.triu_indices(size, size, 1).unbind()]
    p2 = batch * (batch - 1) / (size * (size - 1))
    se2 = (p2 * (1 - p2) / 40000) ** 0.5
    assert ((pairs - p2).abs() < 4.5 * se2).all()  # 66 pairs: the largest of 66 |z|


def deterministic_model(x, y, batch_size=None):
    """The regression with a deterministic mean declared without event_dim (as users write)."""
    w = pyro.sample("w", dist.Normal(torch.zeros(2, dtype=x.dtype), 1.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(torch.tensor(1.0, dtype=x.dtype)))
    with pyro.plate("data", x.shape[0], subsample_size=batch_size) as idx:
        mean = pyro.deterministic("mean", x[idx] @ w)
        pyro.sample("obs", dist.Normal(mean, sigma), obs=y[idx])


def test_observed_data_holds_only_observed_sites(data):
    x, y = data
    pot = pyro_potential(deterministic_model, x, y, batch_size=5)
    assert set(pot.observed_data) == {"obs"} and torch.equal(pot.observed_data["obs"], y)
    assert set(pot.deterministic_sites) == {"mean"}


def test_pointwise_log_likelihood_is_pyros_log_prob_at_the_draw(data):
    """Every row of a subsampled plate (24 rows in chunks of 5, the last one overlapping),
    every draw: the log-likelihood and the deterministic site equal Pyro's own trace."""
    from pyro import poutine

    x, y = data
    pot = pyro_potential(deterministic_model, x, y, batch_size=5)
    chains = sample(pot, SGLD(1e-3), num_chains=3, num_draws=4, seed=0)
    pointwise = pot.pointwise(chains.draws, chunk_size=5)
    assert pointwise.log_likelihood["obs"].shape == (3, 4, N)
    assert pointwise.derived["mean"].shape == (3, 4, N)
    for c, d in [(0, 0), (1, 3), (2, 2)]:
        draw = {k: v[c, d] for k, v in chains.draws.items()}
        full = poutine.trace(poutine.condition(deterministic_model, draw)).get_trace(x, y)
        site = full.nodes["obs"]
        torch.testing.assert_close(pointwise.log_likelihood["obs"][c, d],
                                   site["fn"].log_prob(site["value"]))
        torch.testing.assert_close(pointwise.derived["mean"][c, d], full.nodes["mean"]["value"])


def test_posterior_predictive_and_prior_draws(data):
    """Predictive draws are y ~ N(x w, sigma^2) at each draw: the standardised residuals have
    mean 0 and variance 1 (4 standard errors); prior draws of w are N(0, 1)."""
    x, y = data
    pot = pyro_potential(regression_model, x, y, batch_size=5)
    chains = sample(pot, SGLD(1e-3), num_chains=4, num_draws=50, seed=0)
    predictive = pot.posterior_predictive(chains.draws, seed=0)
    assert predictive["obs"].shape == (4, 50, N)
    assert torch.equal(pot.posterior_predictive(chains.draws, seed=0)["obs"], predictive["obs"])
    mean = torch.einsum("kdi,ni->kdn", chains.draws["w"], x)
    z = ((predictive["obs"] - mean) / chains.draws["sigma"][..., None]).flatten()
    se = (1 / z.numel()) ** 0.5
    assert abs(float(z.mean())) < 4 * se and abs(float(z.var()) - 1) < 4 * 2**0.5 * se
    prior = pot.prior(4000, seed=0)
    assert prior["w"].shape == (4000, 2) and prior["sigma"].shape == (4000,)
    assert (prior["w"].mean(0).abs() < 4 / 4000**0.5).all()
    assert ((prior["w"].var(0) - 1).abs() < 4 * (2 / 4000) ** 0.5).all()


def test_bayesian_mlp_minibatches_vectorised_over_chains():
    """The package's own model with subsample_size: one vmap over chains, observed data is y
    only (its deterministic "f" is derived, not observed), draws evaluate on every row."""
    import bayesdepth as bd

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=g)
    y = torch.randint(0, 3, (40,), generator=g)
    net = bd.BayesianMLP(2, 3, hidden=(8,), likelihood=bd.Categorical(), seed=0)
    pot = pyro_potential(net.model, x, y, subsample_size=16)
    assert set(pot.observed_data) == {"y"} and torch.equal(pot.observed_data["y"], y)
    chains = sample(pot, SGLD(1e-4), num_chains=3, num_draws=5, seed=0)
    assert pot.vectorize  # vmap worked: no loop over chains
    pointwise = pot.pointwise(chains.draws)
    assert pointwise.log_likelihood["y"].shape == (3, 5, 40)
    assert pointwise.derived["f"].shape == (3, 5, 40, 3)
    logits = pointwise.derived["f"][1, 2]
    torch.testing.assert_close(pointwise.log_likelihood["y"][1, 2],
                               dist.Categorical(logits=logits).log_prob(y))


def test_a_chain_whose_ode_solve_gives_up_stops_alone():
    """An ODE solver failure in one chain (e.g. a Bayesian ANODE's weights blowing up) makes that
    chain's potential non-finite: with stop_chain only that chain stops."""
    import pyro.distributions as dist

    from bayesdepth.anode import ODESolverError

    def model():
        w = pyro.sample("w", dist.Normal(torch.zeros((), dtype=torch.float64), 1.0))
        if float(w.detach()) > 5.0:  # data-dependent: the chains are evaluated one by one
            raise ODESolverError("the solver gave up")
        pyro.sample("y", dist.Normal(w, 1.0), obs=torch.tensor(0.3, dtype=torch.float64))

    with pytest.warns(RuntimeWarning, match="vmap failed"):
        chains = sample(pyro_potential(model), SGLD(1e-3), num_chains=2, num_draws=5, seed=0,
                        init={"w": torch.tensor([0.0, 6.0], dtype=torch.float64)},
                        on_nonfinite="stop_chain")
    assert chains.failures == [(1, 0)]
    assert torch.isfinite(chains.draws["w"][0]).all() and torch.isnan(chains.draws["w"][1]).all()
