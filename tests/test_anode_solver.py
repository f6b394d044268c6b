"""ODESolver: adjoint gradients, NFE accounting, validation and failure messages."""

import pytest
import torch
from torch import nn

from bayesdepth.anode import AugmentedNeuralODE, ODESolver, ODESolverError, SolveCost
from bayesdepth.anode.fields import MLPField


class CountingField(nn.Module):
    """Wraps a field and counts its calls itself (independent of SolveCost)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, t, h):
        self.calls += 1
        return self.inner(t, h)


def _model(solver, dtype=torch.float64, seed=0, activation="relu"):
    torch.manual_seed(seed)
    field = CountingField(MLPField(3, hidden=8, activation=activation))
    return AugmentedNeuralODE(2, 2, augment_dim=1, field=field, solver=solver).to(dtype)


def _grads(model, x):
    model.zero_grad()
    out = model(x)
    (out.pow(2).sum() + out[:, 0].sin().sum()).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_adjoint_gradients_match_direct_backprop():
    # a smooth field: with ReLU kinks the two agree only to about 1e-4 at tolerance 1e-10
    x = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    tight = {"rtol": 1e-10, "atol": 1e-10}
    direct = _grads(_model(ODESolver(**tight), activation="tanh"), x)
    adjoint = _grads(_model(ODESolver(**tight, adjoint=True), activation="tanh"), x)
    rel = (adjoint - direct).norm() / direct.norm()
    assert rel < 1e-4, rel
    # and elementwise for the large entries
    big = direct.abs() > 1e-3 * direct.abs().max()
    assert torch.allclose(adjoint[big], direct[big], rtol=1e-4)


def test_adjoint_gradients_with_explicit_params_match_direct():
    torch.manual_seed(0)
    field = MLPField(2, hidden=6, activation="softplus").double()
    params = {k: v.detach().clone().requires_grad_(True) for k, v in field.named_parameters()}
    h0 = torch.randn(5, 2, dtype=torch.float64)
    grads = []
    for adjoint in (False, True):
        solver = ODESolver(rtol=1e-10, atol=1e-10, adjoint=adjoint)
        out = solver.integrate(field, h0, params=params)
        grads.append(torch.autograd.grad(out.pow(3).sum(), list(params.values())))
    for g_direct, g_adj in zip(*grads):
        assert torch.allclose(g_adj, g_direct, rtol=1e-4, atol=1e-8)
    # the module's own parameters were not used
    assert all(p.grad is None for p in field.parameters())


def test_dopri5_forward_nfe_matches_counting_wrapper_and_formula():
    model = _model(ODESolver(rtol=1e-6, atol=1e-6), dtype=torch.float32)
    x = torch.randn(8, 2)
    cost = SolveCost()
    model(x, cost=cost)
    assert cost.forward_nfe == model.field.calls
    assert cost.forward_nfe > 8
    assert (cost.forward_nfe - 2) % 6 == 0  # 2 + 6 x (accepted + rejected steps)
    assert cost.solves == 1


def test_fixed_step_nfe_exact_forward_and_backward():
    model = _model(ODESolver(method="rk4", step_size=0.1), dtype=torch.float32)
    cost = SolveCost()
    model(torch.randn(4, 2), cost=cost).sum().backward()
    assert cost.forward_nfe == 40  # 4 stages x 10 steps
    assert cost.backward_nfe == 40  # one vector-Jacobian product per recorded evaluation


def test_direct_backward_nfe_counts_only_recorded_evaluations():
    model = _model(ODESolver(), dtype=torch.float32)
    cost = SolveCost()
    out = model(torch.randn(32, 2), cost=cost)
    assert cost.backward_nfe == 0  # nothing before backward()
    out.sum().backward()
    assert 0 < cost.backward_nfe <= cost.forward_nfe


def test_adjoint_backward_nfe_matches_counting_wrapper():
    model = _model(ODESolver(adjoint=True, adjoint_rtol=1e-5, adjoint_atol=1e-5))
    x = torch.randn(8, 2, dtype=torch.float64)
    cost = SolveCost()
    out = model(x, cost=cost)
    forward_calls = model.field.calls
    assert cost.forward_nfe == forward_calls
    out.sum().backward()
    assert cost.backward_nfe == model.field.calls - forward_calls
    assert (cost.backward_nfe - 2) % 6 == 0
    # tighter backward tolerances cost more backward evaluations
    assert cost.backward_nfe > cost.forward_nfe


def test_cost_accumulates_over_calls_and_adds():
    model = _model(ODESolver(method="euler", step_size=0.25), dtype=torch.float32)
    cost = SolveCost()
    model(torch.randn(3, 2), cost=cost)
    model(torch.randn(3, 2), cost=cost)
    assert (cost.forward_nfe, cost.solves) == (8, 2)
    total = cost + SolveCost(1, 2, 3)
    assert (total.forward_nfe, total.backward_nfe, total.solves) == (9, 2, 5)


def test_trajectory_times():
    model = _model(ODESolver(), dtype=torch.float64)
    x = torch.randn(5, 2, dtype=torch.float64)
    times = torch.linspace(0, 1, 6, dtype=torch.float64)
    traj = model.flow(x, times)
    assert traj.shape == (6, 5, 3)
    assert torch.equal(traj[0, :, :2], x) and torch.all(traj[0, :, 2] == 0)
    assert torch.allclose(traj[-1], model.flow(x), atol=1e-2)


def test_unknown_solver_lists_valid_ones():
    with pytest.raises(ValueError, match="method") as info:
        ODESolver(method="rk45")
    for name in ("'dopri5'", "'rk4'", "'euler'"):
        assert name in str(info.value)
    with pytest.raises(ValueError, match="adjoint_method"):
        ODESolver(adjoint=True, adjoint_method="nope")


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize("value", [0.0, -1e-3, float("nan")])
def test_nonpositive_tolerances_rejected(name, value):
    with pytest.raises(ValueError, match=name):
        ODESolver(**{name: value})
    with pytest.raises(ValueError, match=f"adjoint_{name}"):
        ODESolver(adjoint=True, **{f"adjoint_{name}": value})


def test_step_size_rules():
    with pytest.raises(ValueError, match="step_size is for fixed-step"):
        ODESolver(method="dopri5", step_size=0.1)
    with pytest.raises(ValueError, match="step_size"):
        ODESolver(method="rk4", step_size=0.0)
    with pytest.raises(ValueError, match="need adjoint=True"):
        ODESolver(adjoint_rtol=1e-3)
    with pytest.raises(ValueError, match="max_num_steps"):
        ODESolver(max_num_steps=0)


class BlowUp(nn.Module):
    def forward(self, t, h):
        return h.pow(2)  # h(0) = 2 blows up at t = 1/2


def test_step_size_underflow_reraised_with_hint():
    model = AugmentedNeuralODE(1, 1, field=BlowUp(), readout="identity")
    with pytest.raises(ODESolverError, match=r"looser tolerances.*fixed-step") as info:
        model(torch.full((1, 1), 2.0, dtype=torch.float64))
    assert "underflow" in str(info.value) or "max_num_steps" in str(info.value)


def test_fixed_step_solves_honour_max_num_steps_and_report_blow_ups():
    assert ODESolver("rk4", step_size=0.1, max_num_steps=10).max_num_steps == 10
    with pytest.raises(ValueError, match=r"ceil\(end_time / step_size\) = 10 steps"):
        ODESolver("rk4", step_size=0.1, max_num_steps=9)
    model = AugmentedNeuralODE(1, 1, field=BlowUp(), readout="identity",
                               solver=ODESolver("euler", step_size=0.25))
    with pytest.raises(ODESolverError, match="euler solve produced NaN or infinite states"):
        model(torch.full((1, 1), 1e10))  # float32 overflows within the four steps


@pytest.mark.parametrize(("x", "match"), [
    (torch.zeros(0, 2, dtype=torch.float64), "x has no rows"),
    (torch.tensor([[0.0, 1.0], [float("nan"), 0.0]], dtype=torch.float64),
     "x has a NaN or infinite value in row 1"),
])
def test_empty_or_nan_input_is_named_before_the_solve(x, match):
    with pytest.raises(ValueError, match=match):
        _model(ODESolver())(x)


def test_too_many_steps_reraised_with_hint():
    solver = ODESolver(rtol=1e-9, atol=1e-9, max_num_steps=5)
    model = _model(solver)
    with pytest.raises(ODESolverError, match=r"max_num_steps exceeded.*fixed-step solver"):
        model(torch.randn(4, 2, dtype=torch.float64))


def test_adjoint_backward_failure_reraised_with_hint():
    # the forward solve (tolerance 1e-3) needs 3 steps; the backward one at 1e-12 needs more than 8
    solver = ODESolver(max_num_steps=8, adjoint=True, adjoint_rtol=1e-12, adjoint_atol=1e-12)
    model = _model(solver)
    out = model(torch.randn(4, 2, dtype=torch.float64))
    with pytest.raises(ODESolverError, match=r"max_num_steps.*backward solve.*looser tolerances"):
        out.sum().backward()


def test_adjoint_gradient_reaches_inputs_and_module_parameters_only_once():
    model = _model(ODESolver(adjoint=True, rtol=1e-9, atol=1e-9), activation="tanh")
    x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    model(x).sum().backward()
    grads_adjoint = [x.grad.clone()] + [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    x.grad = None
    model.solver = ODESolver(rtol=1e-9, atol=1e-9)
    model(x).sum().backward()
    grads_direct = [x.grad] + [p.grad for p in model.parameters()]
    for a, d in zip(grads_adjoint, grads_direct):
        assert torch.allclose(a, d, rtol=1e-5, atol=1e-9)
