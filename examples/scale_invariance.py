"""Scale-invariant nets with weight decay: the norm equilibrium and where the scaling rule fails.

Li, Malladi, Arora (NeurIPS 2021), section 5 (docs/theory.md §14.1-§14.4). On a normalised linear
regression (``f = x . theta / |theta|``, d = 10, n = 64) SGD with weight decay obeys
``|x_(k+1)|^2 = (1 - eta lambda)^2 |x_k|^2 + eta^2 |g_k|^2`` on every step (checked, also on a small
network with a layer normalisation), and its equilibrium
``(2 - eta lambda) lambda E|x|^2 = eta (G + N)``: the script plots the ratio ``R_k`` of the two
sides along a run started far from it. From ``G`` and ``N`` measured at one small batch
(B = 2, eta = 0.5, lambda = 0.01; ``SGD(noise_stats=True)``) it gives the certificate
``kappa* = C^2 (1 + N / G)`` (C^2 = 2), runs the linear scaling rule ``(kappa eta, kappa B)`` for
kappa = 1 ... 32 and plots the measured ratio of equilibrium norms against the first-order
prediction. Writes ``norm_equilibrium.png`` and ``lsr_ratios.png``.

Run: ``python examples/scale_invariance.py [--quick] [--out runs/scale_invariance]``.
"""

from __future__ import annotations

import math

import _common
import matplotlib.pyplot as plt
import torch
from bayesdepth.inference import SGD, sample
from bayesdepth.inference import normalised_models as nm
from bayesdepth.inference import scale_invariance as si

LR, DECAY, BATCH = 0.5, 0.01, 2
KAPPAS = [1, 2, 4, 8, 16, 32]


def regression(batch_size: int) -> nm.ScaleInvariantRegression:
    data = nm.teacher_data(nm.normalised_linear, 10, num_points=64, in_features=10,
                           noise_scale=1.3, seed=0)
    return nm.ScaleInvariantRegression(nm.normalised_linear, data.x, data.y, 10, batch_size)


def identity_check(seed: int) -> None:
    mlp = nm.NormalisedMLP(in_features=5, width=8, seed=seed)
    data = nm.teacher_data(mlp, mlp.num_params, num_points=48, in_features=5, noise_scale=0.3,
                           seed=seed)
    for name, pot in [("normalised linear", regression(BATCH)),
                      ("layer-normalised MLP", nm.ScaleInvariantRegression(
                          mlp, data.x, data.y, mlp.num_params, 4))]:
        sgd = SGD(LR, weight_decay=0.05)
        run = sample(pot, sgd, num_chains=8, num_draws=500, seed=seed)
        worst = float(si.norm_identity_residual(sgd, run).max())
        print(f"norm identity on {name}: largest relative residual over 8 x 499 steps "
              f"{worst:.1e}")


def equilibrium_figure(args, chains: int, draws: int) -> None:
    sgd = SGD(LR, weight_decay=DECAY, noise_stats=True)
    pot = regression(BATCH)
    init = 5 * pot.init(chains, torch.Generator().manual_seed(args.seed))
    run = sample(pot, sgd, num_chains=chains, num_draws=draws, init=init, seed=args.seed)
    window = max(draws // 50, 1)
    ratio = si.equilibrium_ratio(sgd, run, window=window)
    norm = run.draws["theta"].pow(2).sum(-1).mean(0)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.semilogy(norm)
    ax1.set_xlabel("step k")
    ax1.set_ylabel("mean |x_k|^2 over chains")
    ax1.set_title(f"SGD on a normalised regression, lr {LR}, wd {DECAY}, B {BATCH}")
    steps = torch.arange(ratio.numel()) + window
    ax2.semilogy(steps, ratio)
    ax2.axhline(1.0, color="k", lw=0.8)
    ax2.set_xlabel("step k")
    ax2.set_ylabel("R_k = (2 - lr wd) wd E|x|^2 / (lr E(G + N))")
    ax2.set_title(f"equilibrium ratio (windows of {window} steps)")
    tail = run.draws["theta"].shape[1] // 2
    late = type(run)(draws={"theta": run.draws["theta"][:, tail:]},
                     stats={k: v[:, tail:] for k, v in run.stats.items()})
    eq = si.norm_equilibrium(sgd, late)
    print(f"equilibrium over the second half: (2 - lr wd) wd E|x|^2 = {eq.lhs:.5f} +- "
          f"{eq.lhs_se:.5f}, lr (G + N) = {eq.rhs:.5f} +- {eq.rhs_se:.5f} (z = {eq.z:.2f})")
    _common.save(fig, args, "norm_equilibrium.png")


def lsr_figure(args, chains: int, draws: int, warmup: int) -> None:
    runs = si.lsr_runs(regression, lr=LR, weight_decay=DECAY, batch_size=BATCH, kappas=KAPPAS,
                       num_chains=chains, num_draws=draws, warmup=warmup, seed=args.seed)
    cert = si.lsr_certificate(runs[1], tolerance=math.sqrt(2))
    print(f"B = {BATCH}, lr = {LR}, wd = {DECAY}: N / G = {cert.noise_over_signal:.1f} +- "
          f"{cert.noise_over_signal_se:.1f}, so kappa* = C^2 (1 + N / G) = {cert.kappa_max:.0f} "
          f"+- {cert.kappa_max_se:.0f} at C^2 = 2")
    measured, errors, predicted = [], [], []
    for kappa in KAPPAS:
        r, se = si.norm_ratio(runs[kappa], runs[1])
        p = si.predicted_norm_ratio(cert.noise_over_signal, kappa, LR, DECAY)
        measured.append(r)
        errors.append(se)
        predicted.append(p)
        print(f"kappa = {kappa:2d}: E|x|^2 ratio (kappa = 1 over kappa) {r:.3f} +- {se:.3f}, "
              f"first-order prediction {p:.3f}")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.errorbar(KAPPAS, measured, yerr=errors, fmt="o-", capsize=3, label="measured")
    ax.plot(KAPPAS, predicted, "k--", label="prediction from N/G at B = 2")
    ax.axhline(1 / math.sqrt(2), color="grey", lw=0.8, ls=":", label="1 / C (C^2 = 2)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("kappa: (lr, B) -> (kappa lr, kappa B)")
    ax.set_ylabel("equilibrium E|x|^2 at kappa = 1 / at kappa")
    ax.set_title(f"linear scaling rule; certificate kappa* = {cert.kappa_max:.0f}")
    ax.legend(fontsize=8)
    _common.save(fig, args, "lsr_ratios.png")


def main(argv: list[str] | None = None) -> None:
    parser = _common.example_parser(__doc__, "scale_invariance")
    args = parser.parse_args(argv)
    _common.start(args)
    identity_check(args.seed)
    if args.quick:
        equilibrium_figure(args, chains=16, draws=1500)
        lsr_figure(args, chains=16, draws=1000, warmup=1000)
    else:
        equilibrium_figure(args, chains=64, draws=4000)
        lsr_figure(args, chains=64, draws=8000, warmup=4000)


if __name__ == "__main__":
    main()
