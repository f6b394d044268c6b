"""ArviZ export: R-hat on mixed and stuck chains, netCDF round trip, summaries and PNG plots."""

import numpy as np
import pytest
import torch
from bayesdepth.inference import SGLD, Potential, sample
from bayesdepth.inference import diagnostics as dg


class DoubleWell(Potential):
    """U = h (theta^2 - 1)^2 per coordinate (modes at +-1) or a standard Gaussian."""

    def __init__(self, dim=2, height=0.0):
        self.shapes = {"theta": torch.Size([dim])}
        self.height = height
        self.observed_data = {"y": torch.tensor([0.5, 1.5])}

    def init(self, num_chains, generator):
        sign = torch.where(torch.arange(num_chains) % 2 == 0, 1.0, -1.0).double()
        return {"theta": sign[:, None].expand(num_chains, self.shapes["theta"][0]).clone()}

    def __call__(self, params, batch=None):
        t = params["theta"]
        if self.height:
            return (self.height * (t**2 - 1) ** 2).sum(-1), None
        return 0.5 * (t**2).sum(-1), None


@pytest.fixture(scope="module")
def mixed():
    torch.set_num_threads(1)
    return sample(DoubleWell(), SGLD(0.2), num_chains=4, num_draws=4000, warmup=200, seed=0)


def test_well_mixed_chains_have_rhat_near_one(mixed):
    idata = mixed.to_arviz()
    r = dg.rhat(idata)["theta"]
    assert r.shape == (2,) and (r < 1.01).all()
    assert (dg.ess(idata)["theta"] > 400).all()


def test_stuck_chains_have_large_rhat():
    chains = sample(
        DoubleWell(height=8.0), SGLD(0.01), num_chains=4, num_draws=500, warmup=100, seed=0
    )
    r = dg.rhat(chains.to_arviz())["theta"]
    assert (r > 1.1).all()
    means = chains.draws["theta"].mean(1)[:, 0]
    assert (means[0::2] > 0.5).all() and (means[1::2] < -0.5).all()  # chains never switched


def test_inference_data_groups_and_netcdf_round_trip(mixed, tmp_path):
    idata = mixed.to_arviz()
    assert set(idata.groups()) == {"posterior", "sample_stats", "observed_data"}
    assert idata.posterior["theta"].shape == (4, 4000, 2)
    assert set(idata.sample_stats.data_vars) >= {"potential", "grad_norm", "lr", "temperature"}
    np.testing.assert_array_equal(idata.posterior["theta"].values, mixed.draws["theta"].numpy())
    path = dg.save_netcdf(idata, tmp_path / "sub" / "run.nc")
    back = dg.load_netcdf(path)
    for group in idata.groups():
        a, b = getattr(idata, group), getattr(back, group)
        assert set(a.data_vars) == set(b.data_vars)
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values)
            assert a[name].dtype == b[name].dtype


def test_summary_and_plots(mixed, tmp_path):
    idata = mixed.to_arviz()
    table = dg.summary(idata)
    assert {"mean", "sd", "ess_bulk", "r_hat"} <= set(table.columns)
    assert list(table.index) == ["theta[0]", "theta[1]"]
    for plot in (dg.plot_trace, dg.plot_rank, dg.plot_forest, dg.plot_pair):
        path = plot(idata, tmp_path / f"{plot.__name__}.png")
        assert path.stat().st_size > 1000
        assert path.read_bytes()[:4] == b"\x89PNG"


def test_pair_plot_refuses_more_than_six_dims(tmp_path):
    chains = sample(DoubleWell(dim=7), SGLD(0.1), num_chains=2, num_draws=20, seed=0)
    with pytest.raises(ValueError, match="at most 6"):
        dg.plot_pair(chains.to_arviz(), tmp_path / "pair.png")
    path = dg.plot_pair(chains.to_arviz(), tmp_path / "pair.png", coords={"theta_dim_0": [0, 1, 2]})
    assert path.exists()


# ------------------------------------------------------------------ groups for LOO and PPC
def _regression_chains(subsample=6):
    import pyro
    import pyro.distributions as dist
    from bayesdepth.inference import pyro_potential

    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 2, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -1.0], dtype=torch.float64) + 0.3 * torch.randn(
        30, generator=g, dtype=torch.float64)

    def model(x, y):
        w = pyro.sample("w", dist.Normal(torch.zeros(2, dtype=x.dtype), 1.0).to_event(1))
        with pyro.plate("data", x.shape[0], subsample_size=subsample) as idx:
            mean = pyro.deterministic("mean", x[idx] @ w, event_dim=0)
            pyro.sample("y", dist.Normal(mean, 0.3), obs=y[idx])

    pot = pyro_potential(model, x, y, init_radius=0.5)
    return sample(pot, SGLD(2e-3), num_chains=4, num_draws=200, warmup=200, seed=0), y


def _mlp_chains():
    from bayesdepth.inference import pyro_potential

    import bayesdepth as bd

    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 2, generator=g)
    y = torch.sin(x[:, 0]) + 0.1 * torch.randn(40, generator=g)
    net = bd.BayesianMLP(2, hidden=(8,), likelihood=bd.Gaussian(0.3), seed=0)
    pot = pyro_potential(net.model, x, y, subsample_size=10)
    return sample(pot, SGLD(2e-4), num_chains=4, num_draws=100, warmup=100, seed=0), y


