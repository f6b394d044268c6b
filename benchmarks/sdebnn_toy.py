"""Where the SDE-BNN's in-between uncertainty comes from, on the 1-D toy regression.

Fits several configurations of :class:`~bayesdepth.SDEBNNRegressor` to the embedded data
(:func:`bayesdepth.data.toy_regression_1d`, data seed 0) by STL (2000 steps unless said) and
prints the training RMSE of the predictive mean, the gap (2, 6) / cluster ([0, 2] and [6, 8])
ratio of the mean predictive sd (observation noise included) and of the epistemic sd, and, for a
latent ``w(0)``, the median posterior scale of ``w(0)`` over its prior scale (1 = pruned back to the
prior). The configurations:

- ``point``: point ``w(0)`` (the paper's choice), only the path noise, ``sigma`` 0.1 and 0.4;
- ``zero-mean``: latent ``w(0)`` with prior ``N(0, 1)``;
- ``toy``: :meth:`SDEBNNRegressor.toy` with :attr:`SDEBNNRegressor.TOY_FIT` (latent ``w(0)``
  with a learned prior mean and prior scale 0.7, 16 particles), the default;
- ``scale-0.5``: the same with prior scale 0.5;
- ``particles-32``, ``particles-32-long``: ``toy`` with 32 particles (and 3000 steps);
- ``width-32``: ``toy`` with width 32.

    python benchmarks/sdebnn_toy.py                  # all configurations, model seed 0
    python benchmarks/sdebnn_toy.py --configs toy --seeds 0 1 2
    python benchmarks/sdebnn_toy.py --configs toy --seeds 1 2 --init-seed 0   # SVI seed only
"""

from __future__ import annotations

import argparse

import pyro
import torch

from bayesdepth import Gaussian, data, metrics
from bayesdepth.sde import OUPrior, SDEBNNRegressor
from bayesdepth.svi import fit

EIGHT_PARTICLES = {**SDEBNNRegressor.TOY_FIT, "num_particles": 8}


LATENT_W0 = {"w0": "normal", "w0_prior_scale": 0.7, "w0_prior_mean": "learned"}  # as in toy()


def _build(width: int, sigma: float, **block_kwargs):
    return lambda: SDEBNNRegressor(1, width=width, steps=10, prior=OUPrior(sigma=sigma),
                                   likelihood=Gaussian(0.1), block_kwargs=block_kwargs or None)


CONFIGS = {
    "point-0.1": (_build(16, 0.1), EIGHT_PARTICLES),
    "point-0.4": (_build(16, 0.4), EIGHT_PARTICLES),
    "zero-mean": (_build(16, 0.03, w0="normal", w0_prior_scale=1.0), EIGHT_PARTICLES),
    "toy": (SDEBNNRegressor, SDEBNNRegressor.TOY_FIT),
    "scale-0.5": (_build(16, 0.03, w0="normal", w0_prior_scale=0.5, w0_prior_mean="learned"),
                  SDEBNNRegressor.TOY_FIT),
    "particles-32": (SDEBNNRegressor, {**SDEBNNRegressor.TOY_FIT, "num_particles": 32}),
    "particles-32-long": (SDEBNNRegressor, {**SDEBNNRegressor.TOY_FIT, "num_particles": 32,
                                            "num_steps": 3000}),
    "width-32": (_build(32, 0.03, **LATENT_W0), SDEBNNRegressor.TOY_FIT),
}


def measure(name: str, seed: int, init_seed: int | None = None) -> dict:
    """Fit one configuration: initial weights from ``init_seed`` (default: ``seed``)."""
    build, settings = CONFIGS[name]
    pyro.clear_param_store()
    d = data.toy_regression_1d()
    with torch.random.fork_rng(devices=[]):
        init = seed if init_seed is None else init_seed
        torch.manual_seed(init)
        model = SDEBNNRegressor.toy(init) if build is SDEBNNRegressor else build()
    hist = fit(model.model, model.guide, d.x, d.y, progress=False, seed=seed, **settings)
    train = model.predict(d.x, num_samples=100, seed=0)
    grid = model.predict(d.x_test, num_samples=100, seed=0)
    raw = d.x_test.squeeze(-1) * 4 + 4
    gap = (raw > 2) & (raw < 6)
    clusters = ((raw >= 0) & (raw <= 2)) | ((raw >= 6) & (raw <= 8))
    block = model.blocks[0]
    scale = float("nan")
    if block.w0_mode == "normal":
        scale = float(block.w0_log_scale.detach().exp().median() / block.w0_prior_scale)
    return {
        "config": name, "seed": seed, "init_seed": init, "rmse": metrics.rmse(train.mean, d.y),
        "sd_ratio": float(grid.sd[gap].mean() / grid.sd[clusters].mean()),
        "epistemic_ratio": float(grid.epistemic_sd[gap].mean()
                                 / grid.epistemic_sd[clusters].mean()),
        "w0_scale": scale, "seconds": hist.seconds,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="SVI (and init) seeds")
    p.add_argument("--init-seed", type=int, default=None,
                   help="one seed for the initial weights of every run (default: each run's seed)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{'config':>10} {'seed':>4} {'init':>4} {'RMSE':>6} {'sd ratio':>9} {'epi ratio':>9} "
          f"{'w0 scale':>8} {'s':>5}")
    rows = []
    for name in args.configs:
        for seed in args.seeds:
            r = measure(name, seed, args.init_seed)
            rows.append(r)
            print(f"{name:>10} {seed:>4} {r['init_seed']:>4} {r['rmse']:6.3f} {r['sd_ratio']:9.2f} "
                  f"{r['epistemic_ratio']:9.2f} {r['w0_scale']:8.2f} {r['seconds']:5.0f}",
                  flush=True)
    return rows


if __name__ == "__main__":
    main()
