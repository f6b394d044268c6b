"""High-dimensional limits of online SGD and the critical step size (Ben Arous et al. 2022).

With step ``delta = c / N`` the summary statistics of online SGD follow an ODE in time ``t = k / N``
whose drift carries the correction ``(delta^2 / 2) E<grad^2 u, g g^T>`` (docs/theory.md §14.5).

Part 1, online linear regression (N = 500, sigma^2 = 0.25): ``R = |x - x*|^2`` from simulation,
the exact recursion, the limit ODE and gradient flow (which drops the correction) at c = 1 and 1.9,
and the fixed point ``c sigma^2 / (2 - c)`` that diverges at c = 2. Part 2, the spiked-covariance
Oja rule (N = 400, lambda = 1): the phase diagram over c of ``<m^2>`` at stationarity: ballistic
recovery to ``m*^2 = (2 lambda - c) / (lambda (2 + c))`` for ``c < 2 lambda``, diffusive
``O(1/N)`` fluctuations around 0 beyond (simulation, limit, and the SDE near the fixed point by
torchsde). Writes ``online_regression.png`` and ``oja_phase_diagram.png``.

Run: ``python examples/high_dim_limits.py [--quick] [--out runs/high_dim_limits]``.
"""

from __future__ import annotations

import math

import _common
import matplotlib.pyplot as plt
import torch
from bayesdepth.inference.online_sgd import OnlineRegression, SpikedCovariance

F64 = torch.float64


def regression(args, runs: int) -> None:
    n, s2, t_end = 500, 0.25, 2.0
    reg = OnlineRegression(n, s2)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ts = torch.linspace(0, t_end, 41, dtype=F64)
    for i, c in enumerate((1.0, 1.9)):
        steps = int(t_end * n)
        sim = reg.simulate(c, 1.0, steps, num_runs=runs, seed=args.seed + i, record_every=n // 20)
        exact = reg.exact_risk(c, 1.0, steps)
        limit = reg.limit(c).solve([1.0], ts)[:, 0]
        flow = reg.dynamics(c, correction=False).solve([1.0], ts)[:, 0]
        mean, se = float(sim[-1].mean()), float(sim[-1].std()) / math.sqrt(runs)
        print(f"c = {c}: R at t = 2: simulation {mean:.4f} +- {se:.4f} ({runs} runs), exact "
              f"{float(exact[-1]):.4f}, limit ODE {float(limit[-1]):.4f}, gradient flow "
              f"{float(flow[-1]):.4f}")
        t_sim = torch.arange(sim.shape[0]) * (n // 20) / n
        ax1.plot(t_sim, sim.mean(1), "o", ms=3, color=f"C{i}", label=f"simulation, c = {c}")
        ax1.plot(torch.arange(steps + 1) / n, exact, "-", color=f"C{i}", label="exact recursion")
        ax1.plot(ts, limit, "--", color=f"C{i}", label="limit ODE")
        ax1.plot(ts, flow, ":", color=f"C{i}", label="gradient flow")
    ax1.set_yscale("log")
    ax1.set_xlabel("t = k / N")
    ax1.set_ylabel("R = |x - x*|^2")
    ax1.set_title(f"online least squares, N = {n}, sigma^2 = {s2}")
    ax1.legend(fontsize=6, ncol=2)
    cs = torch.linspace(0.05, 1.95, 60)
    ax2.semilogy(cs, [reg.limit_fixed_point(float(c)) for c in cs], "-", label="R* = c s^2/(2-c)")
    ax2.axvline(2.0, color="k", lw=0.8, ls=":", label="c = 2: divergence")
    ax2.set_xlabel("c (step delta = c / N)")
    ax2.set_ylabel("fixed point R*")
    ax2.legend(fontsize=8)
    ax2.set_title("the critical step size")
    _common.save(fig, args, "online_regression.png")


def oja(args, runs: int, t_end: float, sim_cs: list[float], paths: int, every: int) -> None:
    n, lam = 400, 1.0
    problem = SpikedCovariance(n, lam)
    cs = torch.linspace(0.1, 3.0, 30).tolist()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(cs, [problem.limit_fixed_point(c) for c in cs], "k-", label="limit m*^2")
    sde_cs = cs[::every]
    sde = []
    for c in sde_cs:
        start = math.sqrt(problem.limit_fixed_point(c))
        u = problem.limit(c).sample([start], torch.linspace(0, t_end, 41), num_paths=paths,
                                    dt=0.05, seed=args.seed)
        sde.append(float((u[20:, :, 0] ** 2).mean()))
    ax.plot(sde_cs, sde, "s", mfc="none", label=f"SDE near the fixed point (torchsde, N = {n})")
    for c in sim_cs:
        m = problem.simulate(c, 0.9, int(t_end * n), num_runs=runs, seed=args.seed,
                             record_every=10)
        per = (m[m.shape[0] // 3:] ** 2).mean(0)
        mean, se = float(per.mean()), float(per.std()) / math.sqrt(runs)
        print(f"Oja, c = {c}: <m^2> = {mean:.4f} +- {se:.4f} (simulation, N = {n}), limit "
              f"{problem.limit_fixed_point(c):.4f}")
        ax.errorbar([c], [mean], yerr=[se], fmt="o", color="C3", capsize=3)
    ax.plot([], [], "o", color="C3", label="Oja rule, simulation")
    ax.axvline(2 * lam, color="grey", lw=0.8, ls=":")
    ax.text(0.5, 0.05, "ballistic: recovery", fontsize=9)
    ax.text(2.05, 0.3, "diffusive:\nno recovery", fontsize=9)
    ax.set_xlabel("c (step delta = c / N)")
    ax.set_ylabel("<m^2> at stationarity")
    ax.set_title(f"spiked covariance, lambda = {lam}: phase diagram over c")
    ax.legend(fontsize=8)
    _common.save(fig, args, "oja_phase_diagram.png")


def main(argv: list[str] | None = None) -> None:
    parser = _common.example_parser(__doc__, "high_dim_limits")
    args = parser.parse_args(argv)
    _common.start(args)
    if args.quick:
        regression(args, runs=20)
        oja(args, runs=8, t_end=8.0, sim_cs=[2.5], paths=64, every=6)
    else:
        regression(args, runs=1000)
        oja(args, runs=64, t_end=30.0, sim_cs=[0.2, 1.0, 1.5, 2.5], paths=256, every=3)


if __name__ == "__main__":
    main()
