"""Anomalous diffusion of SGD past convergence (Kunin et al. 2021; docs/theory.md §2.6).

Part 1, a quadratic with a power-law Hessian spectrum ``a_i ∝ i^-p`` and gradient noise ``C ∝ A``:
the stationary mean squared displacement ``MSD(tau) = 2 tr S - 2 tr[(M_z^tau P)_{theta theta}]``
(``momentum.msd_curve``) grows as a power of tau at intermediate lags; SGD chains with momentum
(``bayesdepth.inference.SGD``) reproduce the curve. Part 2, a small MLP on the 1-D regression of
the SDE-BNN paper, trained with ``torch.optim.SGD`` (momentum, weight decay) long past
convergence: the MSD of its parameter vector, with the fitted exponent. Writes
``msd_quadratic.png`` and ``msd_mlp.png``.

Run: ``python examples/anomalous_diffusion.py [--quick] [--out runs/anomalous_diffusion]``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")  # a script: files only, no window
import numpy as np
import torch
from bayesdepth.inference import SGD, SGDProblem, momentum
from bayesdepth.inference.plots import plot_msd
from bayesdepth.inference.samplers import SGDState
from bayesdepth.inference.statistics import diffusion_exponent, empirical_msd

from bayesdepth.data import toy_regression_1d

F64 = torch.float64


def part1(out: Path, quick: bool) -> None:
    d, power, lr, beta = (100, 2.0, 0.2, 0.9) if quick else (400, 2.0, 0.2, 0.9)
    a = torch.arange(1, d + 1, dtype=F64) ** -power
    lags = np.unique(np.logspace(0, 4 if quick else 5, 40).astype(int))
    problem = SGDProblem(torch.diag(a), torch.diag(a), lr=lr, momentum=beta)
    pred = momentum.msd_curve(problem, lags.tolist())
    window = (10, 1000)
    gamma = diffusion_exponent(lags, pred, window)
    print(f"quadratic d={d}, spectrum i^-{power}: closed-form MSD exponent on lags {window}: "
          f"{gamma:.3f}")
    # SGD chains on the same problem (C = A): per-example gradients a_i theta_i - sqrt(a_i) z_i
    chains, steps = (4, 3000) if quick else (8, 40_000)
    gen = torch.Generator().manual_seed(0)

    def grad_fn(params, generator):
        z = torch.randn(params.shape, generator=generator, dtype=F64)
        return params * a - a.sqrt() * z, params.sum(-1)

    # the slowest modes relax over ~1e5 steps: start the chains in the exact stationary law of
    # (theta, momentum buffer) instead of burning in
    p = momentum.phase_space_covariance(problem)
    z = torch.randn(chains, 2 * d, generator=gen, dtype=F64) @ torch.linalg.cholesky(p).T
    sampler = SGD(lr, momentum=beta)
    state = SGDState(params=z[:, :d].clone(), step=1, momentum_buffer=z[:, d:].clone())
    draws = torch.empty(chains, steps, d, dtype=F64)
    for k in range(steps):
        state, _ = sampler.step(state, grad_fn, gen)
        draws[:, k] = state.params
    short = lags[lags < steps // 4]
    emp = empirical_msd(draws, short.tolist())
    path = plot_msd(short, emp, out / "msd_quadratic.png", predicted=pred[: len(short)],
                    window=window, title=f"SGD momentum {beta} on a power-law quadratic")
    print(f"SGD chains: fitted exponent {diffusion_exponent(short, emp, window):.3f}; "
          f"wrote {path}")


def part2(out: Path, quick: bool) -> None:
    data = toy_regression_1d(dtype=F64)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    net = net.to(F64)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(1)
    train, record = (1500, 2000) if quick else (10_000, 40_000)
    path = []
    for k in range(train + record):
        idx = torch.randint(data.x.shape[0], (8,), generator=gen)
        loss = ((net(data.x[idx]).squeeze(-1) - data.y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if k >= train:
            path.append(torch.nn.utils.parameters_to_vector(net.parameters()).detach().clone())
    draws = torch.stack(path)[None]
    lags = np.unique(np.logspace(0, np.log10(record // 4), 30).astype(int))
    msd = empirical_msd(draws, lags.tolist())
    gamma = diffusion_exponent(lags, msd, (10, record // 4))
    with torch.no_grad():
        full = ((net(data.x).squeeze(-1) - data.y) ** 2).mean()
    print(f"MLP past convergence (train MSE {float(full):.4f}): MSD exponent {gamma:.3f} "
          "(1 = Brownian; < 1 sub-diffusive, > 1 super-diffusive)")
    p = plot_msd(lags, msd, out / "msd_mlp.png", window=(10, record // 4),
                 title="MLP weights, SGD lr 0.01, B 8, momentum 0.9")
    print(f"wrote {p}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run (< 30 s)")
    parser.add_argument("--out", default="runs/anomalous_diffusion", help="output folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    part1(out, args.quick)
    part2(out, args.quick)


if __name__ == "__main__":
    main()
