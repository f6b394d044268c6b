"""SDE-BNN on the 1-D toy regression: predictive mean +/- 2 sd and sampled weight paths.

A figure like Xu et al. (2022), figure 1: the data, the predictive mean with a band of two
predictive standard deviations (noise included) over x in [-2, 8], and a few weight paths
w(t), t in [0, 1], drawn from the fitted posterior SDE.

    python examples/sdebnn_regression.py            # the default configuration (2000 steps)
    python examples/sdebnn_regression.py --quick    # a few seconds
"""

from __future__ import annotations

from pathlib import Path

import _common
import matplotlib.pyplot as plt
import torch

import bayesdepth as bd


def main(argv: list[str] | None = None) -> Path:
    p = _common.example_parser(__doc__, "sdebnn_regression")
    p.add_argument("--steps", type=int, default=None, help="SVI steps (default 2000)")
    p.add_argument("--samples", type=int, default=100, help="posterior samples for predict")
    args = p.parse_args(argv)
    _common.start(args)

    d = bd.data.toy_regression_1d(seed=args.seed)
    model = bd.SDEBNNRegressor.toy(seed=args.seed)
    settings = dict(bd.SDEBNNRegressor.TOY_FIT)
    if args.quick:
        model = bd.SDEBNNRegressor(1, width=8, steps=5, likelihood=bd.Gaussian(0.1),
                                   seed=args.seed)
        settings.update(num_steps=60, anneal_steps=20)
        args.samples = min(args.samples, 20)
    if args.steps is not None:
        settings["num_steps"] = args.steps
    hist = bd.fit(model.model, model.guide, d.x, d.y, seed=args.seed, progress=not args.quick,
                  **settings)
    train = model.predict(d.x, num_samples=args.samples, seed=args.seed)
    pred = model.predict(d.x_test, num_samples=args.samples, seed=args.seed)
    grid, paths = model.sample_paths(5, seed=args.seed)
    rmse = bd.metrics.rmse(train.mean, d.y)
    raw_x = d.x_test.squeeze(-1) * 4 + 4
    gap = (raw_x > 2) & (raw_x < 6)
    data_region = ((raw_x >= 0) & (raw_x <= 2)) | ((raw_x >= 6) & (raw_x <= 8))
    print(f"{hist.steps} SVI steps in {hist.seconds:.1f} s; final ELBO {hist.elbo[-1]:.2f}; "
          f"training RMSE {rmse:.3f}")
    for name, sd in (("predictive sd", pred.sd), ("epistemic sd", pred.epistemic_sd)):
        g, c = sd[gap].mean().item(), sd[data_region].mean().item()
        print(f"mean {name}: gap (2, 6) {g:.3f}, data clusters {c:.3f}, ratio {g / c:.2f}")

    raw = lambda u: (u.squeeze(-1) * 4 + 4).numpy()  # noqa: E731  (undo the normalisation)
    fig, (ax, axw) = plt.subplots(1, 2, figsize=(11, 4))
    xs, mean, sd = raw(d.x_test), pred.mean.numpy(), pred.sd.numpy()
    ax.fill_between(xs, mean - 2 * sd, mean + 2 * sd, alpha=0.3, label="mean ± 2 sd")
    ax.plot(xs, mean, lw=2, label="predictive mean")
    ax.plot(xs, torch.cos(torch.as_tensor(xs)).numpy(), "k--", lw=1, label="cos(x)")
    ax.scatter(raw(d.x), d.y.numpy(), s=12, c="k", zorder=3, label="data")
    ax.set(xlabel="x", ylabel="y", title="SDE-BNN predictive")
    ax.legend(loc="lower left", fontsize=8)
    for j in range(6):  # six weight coordinates, five posterior paths each
        axw.plot(grid.numpy(), paths[:, :, j].T.numpy(), color=f"C{j}", alpha=0.7, lw=1)
    axw.set(xlabel="depth t", ylabel="w(t)", title="posterior weight paths (6 coordinates)")
    return _common.save(fig, args, "sdebnn_regression.png")


if __name__ == "__main__":
    main()
