"""Adam as a sampler: torch.optim.Adam parity and the per-step bound under Cauchy noise (§13.4)."""

import math

import pytest
import torch
from bayesdepth.inference import SGD, Adam, CyclicalCosine, sample
from bayesdepth.inference.sgd_potentials import StableNoisePotential

F64 = torch.float64


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"betas": (0.8, 0.99), "eps": 1e-3},
        {"weight_decay": 0.1},
        {"weight_decay": 0.05, "amsgrad": True},
        {"weight_decay": 0.2, "decoupled_weight_decay": True},
    ],
)
@pytest.mark.parametrize("foreach", [False, True])  # torch's single- and multi-tensor paths
def test_adam_is_bitwise_torch_optim_adam(kwargs, foreach):
    torch.manual_seed(0)
    a = torch.randn(3, 3, dtype=F64)
    x0 = {"w": torch.randn(5, 3, dtype=F64), "v": torch.randn(5, 2, dtype=F64)}
    schedule = CyclicalCosine(0.05, num_steps=20, num_cycles=2)

    def grad_fn(p, gen):
        return {"w": torch.sin(p["w"]) @ a, "v": p["v"] ** 3 - 1}, p["w"].sum(-1)

    sampler = Adam(schedule, **kwargs)
    state = sampler.init({k: v.clone() for k, v in x0.items()})
    w = x0["w"].clone().requires_grad_(True)
    v = x0["v"].clone().requires_grad_(True)
    opt = torch.optim.Adam([w, v], lr=schedule(0), foreach=foreach, **kwargs)
    for k in range(40):
        state, info = sampler.step(state, grad_fn, None)
        for group in opt.param_groups:
            group["lr"] = schedule(k)
        w.grad, v.grad = torch.sin(w.detach()) @ a, v.detach() ** 3 - 1
        opt.step()
        assert info["lr"] == schedule(k)
        assert torch.equal(state.params["w"], w.detach()) and torch.equal(state.params["v"],
                                                                           v.detach()), k
    assert state.step == 40
    assert torch.equal(state.exp_avg_sq["w"], opt.state[w]["exp_avg_sq"])


def test_adamw_matches_torch_adamw_and_bad_arguments():
    torch.manual_seed(1)
    x = torch.randn(4, 6, dtype=F64)
    sampler = Adam(0.01, weight_decay=0.3, decoupled_weight_decay=True)
    state = sampler.init(x.clone())
    p = x.clone().requires_grad_(True)
    opt = torch.optim.AdamW([p], lr=0.01, weight_decay=0.3, foreach=False)
    for _ in range(40):
        state, _ = sampler.step(state, lambda q, g: (torch.cos(q) * 3, q.sum(-1)), None)
        p.grad = torch.cos(p.detach()) * 3
        opt.step()
    assert torch.equal(state.params, p.detach())
    with pytest.raises(ValueError, match=r"betas\[1\] must lie in \[0, 1\), got 1.0"):
        Adam(0.1, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="betas must be a pair"):
        Adam(0.1, betas=(0.9,))
    with pytest.raises(ValueError, match=r"eps must be a finite number > 0, got 0"):
        Adam(0.1, eps=0)
    with pytest.raises(ValueError, match=r"beta_1 < sqrt\(beta_2\)"):
        Adam(0.1, betas=(0.9, 0.5)).step_bound(3)


def test_step_bound_values():
    adam = Adam(1.0)
    # large t: (1 - b1) / (sqrt(1 - b2) (1 - b1 / sqrt(b2))) = 31.8 at the default betas
    assert adam.step_bound(10**6) == pytest.approx(31.77, abs=0.01)
    assert adam.step_bound(1) == pytest.approx(0.1 * math.sqrt(1e-3) / (0.1 * math.sqrt(1e-3)
                                                                       * (1 - 0.9 / 0.999**0.5)))
    # a single huge gradient after t - 1 zero gradients moves a coordinate by exactly
    # eta (1 - b1) b1^0 / (1 - b1^t) * sqrt(1 - b2^t) / sqrt(1 - b2): below the bound
    t = 30
    state = adam.init(torch.zeros(1, 1, dtype=F64))
    for k in range(t):
        g = torch.full((1, 1), 1e12 if k == t - 1 else 0.0, dtype=F64)
        new, _ = adam.step(state, lambda p, gen, g=g: (g, p.sum(-1)), None)
        jump = float((new.params - state.params).abs())
        state = new
    exact = 0.1 / (1 - 0.9**t) * math.sqrt(1 - 0.999**t) / math.sqrt(1e-3)
    assert jump == pytest.approx(exact, rel=1e-9)
    assert jump < adam.step_bound(t)


def test_adam_steps_are_bounded_under_cauchy_noise_while_sgd_jumps():
    # U = |theta|^2 / 2 with Cauchy gradient noise (alpha = 1): SGD's step is lr * Cauchy, so
    # its largest jump over 4e5 draws is ~1e6 lr; Adam's is below 31.8 lr at every step (2.5 lr)
    chains, steps, lr = 200, 1000, 1e-3
    potential = StableNoisePotential(lambda x: 0.5 * (x * x).sum(-1), dim=2, alpha=1.0)
    adam = Adam(lr)
    runs = {}
    for name, sampler in (("adam", adam), ("sgd", SGD(lr))):
        run = sample(potential, sampler, num_chains=chains, num_draws=steps, seed=3)
        theta = torch.cat([torch.zeros(chains, 1, 2, dtype=F64), run.draws["theta"]], 1)
        runs[name] = (theta[:, 1:] - theta[:, :-1]).abs().amax((0, 2))  # max jump per step
    bound = torch.tensor([adam.step_bound(t) for t in range(1, steps + 1)], dtype=F64)
    assert bool((runs["adam"] <= bound * (1 + 1e-12)).all())
    assert float(bound.max()) < 31.8 * lr  # sqrt(1 - b2^t) < 1: the bound grows to 31.8 lr
    assert float(runs["sgd"].max()) > 1e4 * float(runs["adam"].max())  # measured: 1.6e6