@pytest.mark.parametrize("make", [_regression_chains, _mlp_chains], ids=["regression", "mlp"])
@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto")
@pytest.mark.filterwarnings("ignore:For one or more samples the posterior variance")
def test_loo_waic_and_ppc_run_on_sampled_chains(make, tmp_path):
    import arviz as az

    chains, y = make()
    idata = chains.to_arviz(posterior_predictive=True, prior=50)
    assert {"posterior", "log_likelihood", "posterior_predictive", "prior",
            "observed_data", "sample_stats"} <= set(idata.groups())
    assert list(idata.observed_data.data_vars) == ["y"]  # the deterministic site is not data
    np.testing.assert_array_equal(idata.observed_data["y"].values, y.numpy())
    assert idata.log_likelihood["y"].shape == (4, chains.num_draws, len(y))
    assert idata.posterior_predictive["y"].shape == (4, chains.num_draws, len(y))
    derived = "mean" if "mean" in idata.posterior else "f"
    assert idata.posterior[derived].shape == (4, chains.num_draws, len(y))
    loo, waic = az.loo(idata), az.waic(idata)
    assert np.isfinite(loo.elpd_loo) and np.isfinite(waic.elpd_waic)
    axes = az.plot_ppc(idata, num_pp_samples=20)
    dg._save(axes, tmp_path / "ppc.png")
    assert (tmp_path / "ppc.png").read_bytes()[:4] == b"\x89PNG"


def test_log_likelihood_group_is_pointwise_pyro_log_prob():
    from pyro import poutine

    chains, _ = _regression_chains()
    idata = chains.to_arviz(derived=False)
    assert "mean" not in idata.posterior
    model, args = chains.potential.model, chains.potential.model_args
    for c, d in [(0, 5), (3, 199)]:
        draw = {"w": chains.draws["w"][c, d]}
        # the whole data set: the model's plate indices are conditioned chunk by chunk
        for start in range(0, 30, 6):
            index = torch.arange(start, start + 6)
            trace = poutine.trace(poutine.condition(model, {**draw, "data": index})).get_trace(
                *args)
            site = trace.nodes["y"]
            np.testing.assert_allclose(idata.log_likelihood["y"].values[c, d, start:start + 6],
                                       site["fn"].log_prob(site["value"]).numpy(), rtol=1e-12)


def test_groups_a_potential_cannot_give():
    chains = sample(DoubleWell(), SGLD(0.1), num_chains=2, num_draws=10, seed=0)
    assert "log_likelihood" not in chains.to_arviz().groups()  # not asked for: skipped
    with pytest.raises(ValueError, match="log_likelihood=True"):
        chains.to_arviz(log_likelihood=True)
    with pytest.raises(ValueError, match="posterior_predictive=True"):
        chains.to_arviz(posterior_predictive=True)
    with pytest.raises(ValueError, match="prior=5"):
        chains.to_arviz(prior=5)


def test_module_potential_gives_log_likelihood_but_no_predictive():
    from bayesdepth.inference import module_potential

    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    y = x.sum(-1)
    net = torch.nn.Linear(3, 1).double()

    def loglik(out, target):
        return -0.5 * (out.squeeze(-1) - target) ** 2

    chains = sample(module_potential(net, loglik, x, y, batch_size=5), SGLD(1e-3), num_chains=2,
                    num_draws=6, seed=0)
    idata = chains.to_arviz()
    w, b = chains.draws["weight"][1, 4], chains.draws["bias"][1, 4]
    np.testing.assert_allclose(idata.log_likelihood["y"].values[1, 4],
                               loglik(x @ w.T + b, y).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="draw y"):
        chains.to_arviz(posterior_predictive=True)


# ------------------------------------------------------------------ convergence warnings
def test_summary_warns_naming_the_quantities_that_did_not_converge():
    chains = sample(
        DoubleWell(height=8.0), SGLD(0.01), num_chains=4, num_draws=500, warmup=100, seed=0
    )
    with pytest.warns(dg.ConvergenceWarning, match=r"theta\[0\] \(R-hat .*theta\[1\]"):
        dg.summary(chains.to_arviz())
    verdict = dg.convergence(chains.to_arviz())
    assert not verdict.converged and verdict.max_rhat > 1.1 and verdict.min_ess == 400
    assert [name for name, *_ in verdict.flagged] == ["theta[0]", "theta[1]"]
    assert "Vehtari" in verdict.message() and verdict.message().startswith("not converged")


def test_mixed_chains_raise_no_warning(mixed):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", dg.ConvergenceWarning)
        dg.summary(mixed.to_arviz())
    assert dg.convergence(mixed.to_arviz()).converged


def test_short_chains_miss_the_ess_threshold(mixed):
    """Agreeing chains that are too short: R-hat is fine, ESS (100 per chain) is not."""
    import arviz as az

    short = az.from_dict(posterior={"theta": mixed.draws["theta"][:, :60].numpy()})
    verdict = dg.convergence(short)
    assert not verdict.converged
    assert all(b < 400 for _, _, b, _ in verdict.flagged)


def test_constant_quantities_are_not_flagged():
    import arviz as az

    draws = np.random.default_rng(0).normal(size=(4, 1000, 2))
    draws[..., 1] = 1.0  # a probability saturated at 1 in every draw: the chains agree
    verdict = dg.convergence(az.from_dict(posterior={"p": draws}))
    assert verdict.converged, verdict.flagged
