"""Anomalous diffusion of SGD past convergence: measured, and predicted from the spectra.

Kunin et al. 2021; docs/theory.md §2.6 and §14.6. Part 1, a quadratic with a power-law Hessian
spectrum ``a_i = i^-p`` and gradient noise ``C = A`` (q = 1): the stationary mean squared
displacement ``MSD(tau) = 2 tr S - 2 tr[(M_z^tau P)_{theta theta}]`` (``momentum.msd_curve``)
grows as ``tau^gamma`` at intermediate lags with ``gamma = 1 + 1/p - q``
(``anomalous.predicted_msd_exponent``); SGD chains with momentum (``bayesdepth.inference.SGD``)
reproduce the curve. Part 2, a small MLP on the 1-D regression of the SDE-BNN paper, trained with
``torch.optim.SGD`` (momentum, weight decay) long past convergence: the MSD of its parameter
vector, and the prediction from its measured Hessian and gradient-noise spectra
(``anomalous.fit_power_law_spectrum``). Writes
``msd_quadratic.png``, ``msd_mlp.png`` and ``mlp_spectrum.png``.

Run: ``python examples/anomalous_diffusion.py [--quick] [--out runs/anomalous_diffusion]``.
"""

from __future__ import annotations

import _common
import matplotlib.pyplot as plt
import numpy as np
import torch
from bayesdepth.inference import SGD, anomalous, momentum, noise
from bayesdepth.inference.plots import plot_msd
from bayesdepth.inference.samplers import SGDState
from bayesdepth.inference.statistics import diffusion_exponent, empirical_msd

from bayesdepth.data import toy_regression_1d

F64 = torch.float64
WINDOW = (10, 1000)


def part1(args) -> None:
    d, power, lr, beta = (100, 2.0, 0.2, 0.9) if args.quick else (400, 2.0, 0.2, 0.9)
    problem = anomalous.power_law_problem(d, power, 1.0, lr=lr, momentum=beta)
    a = torch.diagonal(problem.hessian)
    lags = np.unique(np.logspace(0, 4 if args.quick else 5, 40).astype(int))
    pred = momentum.msd_curve(problem, lags.tolist())
    gamma = diffusion_exponent(lags, pred, WINDOW)
    # momentum: every mode with lr a > (1 - sqrt(beta))^2 is underdamped and decays in about
    # 2 / (1 - beta) steps, so the power law starts after a few tens of steps
    fastest = float(anomalous.relaxation_time(a.max(), lr, beta))
    late = (30, 3000)
    print(f"quadratic d={d}, spectrum i^-{power}, C = A: closed-form MSD exponent on lags "
          f"{WINDOW}: {gamma:.3f}, on lags {late} (past the fastest relaxation time "
          f"{fastest:.0f} steps): {diffusion_exponent(lags, pred, late):.3f}; predicted "
          f"1 + 1/p - q = {anomalous.predicted_msd_exponent(power, 1.0):.3f}")
    # SGD chains on the same problem (C = A): per-example gradients a_i theta_i - sqrt(a_i) z_i
    chains, steps = (4, 3000) if args.quick else (8, 40_000)
    gen = torch.Generator().manual_seed(args.seed)

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
    path = plot_msd(short, emp, args.out / "msd_quadratic.png", predicted=pred[: len(short)],
                    window=WINDOW, title=f"SGD momentum {beta} on a power-law quadratic")
    print(f"SGD chains: fitted exponent {diffusion_exponent(short, emp, WINDOW):.3f} on lags "
          f"{WINDOW}, {diffusion_exponent(short, emp, late):.3f} on {late}; wrote {path}")


def flat_loss(net: torch.nn.Module, weight_decay: float):
    """Per-example and full-batch losses of ``net`` as functions of its flattened parameters."""
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    sizes = [p.numel() for p in net.parameters()]

    def unflatten(v):
        return {n: t.reshape(s) for n, t, s in zip(names, v.split(sizes), shapes)}

    def example(v, x, y):
        return (torch.func.functional_call(net, unflatten(v), (x[None],)).squeeze() - y) ** 2

    def full(v, x, y):
        fit = torch.func.functional_call(net, unflatten(v), (x,)).squeeze(-1) - y
        return fit.pow(2).mean() + 0.5 * weight_decay * v.pow(2).sum()

    return example, full


def spectra(net, data, weight_decay, args):
    """Hessian of the regularised mean loss and per-example gradient covariance at the end."""
    example, full = flat_loss(net, weight_decay)
    theta = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    hessian = torch.func.jacrev(torch.func.jacrev(full))(theta, data.x, data.y)
    grads = noise.per_example_grads(example, theta, data.x, data.y)
    cov = noise.gradient_noise_covariance(grads)
    fit = anomalous.fit_power_law_spectrum(hessian, cov, ranks=(1, 20))
    negative = int((torch.linalg.eigvalsh(hessian) <= 0).sum())
    print(f"MLP spectra at the end ({theta.numel()} parameters, {negative} with curvature <= 0): "
          f"top eigenvalues {[round(float(v), 3) for v in fit.eigenvalues[:5]]}; "
          f"fit over ranks 1-20: p = {fit.p:.2f}, q = {fit.q:.2f}")
    try:
        print(f"predicted MSD exponent {fit.msd_exponent():.3f} over lags "
              f"{fit.lag_window(0.01, 0.9)}")
    except ValueError as err:
        print(f"predicted MSD exponent: none. {err}")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ranks = np.arange(1, fit.eigenvalues.numel() + 1)
    ax1.loglog(ranks, fit.eigenvalues, "o", ms=3)
    ax1.set_xlabel("rank i")
    ax1.set_ylabel("Hessian eigenvalue a_i (> 0)")
    ax1.set_title(f"fit on ranks 1-20: p = {fit.p:.2f}")
    keep = fit.noise > 0
    ax2.loglog(fit.eigenvalues[keep], fit.noise[keep], "o", ms=3)
    ax2.set_xlabel("a_i")
    ax2.set_ylabel("noise variance u_i^T C u_i")
    ax2.set_title(f"q = {fit.q:.2f}")
    _common.save(fig, args, "mlp_spectrum.png")


def part2(args) -> None:
    data = toy_regression_1d(dtype=F64)
    torch.manual_seed(args.seed)
    net = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    net = net.to(F64)
    weight_decay = 1e-4
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(args.seed + 1)
    train, record = (1500, 2000) if args.quick else (10_000, 40_000)
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
    with torch.no_grad():
        full = ((net(data.x).squeeze(-1) - data.y) ** 2).mean()
    windows = [(10, 300), (100, record // 4), (10, record // 4)]
    fitted = ", ".join(f"{w}: {diffusion_exponent(lags, msd, w):.3f}" for w in windows)
    print(f"MLP past convergence (train MSE {float(full):.4f}): MSD exponents over lag windows "
          f"{fitted} (1 = Brownian; < 1 sub-diffusive, > 1 super-diffusive)")
    spectra(net, data, weight_decay, args)
    p = plot_msd(lags, msd, args.out / "msd_mlp.png", window=(10, record // 4),
                 title="MLP weights, SGD lr 0.01, B 8, momentum 0.9")
    print(f"wrote {p}")


def main(argv: list[str] | None = None) -> None:
    parser = _common.example_parser(__doc__, "anomalous_diffusion")
    args = parser.parse_args(argv)
    _common.start(args)
    part1(args)
    part2(args)


if __name__ == "__main__":
    main()
