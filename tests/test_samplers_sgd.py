"""SGD, with momentum and weight decay: torch.optim.SGD parity, docs/theory.md §1.2 and §2.1."""

import pytest
import scipy.linalg
import torch
from bayesdepth.inference import SGD, CyclicalCosine
from quadratic import batch_grad_fn, quadratic_problem, stationary_cov


def _rel(x, y):
    return (torch.linalg.norm(x - y) / torch.linalg.norm(y)).item()


def test_constant_sgd_matches_discrete_lyapunov():
    a, b, c = quadratic_problem()
    assert not torch.allclose(a @ c, c @ a)
    eps, batch = 1.0, 4
    m = torch.eye(3, dtype=torch.float64) - eps * a
    exact = torch.as_tensor(
        scipy.linalg.solve_discrete_lyapunov(m.numpy(), (eps**2 * c / batch).numpy())
    )
    relax = int(1 / (eps * torch.linalg.eigvalsh(a)[0].item())) + 1
    cov, se = stationary_cov(SGD(eps), batch_grad_fn(a, b, batch), 3, 3000, 10 * relax, 60 * relax)
    assert (se.diagonal() / exact.diagonal()).max() < 0.0067
    assert _rel(cov, exact) < 0.02
    continuous = torch.as_tensor(
        scipy.linalg.solve_continuous_lyapunov(a.numpy(), (eps * c / batch).numpy())
    )
    assert _rel(continuous, exact) > 0.1  # the test resolves the discrete correction


def test_momentum_weight_decay_matches_phase_space_lyapunov():
    a, b, c = quadratic_problem()
    eta, beta, wd, batch = 0.5, 0.7, 0.1, 4
    at = a + wd * torch.eye(3, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    mz = torch.cat(
        [torch.cat([eye - eta * at, -eta * beta * eye], 1), torch.cat([at, beta * eye], 1)]
    )
    gz = torch.cat([-eta * eye, eye])
    p = scipy.linalg.solve_discrete_lyapunov(mz.numpy(), (gz @ (c / batch) @ gz.T).numpy())
    exact = torch.as_tensor(p[:3, :3])
    relax = int(1 / (eta / (1 - beta) * torch.linalg.eigvalsh(at)[0].item())) + 1
    sampler = SGD(eta, momentum=beta, weight_decay=wd)
    cov, se = stationary_cov(sampler, batch_grad_fn(a, b, batch), 3, 3000, 15 * relax, 60 * relax)
    assert (se.diagonal() / exact.diagonal()).max() < 0.0067
    assert _rel(cov, exact) < 0.02


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"momentum": 0.9},
        {"momentum": 0.9, "weight_decay": 0.01},
        {"momentum": 0.9, "dampening": 0.3, "weight_decay": 0.05},
        {"momentum": 0.8, "nesterov": True, "weight_decay": 0.1},
    ],
)
def test_sgd_is_bitwise_torch_optim_sgd(kwargs):
    torch.manual_seed(0)
    a = torch.randn(3, 3, dtype=torch.float64)
    a = a @ a.T + torch.eye(3, dtype=torch.float64)
    x0 = {"w": torch.randn(5, 3, dtype=torch.float64), "v": torch.randn(5, 3, dtype=torch.float64)}
    schedule = CyclicalCosine(0.05, num_steps=10, num_cycles=2)

    def grad_fn(p, gen):
        return {"w": torch.sin(p["w"]) @ a, "v": p["v"] ** 3}, p["w"].sum(-1)

    sampler = SGD(schedule, **kwargs)
    state = sampler.init({k: v.clone() for k, v in x0.items()})
    w = x0["w"].clone().requires_grad_(True)
    v = x0["v"].clone().requires_grad_(True)
    opt = torch.optim.SGD([w, v], lr=schedule(0), foreach=False, **kwargs)
    for k in range(25):
        state, info = sampler.step(state, grad_fn, None)
        for group in opt.param_groups:
            group["lr"] = schedule(k)
        w.grad, v.grad = torch.sin(w.detach()) @ a, v.detach() ** 3
        opt.step()
        assert info["lr"] == schedule(k)
    assert torch.equal(state.params["w"], w.detach())
    assert torch.equal(state.params["v"], v.detach())


def test_noise_statistics_are_unbiased():
    a, b, c = quadratic_problem()
    batch = 5
    sampler = SGD(0.1, noise_stats=True)
    state = sampler.init(torch.full((20000, 3), 0.5, dtype=torch.float64))
    _, info = sampler.step(state, batch_grad_fn(a, b, batch), torch.Generator().manual_seed(0))
    noise = info["grad_noise"]
    expected = torch.trace(c).item() / batch
    assert abs(noise.mean().item() - expected) < 3 * noise.std().item() / noise.numel() ** 0.5
    grad = state.params[0] @ a
    sq = info["grad_sq"]
    assert (
        abs(sq.mean().item() - grad.pow(2).sum().item()) < 3 * sq.std().item() / sq.numel() ** 0.5
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": 0.1, "momentum": 1.0}, "momentum"),
        ({"lr": 0.1, "momentum": -0.1}, "momentum"),
        ({"lr": 0.1, "weight_decay": -1.0}, "weight_decay"),
        ({"lr": 0.1, "nesterov": True}, "nesterov"),
    ],
)
def test_sgd_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SGD(**kwargs)
