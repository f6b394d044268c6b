"""SGLD chains for a two-layer Bayesian MLP on scikit-learn's digits.

K chains of SGLD (optionally with a cyclical cosine step size, Zhang et al. 2020) sample the
weights of a 64-64-10 tanh MLP with an isotropic Gaussian prior; all chains run as one
``torch.func.vmap`` computation. The script reports the test accuracy, NLL and expected calibration
error of the Bayesian model average (over chains and draws) against each chain alone and against the
last draw of chain 0, an R-hat/ESS table (ArviZ) for the output-layer bias and the potential, and
writes

- ``posterior.nc`` (ArviZ netCDF of the output layer and sample statistics), ``summary.csv``;
- ``trace.png`` and ``rank.png`` (output-layer bias), ``calibration.png`` (reliability diagram).

Run: ``python examples/sgld_bnn_digits.py [--quick] [--out runs/sgld_bnn_digits]``.
"""

from __future__ import annotations

import itertools

import _common
import matplotlib.pyplot as plt
import torch
from bayesdepth.inference import SGLD, CyclicalCosine, module_potential, sample
from bayesdepth.inference import diagnostics as dg

from bayesdepth.data import digits
from bayesdepth.metrics import accuracy, expected_calibration_error, nll


def log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.distributions.Categorical(logits=logits).log_prob(labels)


def predictive(net: torch.nn.Module, draws: dict[str, torch.Tensor], x: torch.Tensor):
    """Class probabilities per chain and draw: shape (chains, draws, n, classes)."""
    k, d = next(iter(draws.values())).shape[:2]
    flat = {name: v.reshape(k * d, *v.shape[2:]) for name, v in draws.items()}

    def forward(params):
        return torch.softmax(torch.func.functional_call(net, params, (x,)), dim=-1)

    with torch.no_grad():
        probs = torch.func.vmap(forward)(flat)
    return probs.reshape(k, d, *probs.shape[1:])


def main(argv: list[str] | None = None) -> None:
    parser = _common.example_parser(__doc__, "sgld_bnn_digits")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--thin", type=int, default=10)
    parser.add_argument("--lr", type=float, default=2e-4, help="SGLD step size epsilon")
    parser.add_argument("--cycles", type=int, default=0, help="cyclical schedule with M cycles")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--prior-scale", type=float, default=1.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.draws, args.warmup, args.thin = 20, 200, 5
    out = _common.start(args)
    torch.manual_seed(args.seed)

    data = digits()
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
    potential = module_potential(
        net, log_likelihood, data.x_train, data.y_train, args.prior_scale, args.batch_size
    )
    total = args.warmup + args.draws * args.thin
    lr = CyclicalCosine(args.lr, total, args.cycles) if args.cycles else args.lr
    chains = sample(
        potential,
        SGLD(lr, temperature=args.temperature),
        num_chains=args.chains,
        num_draws=args.draws,
        warmup=args.warmup,
        thin=args.thin,
        seed=args.seed,
        progress=args.progress,
    )
    n_params = sum(p.numel() for p in net.parameters())
    print(
        f"{args.chains} chains x {args.draws} draws of {n_params} parameters, {chains.steps} steps"
    )

    probs = predictive(net, chains.draws, data.x_test)
    y = data.y_test
    rows = [("model average", probs.mean((0, 1)))]
    rows += [(f"chain {k}", probs[k].mean(0)) for k in range(args.chains)]
    rows += [("last draw, chain 0", probs[0, -1])]
    print(f"{'predictive':<20}{'accuracy':>10}{'NLL':>8}{'ECE':>8}")
    for name, p in rows:
        print(
            f"{name:<20}{accuracy(p, y):>10.4f}{nll(p, y):>8.4f}"
            f"{expected_calibration_error(p, y):>8.4f}"
        )

    idata = chains.to_arviz()
    keep = ["2.bias", "2.weight"]
    small = idata.copy()
    small.posterior = idata.posterior[keep]
    table = dg.summary(small, var_names=["2.bias"])
    print(table[["mean", "sd", "ess_bulk", "ess_tail", "r_hat"]])
    rhat_all = dg.rhat(idata)
    flat = torch.cat([torch.as_tensor(v).flatten() for v in rhat_all.values()])
    q = torch.quantile(flat, torch.tensor([0.5, 0.9, 1.0], dtype=flat.dtype))
    print(
        f"R-hat over all {flat.numel()} weights: median {q[0]:.3f}, 90% {q[1]:.3f}, max {q[2]:.3f}"
    )
    stats = dg.summary(idata, group="sample_stats", var_names=["potential"], kind="diagnostics")
    print(stats)
    table.to_csv(out / "summary.csv")
    written = [
        dg.save_netcdf(small, out / "posterior.nc"),
        dg.plot_trace(small, out / "trace.png", var_names=["2.bias"]),
        dg.plot_rank(small, out / "rank.png", var_names=["2.bias"]),
    ]
    p = rows[0][1]
    conf, pred = p.max(-1)
    edges = torch.linspace(0, 1, 11)
    centers, accs = [], []
    for lo, hi in itertools.pairwise(edges):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            centers.append(conf[m].mean().item())
            accs.append((pred[m] == y[m]).double().mean().item())
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.plot(centers, accs, "o-", label="model average")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend()
    written += [_common.save(fig, args, "calibration.png"), out / "summary.csv"]
    print("wrote", ", ".join(str(w) for w in written))


if __name__ == "__main__":
    main()
