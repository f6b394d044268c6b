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
