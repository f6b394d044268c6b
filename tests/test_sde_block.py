"""SDEBNNBlock: sites, the hidden-state loop, user fields, augmentation, latents, bad input."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch import nn

from bayesdepth.sde import Conv1dField, Conv2dField, MLPField, OUPrior, SDEBNNBlock
from bayesdepth.sde.paths import EulerPath
from bayesdepth.svi import fit

F64 = torch.float64


def _block(d=3, hidden=4, steps=5, **kwargs):
    return SDEBNNBlock(MLPField(d + kwargs.get("augment", 0), hidden), d, steps=steps,
                       **kwargs).double()


class UserMLP(nn.Module):
    """Written like a user would: two linear layers and a tanh, no bayesdepth helpers."""

    def __init__(self, d, m):
        super().__init__()
        self.first = nn.Linear(d, m)
        self.second = nn.Linear(m, d)

    def forward(self, h):
        return self.second(torch.tanh(self.first(h)))


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
    """Independent Euler loop with explicit weight matrices (MLPField layout)."""
    d, m = block.state_shape[0], block.field.hidden
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
    q = block.posterior_path(block.w0.detach())
    full = [q.with_start(p) for p in q.sample((2,))]
    single = block.integrate(h, full[0])
    torch.testing.assert_close(single, _euler_reference(block, h, full[0]), rtol=1e-12, atol=1e-12)
    # A (particles, 1, K+1, d_w) path (vectorised particles under one plate) broadcasts.
    batched = block.integrate(h, torch.stack(full).unsqueeze(1))
    assert batched.shape == (2, 6, 3)
    torch.testing.assert_close(batched[1], _euler_reference(block, h, full[1]))


def test_a_user_field_built_like_the_builtin_mlp_gives_exactly_its_results():
    torch.manual_seed(3)
    builtin = SDEBNNBlock(MLPField(3, 5), 3, steps=6, name="b")
    torch.manual_seed(3)
    user = SDEBNNBlock(UserMLP(3, 5), 3, steps=6, name="b")
    assert torch.equal(builtin.w0, user.w0)  # same layout: first weight, bias, second ...
    assert builtin.num_weights == user.num_weights == 2 * 3 * 5 + 5 + 3
    h = torch.randn(7, 3)
    outs, grads = [], []
    for block in (builtin, user):
        pyro.set_rng_seed(11)
        path = block.guide_part()
        out = block.integrate(h, path)
        grads.append(torch.autograd.grad(out.square().sum(), block.w0))
        outs.append((path, out))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert torch.equal(grads[0][0], grads[1][0])
    # ... and the model sites and log densities of the whole block agree too.
    traces = []
    for block in (builtin, user):
        pyro.set_rng_seed(12)
        traces.append(poutine.trace(block.model_part).get_trace())
    assert torch.equal(traces[0].log_prob_sum(), traces[1].log_prob_sum())


def test_the_path_of_a_user_field_is_the_exact_euler_chain_and_kl_is_zero_at_init():
    torch.manual_seed(0)
    block = SDEBNNBlock(Conv1dField(2, hidden=3), (2, 9), steps=7,
                        grid=torch.tensor([0.0, 0.1, 0.15, 0.4, 0.6, 0.61, 0.9, 1.0]),
                        prior=OUPrior(0.3)).double()
    nn.init.normal_(block.posterior.correction.up.weight, std=0.5)  # a non-trivial drift
    w0 = block.w0.detach()
    q = block.posterior_path(w0, generator=torch.Generator().manual_seed(5))
    path = q.with_start(q.rsample())
    eps = block.posterior_path(w0, generator=torch.Generator().manual_seed(5)).increments(1)[:, 0]
    grid, sigma = block.grid, 0.3
    for k in range(7):
        dt = grid[k + 1] - grid[k]
        step = path[k] + block.posterior(grid[k], path[k]) * dt + sigma * dt.sqrt() * eps[k]
        torch.testing.assert_close(path[k + 1], step, rtol=0, atol=1e-12)
    # The default drift's last layer starts at zero: q = p and log q - log p = 0 exactly.
    fresh = SDEBNNBlock(Conv1dField(2, hidden=3), (2, 9), steps=7).double()
    p, q = fresh.prior_path(fresh.w0.detach()), fresh.posterior_path(fresh.w0.detach())
    value = q.rsample((3,))
    assert torch.equal(q.log_prob(value) - p.log_prob(value), torch.zeros(3, dtype=F64))


@pytest.mark.parametrize("solver", ["heun", "midpoint"])
def test_higher_order_solvers_converge_faster_on_a_smooth_path(solver):
    # A smooth deterministic weight path w(t) = w0 * (1 + t); compare against a fine Euler solve.
    def run(solver, steps):
        block = SDEBNNBlock(MLPField(2, 3), 2, steps=steps, solver=solver).double()
        torch.manual_seed(0)
        w0 = torch.randn(block.num_weights, dtype=F64)
        path = w0 * (1 + block.grid.unsqueeze(-1))
        return block.integrate(torch.ones(1, 2, dtype=F64), path)

    exact = run("euler", 4000)
    err_euler = (run("euler", 10) - exact).abs().max()
    err_high = (run(solver, 10) - exact).abs().max()
    assert err_high < err_euler / 5


def test_augmentation_pads_the_first_dim_with_zeros():
    block = _block(d=2, augment=3)
    assert block.state_shape == (5,)
    h = torch.randn(4, 2, dtype=F64)
    path = block.w0.detach().expand(6, -1)
    ref = _euler_reference(block, torch.cat([h, torch.zeros(4, 3, dtype=F64)], -1), path)
    torch.testing.assert_close(block.integrate(h, path), ref)
    seq = SDEBNNBlock(Conv1dField(3, 2), (1, 6), augment=2, steps=2).double()
    out = seq.integrate(torch.randn(4, 1, 6, dtype=F64), seq.w0.detach().expand(3, -1))
    assert out.shape == (4, 3, 6)


def test_blocks_compose_inside_a_user_model_and_train():
    b1 = SDEBNNBlock(MLPField(2, 4), 2, steps=4, name="first")
    b2 = SDEBNNBlock(MLPField(2, 4), 2, steps=4, name="second")
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

    hist = fit(model, guide, x, y, num_steps=30, lr=1e-2, progress=False, seed=0)
    assert hist.loss[-1] < hist.loss[0]
    store = pyro.get_param_store()
    assert "first.w0" in store and "second.w0" in store


def test_parameters_off_the_path_are_point_estimates_that_train():
    """A named subset forms w(t); the second layer stays an ordinary trained parameter."""
    torch.manual_seed(0)
    field = UserMLP(2, 4)
    block = SDEBNNBlock(field, 2, steps=3, name="b",
                        path_parameters=["first.weight", "first.bias"])
    assert block.num_weights == 4 * 2 + 4
    assert {n for n, _ in block.field.named_parameters()} == {"second.weight", "second.bias"}
    before = block.field.second.weight.detach().clone()
    x = torch.randn(16, 2)

    def model(x, y):
        path = block.model_part()
        with pyro.plate("data", 16):
            pyro.sample("y", dist.Normal(block.integrate(x, path).sum(-1), 0.1), obs=y)

    fit(model, lambda x, y: block.guide_part(), x, x.sum(-1), num_steps=5, progress=False, seed=0)
    assert "b.field$$$second.weight" in pyro.get_param_store()  # pyro.module naming
    assert not torch.equal(before, block.field.second.weight.detach())
    with torch.no_grad():  # the path's value is what the first layer uses, not its placeholder
        path = block.w0.expand(4, -1).clone()
        base = block.integrate(x, path)
        path[:, 0] += 1.0
        assert not torch.equal(base, block.integrate(x, path))


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

    block = SDEBNNBlock(MLPField(2, 3), 2, steps=3, prior=OUPrior(0.2), posterior=Zero())
    assert block.sigma == 0.2
    assert block.guide_part().shape == (4, block.num_weights)


def test_one_call_form_refuses_an_open_data_plate_but_not_vectorised_particles():
    block = SDEBNNBlock(MLPField(2, 3), 2, steps=2, name="b")
    x = torch.randn(40, 2)
    with pytest.raises(RuntimeError, match=r"inside the plate\(s\) \['data'\].*model_part"):
        with pyro.plate("data", 40):
            block(x)
    with pytest.raises(RuntimeError, match="guide_part"), pyro.plate("data", 40):
        block.guide_part()
    with pyro.plate("num_particles_vectorized", 3, dim=-2):
        path = block.model_part()
        with pyro.plate("data", 40, dim=-1):
            out = block.integrate(x, path)
    assert path.shape == (3, 1, 3, block.num_weights) and out.shape == (3, 40, 2)


class NoParameters(nn.Module):
    def forward(self, h):
        return -h


class WrongShape(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 3)

    def forward(self, h):
        return self.lin(h)


class IntegerParameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.count = nn.Parameter(torch.zeros(2, dtype=torch.long), requires_grad=False)

    def forward(self, h):
        return self.lin(h)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"in_shape": 0}, ValueError, "in_shape"),
        ({"in_shape": "2"}, TypeError, "in_shape"),
        ({"solver": "rk4"}, ValueError, "method"),
        ({"solver": 3}, TypeError, "solver"),
        ({"w0": "laplace"}, ValueError, "w0"),
        ({"w0_prior_mean": "median"}, ValueError, "w0_prior_mean"),
        ({"grid": torch.tensor([0.0, 0.6, 0.5])}, ValueError, "increasing"),
        ({"posterior": "net"}, TypeError, "posterior"),
        ({"prior": 0.1}, TypeError, "prior"),
        ({"field": "mlp"}, TypeError, "field must be an nn.Module"),
        ({"field": NoParameters()}, ValueError, "NoParameters has none"),
        ({"field": WrongShape()}, ValueError, r"shape of h \(2, 2\), got \(2, 3\)"),
        ({"field": IntegerParameter()}, TypeError, r"floating point; \['count'\].*int64"),
        ({"path_parameters": ["net.0.weight", "nope"]}, ValueError,
         r"unknown: \['nope'\]; the field's parameters are \['net.0.weight'"),
        ({"path_parameters": "net.0.weight"}, TypeError, "list of parameter names"),
        ({"in_shape": (2, 8, 8)}, ValueError, r"states h of shape \(n, 2, 8, 8\)"),
        # refused before the 400 GB grid is allocated, with the estimate (3 x 17 x 4 bytes a step)
        ({"steps": 10**11}, ValueError, r"steps=100000000000 with 17 path weights needs about "
                                        r"1.9e\+04 GiB \(one weight path.* more than the"),
    ],
)
def test_bad_block_arguments(kwargs, exc, match):
    kwargs.setdefault("field", MLPField(2, 3))
    kwargs.setdefault("in_shape", 2)
    with pytest.raises(exc, match=match):
        SDEBNNBlock(**kwargs)


def test_drift_with_wrong_output_shape_is_rejected_at_construction():
    class Bad(nn.Module):
        def forward(self, t, w):
            return w[..., :-1]

    with pytest.raises(ValueError, match="shape of w"):
        SDEBNNBlock(MLPField(2, 3), 2, posterior=Bad())


def test_integrate_rejects_a_wrong_state_or_path():
    block = _block()
    with pytest.raises(ValueError, match=r"h must have shape \(\.\.\., n, 3\)"):
        block.integrate(torch.zeros(4, 2, dtype=F64), block.w0.detach().expand(6, -1))
    with pytest.raises(ValueError, match=r"path must have shape \(\.\.\., 6, 31\)"):
        block.integrate(torch.zeros(4, 3, dtype=F64), block.w0.detach().expand(5, -1))
    conv = SDEBNNBlock(Conv2dField(2, 3), (2, 8, 8), steps=2).double()
    with pytest.raises(ValueError, match=r"\(\.\.\., n, 2, 8, 8\)"):
        conv.integrate(torch.zeros(4, 3, 8, 8, dtype=F64), conv.w0.detach().expand(3, -1))


def test_conv_field_matches_torch_conv_and_vectorises_over_paths():
    block = SDEBNNBlock(Conv2dField(3, 3), (2, 8, 8), steps=4, augment=1).double()
    assert block.num_weights == 3 * 3 * 9 + 3 + 3 * 3 * 9 + 3
    h = torch.randn(5, 2, 8, 8, dtype=F64)
    q = block.posterior_path(block.w0.detach())
    paths = q.with_start(q.sample((3,)))
    out = block.integrate(h, paths.unsqueeze(1))  # (particles, 1, K+1, d_w)
    assert out.shape == (3, 5, 3, 8, 8)
    sizes = (81, 3, 81, 3)
    for i in range(3):
        ref = torch.cat([h, torch.zeros(5, 1, 8, 8, dtype=F64)], 1)
        for k in range(4):
            w1, b1, w2, b2 = paths[i, k].split(sizes)
            z = torch.tanh(torch.nn.functional.conv2d(ref, w1.reshape(3, 3, 3, 3), b1, padding=1))
            ref = ref + 0.25 * torch.nn.functional.conv2d(z, w2.reshape(3, 3, 3, 3), b2, padding=1)
        torch.testing.assert_close(out[i], ref)
