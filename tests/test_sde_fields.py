"""Fields and time-conditioned layers: ready-made and user-defined, PyroSample priors, saving."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Predictive
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroSample, pyro_method
from torch import nn

import bayesdepth as bd
from bayesdepth.elbo import STLTrace_ELBO
from bayesdepth.sde import (
    ConcatConv1d,
    ConcatConv2d,
    ConcatLinear,
    Conv1dField,
    Conv2dField,
    MLPField,
    ResNetField,
    SDEBNNBlock,
    TimeSequential,
)
from bayesdepth.sde.layers import takes_time

F64 = torch.float64


def test_concat_layers_see_the_time_as_one_more_input():
    torch.manual_seed(0)
    lin = ConcatLinear(3, 2).double()
    h, t = torch.randn(4, 3, dtype=F64), torch.tensor(0.7, dtype=F64)
    expected = torch.cat([h, torch.full((4, 1), 0.7, dtype=F64)], -1) @ lin.weight.T + lin.bias
    torch.testing.assert_close(lin(t, h), expected)
    conv = ConcatConv2d(2, 3).double()
    x = torch.randn(5, 2, 6, 6, dtype=F64)
    ref = conv.conv(torch.cat([x, torch.full((5, 1, 6, 6), 0.7, dtype=F64)], 1))
    torch.testing.assert_close(conv(t, x), ref)
    assert ConcatConv2d(2, 3, stride=2, transpose=True, padding=1, output_padding=1)(
        t.float(), torch.randn(1, 2, 4, 4)).shape == (1, 3, 8, 8)
    seq = ConcatConv1d(2, 4, kernel_size=5)
    assert seq(t.float(), torch.randn(3, 2, 11)).shape == (3, 4, 11)
    net = TimeSequential(ConcatLinear(3, 5), nn.Tanh(), ConcatLinear(5, 3))
    out = net(t.float(), h.float())
    torch.testing.assert_close(out, net[2](t.float(), torch.tanh(net[0](t.float(), h.float()))))


def test_takes_time_reads_the_flag_or_the_signature():
    class Autonomous(nn.Module):
        def forward(self, h):
            return h

    class Timed(nn.Module):
        def forward(self, t, h):
            return h

    assert not takes_time(Autonomous()) and takes_time(Timed())
    assert takes_time(ConcatLinear(2, 2)) and not takes_time(nn.Tanh())
    assert takes_time(MLPField(2, time=True)) and not takes_time(MLPField(2))


@pytest.mark.parametrize(("field", "in_shape"), [
    (MLPField(4, 6, time=True), (4,)),
    (Conv2dField(3, 4, time=True), (3, 5, 5)),
    (Conv1dField(3, 4), (3, 9)),
    (ResNetField(3, 4), (3, 6, 6)),
])
def test_ready_made_fields_vectorise_over_draws_like_a_loop(field, in_shape):
    block = SDEBNNBlock(field, in_shape, steps=3).double()
    q = block.posterior_path(block.w0.detach())
    paths = q.with_start(q.sample((3,)))
    h = torch.randn(2, *in_shape, dtype=F64)
    out = block.integrate(h, paths.unsqueeze(1))
    assert out.shape == (3, 2, *in_shape)
    for i in range(3):
        torch.testing.assert_close(out[i], block.integrate(h, paths[i]), rtol=1e-12, atol=1e-12)


def test_time_conditioning_changes_the_field_along_depth():
    torch.manual_seed(0)
    block = SDEBNNBlock(MLPField(2, 3, time=True), 2, steps=4).double()
    f = block._evaluate
    w = block.weights.unflatten(block.w0.detach())
    h = torch.randn(3, 2, dtype=F64)
    assert not torch.allclose(f(torch.tensor(0.0, dtype=F64), h, w),
                              f(torch.tensor(1.0, dtype=F64), h, w))


@pytest.mark.parametrize(("cls", "kwargs", "match"), [
    (MLPField, {"dim": 0}, "dim"),
    (MLPField, {"dim": 2, "activation": "gelu"}, "activation"),
    (MLPField, {"dim": 2, "time": "yes"}, "time"),
    (Conv1dField, {"channels": 2, "kernel_size": 4}, "kernel_size must be odd"),
    (ResNetField, {"channels": 2, "hidden": 0}, "hidden"),
    (ConcatConv2d, {"in_channels": 0, "out_channels": 2}, "in_channels"),
])
def test_bad_field_arguments(cls, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls(**kwargs)


# --------------------------------------------------------------- PyroSample priors off the path
class BayesianBias(PyroModule):
    """A user field: the first layer on the weight path, the second layer's bias a PyroSample
    latent (constant in depth), its weight a point estimate."""

    def __init__(self, d, m):
        super().__init__()
        self.first = PyroModule[nn.Linear](d, m)
        self.second = PyroModule[nn.Linear](m, d)
        self.second.bias = PyroSample(dist.Normal(0.0, 1.0).expand([d]).to_event(1))

    def forward(self, h):
        return self.second(torch.tanh(self.first(h)))


class UserModel(PyroModule):
    def __init__(self):
        super().__init__()
        self.block = SDEBNNBlock(BayesianBias(2, 3), 2, steps=3,
                                 path_parameters=["first.weight", "first.bias"])

    @pyro_method
    def model(self, x, y=None):
        path = self.block.model_part()
        with pyro.plate("data", x.shape[0]):
            f = self.block.integrate(x, path).sum(-1)
            return pyro.sample("y", dist.Normal(f, 0.1), obs=y)


def test_pyrosample_parameters_off_the_path_are_global_latents_with_their_own_guide():
    torch.manual_seed(0)
    m = UserModel()
    bias_guide = AutoNormal(poutine.block(m.model, expose=["block.field.second.bias"]))

    def guide(x, y=None):
        m.block.guide_part()
        bias_guide(x, y)

    x = torch.randn(12, 2)
    y = x.sum(-1)
    trace = poutine.trace(m.model).get_trace(x, y)
    site = trace.nodes["block.field.second.bias"]
    assert site["cond_indep_stack"] == () and site["value"].shape == (2,)  # outside the plate
    samples = [n for n, s in trace.nodes.items() if s["type"] == "sample" and not s["is_observed"]
               and n != "data"]
    assert sorted(samples) == ["block.field.second.bias", "block.w"]
    hist = bd.fit(m.model, guide, x, y, num_steps=30, lr=2e-2, progress=False, seed=0,
                  num_particles=3, vectorize_particles=True)  # draws with leading dims
    assert hist.loss[-1] < hist.loss[0]
    draws = Predictive(m.model, guide=guide, num_samples=5, parallel=True,
                       return_sites=["block.field.second.bias", "y"])(x)
    assert draws["block.field.second.bias"].shape == (5, 1, 2) and draws["y"].shape == (5, 12)
    # each parallel draw is the model at that draw's bias and path
    assert len({round(float(v), 6) for v in draws["block.field.second.bias"][:, 0, 0]}) == 5


# ---------------------------------------------------------------------------- saving user fields
@bd.saveable
class GatedField(nn.Module):
    """A user field (sequences): a gated 1-D convolution, time conditioned by hand."""

    def __init__(self, channels, hidden=4):
        super().__init__()
        self.conv = ConcatConv1d(channels, hidden)
        self.gate = nn.Conv1d(hidden, channels, 1)

    def forward(self, t, h):
        return torch.tanh(self.gate(torch.relu(self.conv(t, h)))) * h


class Unsaveable(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.lin = nn.Linear(channels, channels)

    def forward(self, h):
        return self.lin(h)


def test_a_user_field_round_trips_through_save_and_load(tmp_path):
    x = torch.randn(6, 2, 10)
    m = bd.SDEBNNClassifier(2, 3, width=3, steps=2, field=GatedField(3), image_size=(10,),
                            num_blocks=2, seed=0)
    assert m.encoder.__class__.__name__.endswith("Conv1d")
    bd.fit(m.model, m.guide, x, torch.tensor([0, 1, 2, 0, 1, 2]), num_steps=3, progress=False,
           seed=0)
    path = bd.save(m, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="GatedField; pass it to load"):
        bd.load(path)
    again = bd.load(path, classes=[GatedField])
    a = m.predict(x, num_samples=3, seed=1).probs
    assert torch.equal(a, again.predict(x, num_samples=3, seed=1).probs)
    bad = bd.SDEBNNClassifier(4, 3, width=3, steps=2, field=Unsaveable(3))
    with pytest.raises(TypeError, match="Unsaveable records no constructor arguments"):
        bd.save(bad, tmp_path / "bad.pt")


def test_ready_made_fields_and_the_multiscale_model_round_trip(tmp_path):
    m = bd.sde.MultiScaleSDEBNN.preset("tiny", seed=0)
    x = torch.randn(3, 1, 8, 8)
    again = bd.load(bd.save(m, tmp_path / "ms.pt"))
    assert torch.equal(m.predict(x, num_samples=2, seed=0).probs,
                       again.predict(x, num_samples=2, seed=0).probs)


def test_stl_elbo_gradient_reaches_the_off_path_point_parameters():
    torch.manual_seed(0)
    field = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2))
    block = SDEBNNBlock(field, 2, steps=2, name="b", path_parameters=["0.weight", "0.bias"])
    x = torch.randn(8, 2)

    def model():
        path = block.model_part()
        with pyro.plate("data", 8):
            pyro.sample("y", dist.Normal(block.integrate(x, path).sum(-1), 0.1), obs=x.sum(-1))

    loss = STLTrace_ELBO().differentiable_loss(model, block.guide_part)
    grad = torch.autograd.grad(loss, block.field[2].weight)[0]
    assert grad.abs().sum() > 0


def test_ready_made_models_guide_the_fields_pyrosample_latents():
    torch.manual_seed(0)
    m = bd.SDEBNNClassifier(2, 3, width=2, steps=2, field=BayesianBias(2, 3), seed=0)
    x, y = torch.randn(10, 2), torch.randint(0, 3, (10,))
    assert sorted(m.latent_shapes(x)) == ["blocks.0.field.second.bias", "blocks.0.w"]
    guide = poutine.trace(m.guide).get_trace(x, y)
    assert "blocks.0.field.second.bias" in guide.nodes  # the AutoNormal part of the guide
    bd.fit(m.model, m.guide, x, y, num_steps=3, progress=False, seed=0)
    pred = m.predict(x, num_samples=4, seed=0)
    assert pred.probs.shape == (10, 3)
