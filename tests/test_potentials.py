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
