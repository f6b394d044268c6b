import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch import nn

from bayesdepth.sde.block import SDEBNNBlock
from bayesdepth.sde.paths import EulerPath
from bayesdepth.sde.processes import OUPrior

F64 = torch.float64


def _block(**kwargs):
    kwargs.setdefault("in_features", 3)
    kwargs.setdefault("hidden", 4)
    kwargs.setdefault("steps", 5)
    return SDEBNNBlock(**kwargs).double()


def test_model_and_guide_put_one_global_path_site():
    block = _block(name="b")
    model_trace = poutine.trace(block.model_part).get_trace()
    guide_trace = poutine.trace(block.guide_part).get_trace()
    for trace in (model_trace, guide_trace):
        sites = [n for n, s in trace.nodes.items() if s["type"] == "sample"]
        assert sites == ["b.w"]
        assert isinstance(trace.nodes["b.w"]["fn"], EulerPath)
        assert trace.nodes["b.w"]["value"].shape == (5, block.num_weights)
    # w0 is a learned point estimate shared by both; the correction's parameters only in the guide
    model_params = {n for n, s in model_trace.nodes.items() if s["type"] == "param"}
    guide_params = {n for n, s in guide_trace.nodes.items() if s["type"] == "param"}
    assert "b.w0" in model_params and "b.w0" in guide_params
    assert any("correction" in n for n in guide_params - model_params)
    assert not any("correction" in n for n in model_params)


def _euler_reference(block, h, path):
    """Independent Euler loop with explicit weight matrices."""
    d, m = block.dim, block.hidden
    for k in range(block.grid.numel() - 1):
        w = path[k]
        w1 = w[: m * d].reshape(m, d)
        b1 = w[m * d: m * d + m]
        w2 = w[m * d + m: m * d + m + d * m].reshape(d, m)
        b2 = w[m * d + m + d * m:]
        dt = block.grid[k + 1] - block.grid[k]
        h = h + dt * (torch.tanh(h @ w1.T + b1) @ w2.T + b2)
    return h


def test_integrate_matches_an_independent_euler_loop_and_broadcasts_paths():
    block = _block()
    h = torch.randn(6, 3, dtype=F64)
    paths = block.posterior_path(block.w0.detach()).sample((2,))
    full = [block.posterior_path(block.w0.detach()).with_start(p) for p in paths]
    single = block.integrate(h, full[0])
    torch.testing.assert_close(single, _euler_reference(block, h, full[0]), rtol=1e-12, atol=1e-12)
    # A (particles, 1, K+1, d_w) path (vectorised particles under one plate) broadcasts.
    stacked = torch.stack(full).unsqueeze(1)
    batched = block.integrate(h, stacked)
    assert batched.shape == (2, 6, 3)
    torch.testing.assert_close(batched[1], _euler_reference(block, h, full[1]))


@pytest.mark.parametrize("solver", ["heun", "midpoint"])
def test_higher_order_solvers_converge_faster_on_a_smooth_path(solver):
    # A smooth deterministic weight path w(t) = w0 * (1 + t); compare against a fine Euler solve.
    def run(solver, steps):
        block = SDEBNNBlock(2, hidden=3, steps=steps, solver=solver).double()
        torch.manual_seed(0)
        w0 = torch.randn(block.num_weights, dtype=F64)
        path = w0 * (1 + block.grid.unsqueeze(-1))
        return block.integrate(torch.ones(1, 2, dtype=F64), path)

    exact = run("euler", 4000)
    err_euler = (run("euler", 10) - exact).abs().max()
    err_high = (run(solver, 10) - exact).abs().max()
    assert err_high < err_euler / 5


def test_augmentation_pads_the_state_with_zeros():
    block = _block(in_features=2, augment=3)
    assert block.dim == 5
    h = torch.randn(4, 2, dtype=F64)
    path = block.w0.detach().expand(6, -1)
    out = block.integrate(h, path)
    assert out.shape == (4, 5)
    ref = _euler_reference(block, torch.cat([h, torch.zeros(4, 3, dtype=F64)], -1), path)
    torch.testing.assert_close(out, ref)


def test_blocks_compose_inside_a_user_model_and_train():
    b1 = SDEBNNBlock(2, hidden=4, steps=4, name="first")
    b2 = SDEBNNBlock(2, hidden=4, steps=4, name="second")
    x = torch.randn(20, 2)
    y = x.sum(-1)

    def model(x, y):
        p1, p2 = b1.model_part(), b2.model_part()
        with pyro.plate("data", x.shape[0]):
            out = b2.integrate(b1.integrate(x, p1), p2).sum(-1)
            pyro.sample("y", dist.Normal(out, 0.1), obs=y)

    def guide(x, y):
        b1.guide_part()
        b2.guide_part()

    from bayesdepth.svi import fit

    hist = fit(model, guide, x, y, num_steps=30, lr=1e-2, progress=False, seed=0)
    assert hist.loss[-1] < hist.loss[0]
    store = pyro.get_param_store()
    assert "first.w0" in store and "second.w0" in store


