"""SGLD on a Pyro Bayesian linear regression, against the exact conjugate posterior.

Model: w ~ N(0, s0^2 I), y_n ~ N(x_n^T w, s^2), with the data plate subsampled (minibatches scale
the likelihood by N/B). K SGLD chains run as one batched computation; the script prints the SGLD
posterior mean and sd next to the exact ones, the ArviZ summary (R-hat, ESS), and writes

- ``posterior.nc`` (ArviZ netCDF), ``summary.csv``;
- ``trace.png``, ``rank.png``, ``forest.png``, ``pair.png`` (ArviZ);
- ``marginals.png``: SGLD histograms against the exact Gaussian marginals.

Run: ``python examples/sgld_regression.py [--quick] [--out runs/sgld_regression]``.
"""

from __future__ import annotations

import math

import _common
import matplotlib.pyplot as plt
import pyro
import pyro.distributions as dist
import torch
from bayesdepth.inference import SGLD, pyro_potential, sample
from bayesdepth.inference import diagnostics as dg

from bayesdepth.data import linear_regression
from bayesdepth.plotting import save_figure


def make_model(prior_scale: float, noise_scale: float, batch_size: int | None):
    def model(x, y):
        w = pyro.sample(
            "w", dist.Normal(torch.zeros(x.shape[1], dtype=x.dtype), prior_scale).to_event(1)
        )
        with pyro.plate("data", x.shape[0], subsample_size=batch_size) as idx:
            pyro.sample("obs", dist.Normal(x[idx] @ w, noise_scale), obs=y[idx])

    return model


def main(argv: list[str] | None = None) -> None:
    parser = _common.example_parser(__doc__, "sgld_regression")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--lr", type=float, default=1e-4, help="SGLD step size epsilon")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.draws, args.warmup = 200, 100
    out = _common.start(args)

    data = linear_regression(num_points=200, dim=3, seed=args.seed)
    model = make_model(data.prior_scale, data.noise_scale, args.batch_size)
    potential = pyro_potential(model, data.x, data.y, init_radius=0.5)
    chains = sample(
        potential,
        SGLD(args.lr),
        num_chains=args.chains,
        num_draws=args.draws,
        warmup=args.warmup,
        seed=args.seed,
        progress=args.progress,
    )
    draws = chains.draws["w"].reshape(-1, 3)
    exact_sd = data.posterior_cov.diagonal().sqrt()
    print(f"{'':6}{'SGLD mean':>11}{'exact mean':>12}{'SGLD sd':>10}{'exact sd':>10}")
    for i in range(3):
        print(
            f"w[{i}]  {draws[:, i].mean():>11.4f}{data.posterior_mean[i]:>12.4f}"
            f"{draws[:, i].std():>10.4f}{exact_sd[i]:>10.4f}"
        )

    idata = chains.to_arviz()
    table = dg.summary(idata, var_names=["w"])
    print(table)
    table.to_csv(out / "summary.csv")
    written = [dg.save_netcdf(idata, out / "posterior.nc")]
    written += [
        dg.plot_trace(idata, out / "trace.png", var_names=["w"]),
        dg.plot_rank(idata, out / "rank.png", var_names=["w"]),
        dg.plot_forest(idata, out / "forest.png", var_names=["w"]),
        dg.plot_pair(idata, out / "pair.png", var_names=["w"]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3))
    for i, ax in enumerate(axes):
        ax.hist(draws[:, i].numpy(), bins=40, density=True, alpha=0.6, label="SGLD")
        m, s = data.posterior_mean[i].item(), exact_sd[i].item()
        grid = torch.linspace(m - 4 * s, m + 4 * s, 200)
        pdf = torch.exp(-0.5 * ((grid - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
        ax.plot(grid.numpy(), pdf.numpy(), "k-", label="exact")
        ax.set_title(f"w[{i}]")
    axes[0].legend()
    written.append(save_figure(fig, out / "marginals.png"))
    print("wrote", ", ".join(str(p) for p in [*written, out / "summary.csv"]))


if __name__ == "__main__":
    main()
