"""The Bayesian MLP baseline: sites, shapes, subsampling scale, dtype, bad input."""

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Predictive
from pyro.infer.autoguide import AutoNormal

from bayesdepth import STLTrace_ELBO, data
from bayesdepth.bnn import BayesianMLP


def test_sites_are_global_and_likelihood_is_scaled():
    net = BayesianMLP(2, hidden=(8,), noise_scale=None).double()
    x = torch.randn(20, 2, dtype=torch.float64)
    y = torch.randn(20, dtype=torch.float64)
    trace = poutine.trace(net.model).get_trace(x, y, subsample_size=5)
    assert trace.nodes["layers.0.weight"]["value"].shape == (8, 2)
    assert trace.nodes["layers.1.bias"]["value"].shape == (1,)
    assert trace.nodes["noise_scale"]["value"].dtype == torch.float64
    obs = trace.nodes["obs"]
    assert obs["value"].shape == (5,) and obs["scale"] == pytest.approx(4.0)


def test_fits_toy_regression_with_stl():
    d = data.toy_regression_1d(dtype=torch.float64)
    net = BayesianMLP(1, hidden=(32,), noise_scale=0.1).double()
    guide = AutoNormal(net.model, init_scale=0.01)
    svi = SVI(net.model, guide, pyro.optim.Adam({"lr": 3e-2}), STLTrace_ELBO())
    for _ in range(1500):
        svi.step(d.x, d.y)
    pred = Predictive(net.model, guide=guide, num_samples=64, return_sites=["_RETURN"])(d.x)
    mean = pred["_RETURN"].mean(0)
    assert ((mean - d.y) ** 2).mean().sqrt() < 0.3


def test_classifier_and_bad_input():
    net = BayesianMLP(3, out_features=4, likelihood="categorical")
    x = torch.randn(6, 3)
    out = poutine.trace(net.model).get_trace(x, torch.zeros(6, dtype=torch.long))
    assert out.nodes["obs"]["fn"].logits.shape == (6, 4)
    with pytest.raises(ValueError, match="x must have 3 features"):
        net.model(torch.randn(6, 2))
    with pytest.raises(ValueError, match="likelihood"):
        BayesianMLP(3, likelihood="poisson")
    with pytest.raises(ValueError, match="prior_scale"):
        BayesianMLP(3, prior_scale=0)
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        net.model([[1.0, 2.0, 3.0]])
