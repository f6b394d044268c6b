"""Path distributions: exactness of the simulated chains, densities, KL, and the exact posterior."""

import itertools
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torchsde
from pyro import poutine
from pyro.infer import Trace_ELBO
from torch import nn

from bayesdepth.elbo import STLTrace_ELBO
from bayesdepth.sde.exact import OUObservation
from bayesdepth.sde.paths import EulerPath, IncrementBrownian, euler_chain, kl_only, sdeint_euler
from bayesdepth.sde.processes import BottleneckDrift, OUPrior, PosteriorDrift

F64 = torch.float64


def _posterior(d, sigma=0.3, std=0.5, seed=0):
    torch.manual_seed(seed)
    prior = OUPrior(sigma)
    corr = BottleneckDrift(d, rank=3, hidden=4).double()
    nn.init.normal_(corr.up.weight, std=std)
    return prior, PosteriorDrift(prior, corr)


class _Counting(nn.Module):
    def __init__(self, drift):
        super().__init__()
        self.drift, self.calls = drift, 0

    def forward(self, t, w):
        self.calls += 1
        return self.drift(t, w)


@pytest.mark.parametrize("simulate", [euler_chain, sdeint_euler])
@pytest.mark.parametrize("grid", [
    torch.linspace(0, 1, 31, dtype=F64),
    torch.tensor([0.0, 0.05, 0.3, 0.31, 0.7, 1.0], dtype=F64),  # non-uniform
])
def test_simulated_path_is_exactly_the_euler_chain(simulate, grid):
    d, batch, sigma = 4, 3, 0.3
    _, post = _posterior(d, sigma)
    counting = _Counting(post)
    w0 = torch.randn(batch, d, dtype=F64)
    num = grid.numel() - 1
    eps = torch.randn(num, batch, d, dtype=F64)
    ys = simulate(counting, sigma, grid, w0, eps)
    assert ys.shape == (num + 1, batch, d) and torch.equal(ys[0], w0)
    # Exactly one drift evaluation per grid step (torchsde's shape-check call is reused):
    # no extra internal steps.
    assert counting.calls == num
    for k in range(num):
        dt = grid[k + 1] - grid[k]
        step = ys[k] + post(grid[k], ys[k]) * dt + sigma * dt.sqrt() * eps[k]
        torch.testing.assert_close(ys[k + 1], step, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_the_default_simulator_is_the_plain_chain_and_torchsde_agrees_bit_for_bit(dtype):
    d, sigma = 4, 0.3
    _, post = _posterior(d, sigma)
    post = post.to(dtype)
    grid = torch.tensor([0.0, 0.2, 0.25, 0.7, 1.0], dtype=dtype)
    w0 = torch.randn(3, d, dtype=dtype, requires_grad=True)
    assert EulerPath(post, sigma, grid, w0).simulate is euler_chain
    eps = torch.randn(4, 3, d, dtype=dtype)
    runs = []
    for simulate in (euler_chain, sdeint_euler):
        ys = simulate(post, sigma, grid, w0, eps)
        runs.append([ys, *torch.autograd.grad(ys.square().sum(),
                                              [w0, post.correction.up.weight])])
    # the same operations in the same order: training runs are reproduced exactly
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


def test_a_drift_of_the_wrong_shape_is_refused_by_the_default_chain():
    grid = torch.linspace(0, 1, 3, dtype=F64)
    with pytest.raises(ValueError, match="drift must return a tensor shaped like w"):
        euler_chain(lambda t, w: w[..., :1], 0.3, grid, torch.zeros(2, 3, dtype=F64),
                    torch.randn(2, 2, 3, dtype=F64))


def test_increment_brownian_answers_unit_steps_only():
    eps = torch.randn(3, 2, 4, dtype=F64)
    bm = IncrementBrownian(eps)
    assert torch.equal(bm(torch.tensor(1.0), torch.tensor(2.0)), eps[1])
    assert bm.shape == (2, 4) and bm.dtype == F64
    with pytest.raises(ValueError, match="unit steps"):
        bm(0.0, 0.5)


def test_log_prob_is_the_sum_of_gaussian_transitions():
    d, sigma = 3, 0.4
    _, post = _posterior(d, sigma)
    grid = torch.tensor([0.0, 0.1, 0.25, 0.6, 1.0], dtype=F64)
    w0 = torch.randn(2, d, dtype=F64)
    q = EulerPath(post, sigma, grid, w0)
    value = q.rsample((5,))
    assert value.shape == (5, 2, 4, d)
    expected = torch.zeros(5, 2, dtype=F64)
    full = q.with_start(value)
    for k in range(4):
        dt = grid[k + 1] - grid[k]
        mean = full[..., k, :] + post(grid[k], full[..., k, :]) * dt
        expected += dist.Normal(mean, sigma * dt.sqrt()).log_prob(full[..., k + 1, :]).sum(-1)
    torch.testing.assert_close(q.log_prob(value), expected, rtol=1e-12, atol=1e-12)


def test_kl_is_exactly_zero_at_initialisation():
    d, sigma = 6, 0.2
    prior = OUPrior(sigma)
    post = PosteriorDrift(prior, BottleneckDrift(d).double())  # last layer zero
    grid = torch.linspace(0, 1, 11, dtype=F64)
    w0 = torch.randn(d, dtype=F64)
    q, p = EulerPath(post, sigma, grid, w0), EulerPath(prior, sigma, grid, w0)
    value = q.rsample((7,))
    assert torch.equal(q.log_prob(value) - p.log_prob(value), torch.zeros(7, dtype=F64))
    assert torch.equal(kl_only(q, p, value), torch.zeros(7, dtype=F64))


def test_log_ratio_equals_the_discrete_girsanov_sum():
    """log q - log p = sum_k 1/2 |u_k|^2 dt_k + u_k . dB_k, with dB_k from the Brownian motion."""
    d, batch, sigma = 5, 4, 0.3
    prior, post = _posterior(d, sigma)
    grid = torch.tensor([0.0, 0.2, 0.3, 0.65, 0.8, 1.0], dtype=F64)
    num = grid.numel() - 1
    w0 = torch.randn(batch, d, dtype=F64)
    eps = torch.randn(num, batch, d, dtype=F64)
    ys = euler_chain(post, sigma, grid, w0, eps)
    girsanov = torch.zeros(batch, dtype=F64)
    for k in range(num):
        dt = grid[k + 1] - grid[k]
        u = (post(grid[k], ys[k]) - prior(grid[k], ys[k])) / sigma
        db = dt.sqrt() * eps[k]
        girsanov += (0.5 * u.pow(2) * dt + u * db).sum(-1)
    value = ys[1:].transpose(0, 1)
    q, p = EulerPath(post, sigma, grid, w0), EulerPath(prior, sigma, grid, w0)
    torch.testing.assert_close(q.log_prob(value) - p.log_prob(value), girsanov,
                               rtol=1e-10, atol=1e-10)


class _LogqpSDE(nn.Module):
    """Chain (1) in step time with the prior drift ``h`` that torchsde's ``logqp=True`` needs."""

    noise_type, sde_type = "diagonal", "ito"

    def __init__(self, post, prior, sigma, grid):
        super().__init__()
        self.post, self.prior, self.grid, self.dt = post, prior, grid, grid.diff()
        self.scale = sigma * self.dt.sqrt()

    def f(self, s, w):
        k = int(s)
        return self.post(self.grid[k], w) * self.dt[k]

    def g(self, s, w):
        return self.scale[int(s)].expand_as(w)

    def h(self, s, w):
        k = int(s)
        return self.prior(self.grid[k], w) * self.dt[k]


def test_kl_only_matches_torchsde_logqp_on_the_same_path():
    d, batch, sigma = 4, 3, 0.25
    prior, post = _posterior(d, sigma)
    grid = torch.linspace(0, 1, 21, dtype=F64)
    w0 = torch.randn(batch, d, dtype=F64)
    sde = _LogqpSDE(post, prior, sigma, grid)
    bm = IncrementBrownian(torch.randn(20, batch, d + 1, dtype=F64))  # logqp adds a channel
    ts = torch.arange(21, dtype=F64)
    ys, logqp = torchsde.sdeint(sde, w0, ts, bm=bm, method="euler", dt=1.0, logqp=True)
    q, p = EulerPath(post, sigma, grid, w0), EulerPath(prior, sigma, grid, w0)
    ours = kl_only(q, p, ys[1:].transpose(0, 1))
    torch.testing.assert_close(ours, logqp.sum(0), rtol=0, atol=1e-10)
    assert ours.abs().min() > 1e-3  # a non-trivial KL


def test_same_generator_seed_same_path_and_gradients_flow():
    d = 3
    _, post = _posterior(d)
    grid = torch.linspace(0, 1, 6, dtype=F64)
    w0 = torch.randn(d, dtype=F64, requires_grad=True)
    a = EulerPath(post, 0.3, grid, w0, generator=torch.Generator().manual_seed(4)).rsample((2,))
    b = EulerPath(post, 0.3, grid, w0, generator=torch.Generator().manual_seed(4)).rsample((2,))
    c = EulerPath(post, 0.3, grid, w0, generator=torch.Generator().manual_seed(5)).rsample((2,))
    assert torch.equal(a, b) and not torch.equal(a, c)
    a.sum().backward()
    assert w0.grad is not None and post.correction.up.weight.grad.abs().sum() > 0


def test_sample_moments_match_the_ou_chain():
    """Mean and variance of w_K under the prior chain match the AR(1) recursion (3 SE)."""
    sigma, theta, num, n = 0.5, 1.0, 10, 4000
    prior = OUPrior(sigma, theta)
    grid = torch.linspace(0, 1, num + 1, dtype=F64)
    p = EulerPath(prior, sigma, grid, torch.tensor([1.0], dtype=F64),
                  generator=torch.Generator().manual_seed(0))
    last = p.sample((n,))[:, -1, 0]
    a, dt = 1 - theta / num, 1 / num
    mean = a**num
    var = sigma**2 * dt * sum(a ** (2 * j) for j in range(num))
    assert abs(last.mean() - mean) < 3 * math.sqrt(var / n)
    assert abs(last.var() / var - 1) < 3 * math.sqrt(2 / n)


def test_expand_gives_independent_paths_of_the_right_shape():
    _, post = _posterior(2)
    q = EulerPath(post, 0.3, torch.linspace(0, 1, 5, dtype=F64), torch.zeros(2, dtype=F64))
    e = q.expand((3, 1))
    v = e.rsample()
    assert e.batch_shape == (3, 1) and v.shape == (3, 1, 4, 2)
    assert not torch.equal(v[0], v[1])
    assert e.log_prob(v).shape == (3, 1)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"sigma": 0.0}, ValueError, "sigma"),
        ({"sigma": -1.0}, ValueError, "sigma"),
        ({"grid": torch.tensor([0.0, 0.5, 0.4, 1.0])}, ValueError, "increasing"),
        ({"grid": torch.tensor([0.0])}, ValueError, "at least 2"),
        ({"grid": torch.tensor([[0.0, 1.0]])}, ValueError, "grid"),
        ({"grid": torch.tensor([0, 1])}, TypeError, "grid"),
        ({"w0": [0.0, 1.0]}, TypeError, "w0"),
    ],
)
def test_bad_arguments_are_named(kwargs, exc, match):
    args = {"drift": OUPrior(0.1), "sigma": 0.1, "grid": torch.linspace(0, 1, 3),
            "w0": torch.zeros(2)}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        EulerPath(**args)


