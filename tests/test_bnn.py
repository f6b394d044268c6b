"""The Bayesian MLP baseline: sites, shapes, subsampling scale, dtype, bad input."""

import pytest
import torch
from pyro import poutine

import bayesdepth as bd
from bayesdepth import data


def test_sites_are_global_and_likelihood_is_scaled():
    net = bd.BayesianMLP(2, hidden=(8,), likelihood=bd.Gaussian(None), seed=0).double()
    x = torch.randn(20, 2, dtype=torch.float64)
    y = torch.randn(20, dtype=torch.float64)
    trace = poutine.trace(net.model).get_trace(x, y, subsample_size=5)
    assert trace.nodes["layers.0.weight"]["value"].shape == (8, 2)
    assert trace.nodes["layers.1.bias"]["value"].shape == (1,)
    assert trace.nodes["layers.0.weight"]["cond_indep_stack"] == ()
    assert trace.nodes["noise_scale"]["value"].dtype == torch.float64
    obs = trace.nodes["y"]
    assert obs["value"].shape == (5,) and obs["scale"] == pytest.approx(4.0)
    assert trace.nodes["f"]["value"].shape == (5,)


def test_fits_toy_regression_with_stl():
    d = data.toy_regression_1d(dtype=torch.float64)
    net = bd.BayesianMLP(1, hidden=(32,), likelihood=bd.Gaussian(0.1), seed=0).double()
    bd.fit(net.model, net.guide, d.x, d.y, num_steps=1500, lr=3e-2, progress=False, seed=0)
    pred = net.predict(d.x, num_samples=64, seed=0)
    assert ((pred.mean - d.y) ** 2).mean().sqrt() < 0.3
    torch.testing.assert_close(pred.sd**2, pred.epistemic_sd**2 + 0.01)


def test_classifier_and_bad_input():
    net = bd.BayesianMLP(3, out_features=4, likelihood=bd.Categorical())
    x = torch.randn(6, 3)
    out = poutine.trace(net.model).get_trace(x, torch.zeros(6, dtype=torch.long))
    assert out.nodes["y"]["fn"].logits.shape == (6, 4)
    with pytest.raises(ValueError, match="x must have 3 features"):
        net.model(torch.randn(6, 2))
    with pytest.raises(TypeError, match="likelihood must be a bayesdepth likelihood"):
        bd.BayesianMLP(3, likelihood="poisson")
    with pytest.raises(ValueError, match="Gaussian likelihood needs 1 output"):
        bd.BayesianMLP(3, out_features=2)
    with pytest.raises(ValueError, match="prior_scale"):
        bd.BayesianMLP(3, prior_scale=0)
    with pytest.raises(TypeError, match="hidden must be a sequence"):
        bd.BayesianMLP(3, hidden=16)
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        net.model([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"labels in \[0, 4\), got 7 in row 2"):
        net.model(x, torch.tensor([0, 1, 7, 0, 0, 0]))
