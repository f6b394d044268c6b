"""Constant-rate SGD as an approximate posterior sampler (Mandt, Hoffman, Blei 2017; Kunin 2021).

On Bayesian linear regression (``bayesdepth.data.linear_regression``) K SGD chains, plain and with
momentum (``torch.optim.SGD``'s update), are run at a constant learning rate. Their stationary
covariance is compared with the exact prediction (``regression.linear_regression_moments``: the
discrete Lyapunov law including the multiplicative part of the noise; docs/theory.md §1.6) and
with the posterior.
The script prints the ArviZ summary of the SGD draws and Mandt's KL-optimal learning rate
``eps* = 2 B D / (N tr C)`` together with the KL of the predicted law to the posterior on a grid
of rates, and writes

- ``sgd_covariance.png``, ``momentum_covariance.png``: 2-sd ellipses of SGD, prediction and
  posterior;
- ``kl_vs_lr.png``: KL(stationary || posterior) against the learning rate, eps* marked;
- ``summary.csv``: ArviZ summary of the plain-SGD draws.

Run: ``python examples/sgd_as_sampler.py [--quick] [--out runs/sgd_as_sampler]``.
"""

from __future__ import annotations

import _common
import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import torch
from bayesdepth.inference import SGDProblem, langevin, sgd_vs_prediction
from bayesdepth.inference.plots import plot_covariance_ellipses
from bayesdepth.inference.regression import linear_regression_moments
from bayesdepth.inference.statistics import relative_frobenius_error

from bayesdepth.data import linear_regression
from bayesdepth.plotting import save_figure


def main(argv: list[str] | None = None) -> None:
    parser = _common.example_parser(__doc__, "sgd_as_sampler")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--momentum", type=float, default=0.9)
    args = parser.parse_args(argv)
    out = _common.start(args)
    chains, draws = (16, 300) if args.quick else (64, 3000)

    data = linear_regression()
    plain = sgd_vs_prediction(data, lr=args.lr, batch_size=args.batch_size, num_chains=chains,
                              num_draws=draws, seed=args.seed)
    fig = plot_covariance_ellipses(
        plain.draws, plain.predicted, out / "sgd_covariance.png", mean=plain.mean,
        others={"posterior": plain.posterior},
        title=f"SGD lr={args.lr}, B={args.batch_size}",
    )
    # momentum: same temperature eta/(B(1-beta)) as plain SGD -> lr (1 - beta)
    lr_m = args.lr * (1 - args.momentum)
    mom = sgd_vs_prediction(data, lr=lr_m, batch_size=args.batch_size, momentum=args.momentum,
                            num_chains=chains, num_draws=draws, seed=args.seed + 1)
    fig_m = plot_covariance_ellipses(
        mom.draws, mom.predicted, out / "momentum_covariance.png", mean=mom.mean,
        others={"posterior": mom.posterior},
        title=f"SGD momentum={args.momentum}, lr={lr_m:.3g}",
    )
    for name, r in (("plain", plain), ("momentum", mom)):
        z = ((r.empirical - r.predicted) / r.standard_error).abs().max()
        print(f"{name:9s} rel. Frobenius error vs prediction {r.relative_error:.3f} "
              f"(max |z| {float(z):.1f}); KL(prediction || posterior) {r.kl_to_laplace:.3f}")

    # A and C at the optimum (the posterior mean) of the mean loss
    problem = SGDProblem.from_linear_regression(data, lr=args.lr, batch_size=args.batch_size)
    additive = linear_regression_moments(data, problem).additive
    print(f"ignoring the multiplicative noise (Lyapunov law with C at the optimum) misses the "
          f"SGD covariance by {relative_frobenius_error(plain.empirical, additive):.3f} "
          f"(relative Frobenius error)")
    idata = az.from_dict(posterior={"w": plain.draws.numpy()})
    summary = az.summary(idata)
    summary.to_csv(out / "summary.csv")
    print(summary)

    # Mandt's optimal constant rate, with C at the optimum
    eps_star = langevin.mandt_optimal_lr(problem)
    lam_max = float(torch.linalg.eigvalsh(problem.hessian)[-1])
    grid = eps_star * np.logspace(-1, np.log10(min(10.0, 1.9 / (lam_max * eps_star))), 25)
    kl_cont = [langevin.kl_to_laplace(langevin.stationary_covariance(
        problem.replace(lr=float(e)), discrete=False), problem) for e in grid]

    def kl_exact_at(e: float) -> float:
        try:
            s = linear_regression_moments(data, problem.replace(lr=e)).covariance
        except ValueError:  # mean-square unstable: no stationary second moment
            return float("nan")
        return langevin.kl_to_laplace(s, problem)

    kl_exact = [kl_exact_at(float(e)) for e in grid]
    best = grid[int(np.nanargmin(kl_exact))]
    print(f"Mandt's KL-optimal rate eps* = 2BD/(N tr C) = {eps_star:.4g}; "
          f"the exact discrete law's best rate on this grid = {best:.4g}")
    fig2, ax = plt.subplots(figsize=(5, 4))
    ax.loglog(grid, kl_cont, label="continuous law (Mandt)")
    ax.loglog(grid, kl_exact, "--", label="exact discrete law")
    ax.axvline(eps_star, color="k", ls=":", label="eps*")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("KL(stationary || posterior)")
    ax.legend(fontsize=8)
    fig3 = save_figure(fig2, out / "kl_vs_lr.png")
    print(f"wrote {fig}, {fig_m}, {fig3}, {out / 'summary.csv'}")


if __name__ == "__main__":
    main()