def test_drift_with_wrong_output_shape_is_rejected():
    class Bad(nn.Module):
        def forward(self, t, w):
            return w[..., :1]

    q = EulerPath(Bad(), 0.1, torch.linspace(0, 1, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="drift must return"):
        q.rsample()
    with pytest.raises(ValueError, match="drift must return"):
        q.log_prob(torch.zeros(2, 2))


# ----------------------------------------------------------------------------- exact posterior
# OU prior path observed at t = 1 (bayesdepth.sde.exact): the guide's drift is the exact Doob
# h-transform, so the ELBO tends to log p(y) as dt -> 0 and the STL gradient variance to zero.
PROBLEM = OUObservation(theta=1.0, sigma=0.5, w0=0.3, y=1.0, noise=0.2)


def _per_path_elbo(model, guide):
    guide_trace = poutine.trace(guide).get_trace()
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace()
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    return (model_trace.nodes["w"]["log_prob"] + model_trace.nodes["y"]["log_prob"]
            - guide_trace.nodes["w"]["log_prob"])


def test_exact_posterior_elbo_and_stl_variance():
    n = 1000
    # log p(y) = log N(y; exp(-theta) w0, sigma^2 (1 - exp(-2 theta)) / (2 theta) + s^2)
    log_py = dist.Normal(
        math.exp(-1.0) * 0.3, math.sqrt(0.25 * (1 - math.exp(-2.0)) / 2 + 0.04)
    ).log_prob(torch.tensor(1.0, dtype=F64)).item()
    assert PROBLEM.log_evidence() == pytest.approx(log_py, abs=1e-12)
    stl_var, trace_var, elbo_sd = [], [], []
    for num in (25, 50, 100, 200):
        model, guide, doob = PROBLEM.model_and_guide(n, num)
        variances = []
        for elbo in (STLTrace_ELBO(), Trace_ELBO()):
            pyro.set_rng_seed(num)
            loss = elbo.differentiable_loss(model, guide)
            # Each path has its own (alpha, beta): the gradient is per sample.
            ga, gb = torch.autograd.grad(loss, [doob.alpha, doob.beta])
            variances.append((ga.var() + gb.var()).item())
        stl_var.append(variances[0])
        trace_var.append(variances[1])

        with torch.no_grad():
            elbo_i = _per_path_elbo(model, guide)
        gap, se = elbo_i.mean().item() - log_py, elbo_i.std().item() / math.sqrt(n)
        # The ELBO of the exact SDE posterior against the Euler prior chain is log p(y) + O(dt).
        assert abs(gap) < 3 * se + 1.0 / num, (num, gap, se)
        elbo_sd.append(elbo_i.std().item())

    assert all(a > b for a, b in itertools.pairwise(stl_var)), stl_var
    assert all(a > b for a, b in itertools.pairwise(elbo_sd)), elbo_sd
    assert min(trace_var) > 1.0  # the score term's variance does not vanish
    assert stl_var[-1] / trace_var[-1] < 1e-2
    assert stl_var[-1] < stl_var[0] / 20  # roughly dt^2: 4x per halving


@pytest.mark.slow
def test_compiled_simulator_gives_the_same_chain_and_gradients():
    from bayesdepth.sde import CompiledEuler

    d, batch, sigma = 5, 2, 0.3
    _, post = _posterior(d, sigma)
    grid = torch.tensor([0.0, 0.1, 0.35, 0.5, 1.0], dtype=F64)
    w0 = torch.randn(batch, d, dtype=F64, requires_grad=True)
    eps = torch.randn(4, batch, d, dtype=F64)
    runs = []
    for simulate in (euler_chain, CompiledEuler()):
        ys = simulate(post, sigma, grid, w0, eps)
        runs.append((ys, torch.autograd.grad(ys.square().sum(), [w0, post.correction.up.weight])))
    torch.testing.assert_close(runs[1][0], runs[0][0], rtol=1e-12, atol=1e-12)
    for a, b in zip(runs[0][1], runs[1][1]):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


def test_compiling_keeps_distribution_validation_on():
    from bayesdepth.sde import CompiledEuler

    # torch.compile's first use turns validation off for the whole process; the simulator
    # puts it back, so Pyro's support checks still catch a NaN parameter afterwards
    _, post = _posterior(3, 0.3)
    CompiledEuler()(post, 0.3, torch.tensor([0.0, 0.5, 1.0], dtype=F64),
                    torch.zeros(1, 3, dtype=F64), torch.randn(2, 1, 3, dtype=F64))
    with pytest.raises(ValueError, match="loc"):
        torch.distributions.Normal(torch.tensor(float("nan")), 1.0)