def test_normal_w0_latent_has_its_own_site():
    block = _block(w0="normal", name="b")
    gt = poutine.trace(block.guide_part).get_trace()
    mt = poutine.trace(poutine.replay(block.model_part, trace=gt)).get_trace()
    assert [n for n, s in mt.nodes.items() if s["type"] == "sample"] == ["b.w0", "b.w"]
    assert torch.equal(mt.nodes["b.w"]["fn"].w0, gt.nodes["b.w0"]["value"])


def _w0_log_ratio(block):
    """``log p(w0) - log q(w0)`` at the site ``b.w0`` for one guide draw."""
    gt = poutine.trace(block.guide_part).get_trace()
    mt = poutine.trace(poutine.replay(block.model_part, trace=gt)).get_trace()
    w0 = gt.nodes["b.w0"]["value"]
    return mt.nodes["b.w0"]["fn"].log_prob(w0) - gt.nodes["b.w0"]["fn"].log_prob(w0)


@pytest.mark.parametrize("prior_mean", ["zero", "learned"])
def test_w0_prior_mean_learned_prices_only_the_variances(prior_mean):
    torch.manual_seed(0)
    block = _block(w0="normal", name="b", w0_prior_scale=0.7, w0_prior_mean=prior_mean)
    with torch.no_grad():
        block.w0_log_scale.fill_(math.log(0.2))
    pyro.set_rng_seed(1)
    before = _w0_log_ratio(block)
    with torch.no_grad():
        block.w0_loc.add_(3.0)
    pyro.set_rng_seed(1)
    after = _w0_log_ratio(block)
    if prior_mean == "zero":
        assert not torch.allclose(before, after)
        return
    # With mu = m the ratio is sum_j log(0.2 / 0.7) + eps_j^2 / 2 - (0.2 eps_j)^2 / (2 * 0.49)
    pyro.set_rng_seed(1)
    eps = (poutine.trace(block.guide_part).get_trace().nodes["b.w0"]["value"]
           - block.w0_loc.detach()) / 0.2
    expected = (math.log(0.2 / 0.7) + eps**2 / 2 - (0.2 * eps) ** 2 / (2 * 0.49)).sum()
    assert torch.allclose(before, after, atol=1e-4)
    assert torch.allclose(after, expected, atol=1e-3)


def test_custom_drift_module_is_accepted():
    class Zero(nn.Module):
        def forward(self, t, w):
            return torch.zeros_like(w)

    block = SDEBNNBlock(2, hidden=3, steps=3, prior=OUPrior(0.2), posterior=Zero())
    assert block.sigma == 0.2
    assert block.guide_part().shape == (4, block.num_weights)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"in_features": 0}, ValueError, "in_features"),
        ({"solver": "rk4"}, ValueError, "solver"),
        ({"w0": "laplace"}, ValueError, "w0"),
        ({"w0_prior_mean": "median"}, ValueError, "w0_prior_mean"),
        ({"grid": torch.tensor([0.0, 0.6, 0.5])}, ValueError, "increasing"),
        ({"posterior": "net"}, TypeError, "posterior"),
        ({"prior": 0.1}, TypeError, "prior"),
    ],
)
def test_bad_block_arguments(kwargs, exc, match):
    kwargs.setdefault("in_features", 2)
    with pytest.raises(exc, match=match):
        SDEBNNBlock(**kwargs)


def test_drift_with_wrong_output_shape_is_rejected_at_construction():
    class Bad(nn.Module):
        def forward(self, t, w):
            return w[..., :-1]

    with pytest.raises(ValueError, match="shape of w"):
        SDEBNNBlock(2, hidden=3, posterior=Bad())


def test_integrate_rejects_a_wrong_state_size():
    block = _block()
    with pytest.raises(ValueError, match="h must have shape"):
        block.integrate(torch.zeros(4, 2, dtype=F64), block.w0.detach().expand(6, -1))
    conv = SDEBNNBlock(2, hidden=3, steps=2, field="conv").double()
    with pytest.raises(ValueError, match="C, H, W"):
        conv.integrate(torch.zeros(4, 3, 8, 8, dtype=F64), conv.w0.detach().expand(3, -1))


def test_conv_field_matches_torch_conv_and_vectorises_over_paths():
    block = SDEBNNBlock(2, hidden=3, steps=4, field="conv", augment=1).double()
    assert block.num_weights == 3 * 3 * 9 + 3 + 3 * 3 * 9 + 3
    h = torch.randn(5, 2, 8, 8, dtype=F64)
    q = block.posterior_path(block.w0.detach())
    paths = q.with_start(q.sample((3,)))
    out = block.integrate(h, paths.unsqueeze(1))  # (particles, 1, K+1, d_w)
    assert out.shape == (3, 5, 3, 8, 8)
    for i in range(3):
        ref = torch.cat([h, torch.zeros(5, 1, 8, 8, dtype=F64)], 1)
        for k in range(4):
            w1, b1, w2, b2 = paths[i, k].split(block._sizes)
            z = torch.tanh(torch.nn.functional.conv2d(ref, w1.reshape(3, 3, 3, 3), b1, padding=1))
            ref = ref + 0.25 * torch.nn.functional.conv2d(z, w2.reshape(3, 3, 3, 3), b2, padding=1)
        torch.testing.assert_close(out[i], ref)
