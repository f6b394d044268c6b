"""SDE-BNN benchmark: SVI step time, memory with and without checkpointing, digits, exact posterior.

Part 1 times one SVI step (STL ELBO, batch 128) of the digits SDE-BNN (MLP field, width 32)
for several numbers K of grid steps, the variants interleaved in one process (median of
repetitions, the order reversed every other one), as ratios to the **baseline**: the same SVI
step with the weight path drawn by a hand-written eager Euler–Maruyama loop (``loop_simulate``
below, the same chain from the same increments) and the hidden state integrated eagerly.
Variants: ``default`` (the default simulator :func:`bayesdepth.sde.euler_chain`), ``torchsde``
(:func:`bayesdepth.sde.sdeint_euler`), ``compile h`` (``StateSolver(compile=True)``: the
hidden-state loop as one compiled graph) and ``compile all`` (also the weight path:
:class:`bayesdepth.sde.CompiledEuler`, the noise passed in). Compilation time is reported
separately (it is paid once per shape).

Part 2 measures the peak memory of one SVI step of a convolutional SDE-BNN on the 8x8 digits
(16 channels, batch 128) against K, with and without gradient checkpointing every 5 grid steps:
``torch.cuda.max_memory_allocated`` on a GPU; on the CPU the growth of the peak resident memory
during the step, each configuration in a fresh process (``MALLOC_MMAP_THRESHOLD_=65536`` so that
freed tensor memory goes back to the system).

Part 3 reproduces the exact-posterior table of ``docs/sdebnn.md`` (the variational drift set to
the exact Doob h-transform: the ELBO gap and the STL gradient variance vanish as dt shrinks).

Part 4 trains three digits classifiers of one architecture (a linear encoder to 32 features, one
block with the MLP field 32 -> 32 -> 32, K = 10, a linear readout) with the same number of steps
and learning-rate schedule and reports test accuracy, NLL and ECE (10 bins) on averaged
predictive probabilities (and their mean top probability, ``conf``: below the accuracy means
underconfident): the SDE-BNN (``OUPrior(sigma=2)``, STL, 8 vectorised particles), the
deterministic ODE-net (weights constant in depth, Adam, weight decay 1e-4) and a mean-field BNN
(weights constant in depth, prior N(0, 1), ``AutoNormal``, STL, 8 particles). ``--digits-seeds``
repeats the three fits for several seeds (initial weights, minibatches, posterior draws) and
adds their mean and standard deviation: with 450 test images the seed-to-seed spread is as large
as the differences between settings.

    python benchmarks/sdebnn.py                          # everything (about 15 CPU minutes)
    python benchmarks/sdebnn.py --skip-digits --skip-exact
    python benchmarks/sdebnn.py --skip-speed --skip-memory --skip-exact   # digits only
    python benchmarks/sdebnn.py --skip-speed --skip-memory --skip-exact --digits-seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO
from sdebnn_paper import MeanFieldODENet, fit_ode_net, predict_probs, scores  # same folder

from bayesdepth import data
from bayesdepth.elbo import STLTrace_ELBO
from bayesdepth.sde import (
    CompiledEuler,
    Conv2dField,
    OUObservation,
    OUPrior,
    SDEBNNClassifier,
    StateSolver,
    sdeint_euler,
)
from bayesdepth.svi import fit


def loop_simulate(drift, sigma, grid, w0, eps):
    """The baseline: a hand-written Euler–Maruyama loop, the chain (1) of ``EulerPath``."""
    dt = grid.diff()
    scale = sigma * dt.sqrt()
    ys, w = [w0], w0
    for k in range(dt.numel()):
        w = w + drift(grid[k], w) * dt[k] + scale[k] * eps[k]
        ys.append(w)
    return torch.stack(ys)


VARIANTS = {
    "loop": {"simulator": loop_simulate},
    "default": {},
    "torchsde": {"simulator": sdeint_euler},
    "compile h": {"solver": StateSolver(compile=True)},
    "compile all": {"solver": StateSolver(compile=True), "simulator": CompiledEuler()},
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _svi(steps: int, device, block_kwargs: dict):
    d = data.digits()
    x, y = d.x_train.to(device), d.y_train.to(device)
    pyro.set_rng_seed(0)
    m = SDEBNNClassifier(64, 10, width=32, steps=steps, seed=0,
                         block_kwargs=block_kwargs).to(device)
    svi = SVI(m.model, m.guide, pyro.optim.Adam({"lr": 1e-3}), STLTrace_ELBO())
    return lambda: svi.step(x, y, subsample_size=128)


def time_steps(steps: int, reps: int, device) -> dict[str, dict[str, float]]:
    runs, warm = {}, {}
    for name, kwargs in VARIANTS.items():
        start = time.perf_counter()
        runs[name] = _svi(steps, device, dict(kwargs))
        for _ in range(3):
            runs[name]()
        _sync(device)
        warm[name] = time.perf_counter() - start
    times: dict[str, list[float]] = {k: [] for k in runs}
    for rep in range(reps):  # the order reversed every other repetition (no position bias)
        for name, fn in list(runs.items())[::1 if rep % 2 == 0 else -1]:
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t)
    return {name: {"ms": 1e3 * statistics.median(v), "warmup_s": warm[name]}
            for name, v in times.items()}


# ------------------------------------------------------------------------------------ memory
def _memory_step(steps: int, every: int | None, device) -> float:
    """Peak memory (MB) of one SVI step of the conv SDE-BNN (see the module docstring)."""
    d = data.digits(flatten=False)
    x, y = d.x_train.to(device), d.y_train.to(device)
    m = SDEBNNClassifier(1, 10, width=16, steps=steps, field=Conv2dField(16, 16),
                         image_size=(8, 8), seed=0,
                         block_kwargs={"solver": StateSolver(checkpoint_every=every)}).to(device)
    svi = SVI(m.model, m.guide, pyro.optim.Adam({"lr": 1e-3}), STLTrace_ELBO())
    svi.step(x, y, subsample_size=2)  # warm up: everything but the batch-sized activations
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        svi.step(x, y, subsample_size=128)
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    svi.step(x, y, subsample_size=128)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024


def peak_memory_mb(steps: int, every: int | None, device) -> float:
    if device.type == "cuda":
        return _memory_step(steps, every, device)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-probe", str(steps),
           str(every or 0)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ exact posterior
def exact_posterior_table(n: int = 2000) -> list[dict]:
    """ELBO gap and per-sample gradient variances, the variational drift set to the exact one."""
    problem = OUObservation()
    log_py = problem.log_evidence()
    rows = []
    for num in (25, 50, 100, 200):
        model, guide, doob = problem.model_and_guide(n, num)
        row = {"dt": 1 / num}
        for name, elbo in (("stl", STLTrace_ELBO()), ("trace", Trace_ELBO())):
            pyro.set_rng_seed(num)
            loss = elbo.differentiable_loss(model, guide)
            ga, gb = torch.autograd.grad(loss, [doob.alpha, doob.beta])
            row[f"{name}_var"] = (ga.var() + gb.var()).item()
        with torch.no_grad():
            guide_trace = pyro.poutine.trace(guide).get_trace()
            model_trace = pyro.poutine.trace(
                pyro.poutine.replay(model, trace=guide_trace)).get_trace()
            guide_trace.compute_log_prob()
            model_trace.compute_log_prob()
            e = (model_trace.nodes["w"]["log_prob"] + model_trace.nodes["y"]["log_prob"]
                 - guide_trace.nodes["w"]["log_prob"])
        row["gap"] = e.mean().item() - log_py
        row["gap_se"] = e.std().item() / math.sqrt(n)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------- digits
#: the digits SDE-BNN (the ODE-net and the MF-BNN use the same architecture)
DIGITS = {"width": 32, "steps": 10, "sigma": 2.0, "theta": 1.0}
#: SVI settings of the SDE-BNN and the MF-BNN (the ODE-net: the same steps, batch and schedule)
DIGITS_FIT = {"num_steps": 4000, "batch_size": 128, "lr": 5e-3, "final_lr_fraction": 0.1,
              "num_particles": 8, "vectorize_particles": True}


def digits_model(prior: OUPrior, seed: int = 0) -> SDEBNNClassifier:
    return SDEBNNClassifier(64, 10, width=DIGITS["width"], steps=DIGITS["steps"], prior=prior,
                            seed=seed)


def run_digits(device, num_steps: int, budget: float | None, prior: OUPrior, seed: int = 0,
               samples: int = 256) -> dict[str, dict]:
    """Train and score the three digits models; ``seed`` sets the initial weights, the
    minibatches and the posterior draws of training and prediction (``samples`` of them)."""
    d = data.digits()
    x, y, xte = d.x_train.to(device), d.y_train.to(device), d.x_test.to(device)
    settings = {**DIGITS_FIT, "num_steps": num_steps}
    results = {}
    for name in ("sdebnn", "ode-net", "mf-bnn"):
        pyro.clear_param_store()
        arch = digits_model(prior, seed).to(device)
        if name == "ode-net":
            steps, seconds = fit_ode_net(arch, x, y, num_steps, settings["batch_size"],
                                         settings["lr"], settings["final_lr_fraction"],
                                         max_seconds=budget, seed=seed)
            model = arch
        else:
            model = arch if name == "sdebnn" else MeanFieldODENet(arch).to(device)
            hist = fit(model.model, model.guide, x, y, max_seconds=budget, progress=False,
                       seed=seed, **settings)
            steps, seconds = hist.steps, hist.seconds
        probs = predict_probs(name, model, xte, samples=samples, seed=seed)
        results[name] = {**scores(probs, d.y_test), "steps": steps, "seconds": seconds,
                         "confidence": float(probs.max(-1).values.mean())}
    return results


def _mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} +- {statistics.stdev(values):.4f}"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid-steps", type=int, nargs="+", default=[10, 20, 40])
    p.add_argument("--reps", type=int, default=15, help="timed SVI steps per variant")
    p.add_argument("--memory-steps", type=int, nargs="+", default=[10, 20, 40])
    p.add_argument("--digits-steps", type=int, default=DIGITS_FIT["num_steps"])
    p.add_argument("--digits-sigma", type=float, default=DIGITS["sigma"],
                   help="diffusion of the SDE-BNN's OU prior")
    p.add_argument("--digits-theta", type=float, default=DIGITS["theta"],
                   help="mean-reversion rate of the SDE-BNN's OU prior")
    p.add_argument("--digits-seeds", type=int, nargs="+", default=[0],
                   help="one digits run per seed; with several, also their mean and sd")
    p.add_argument("--digits-samples", type=int, default=256,
                   help="posterior samples averaged in the digits predictions")
    p.add_argument("--budget-seconds", type=float, default=600.0,
                   help="training wall-time cap per digits model")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-exact", action="store_true", help="skip the exact-posterior table")
    p.add_argument("--skip-digits", action="store_true")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--memory-probe", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device(args.device)
    if args.memory_probe:
        steps, every = args.memory_probe
        print(_memory_step(steps, every or None, device))
        return {}
    out = {"device": str(device), "threads": torch.get_num_threads()}

    if not args.skip_speed:
        print(f"SVI step time, digits SDE-BNN (width 32, batch 128, STL), device {device}; "
              "ratio to the hand-written eager Euler loop")
        names = list(VARIANTS)
        print(f"{'K':>4} " + " ".join(f"{n + ' ms':>14}" for n in names) + "  "
              + " ".join(f"{n:>11}" for n in names[1:]) + "   compile s")
        out["speed"] = []
        for steps in args.grid_steps:
            r = time_steps(steps, args.reps, device)
            base = r["loop"]["ms"]
            out["speed"].append({"K": steps, **r})
            print(f"{steps:>4} " + " ".join(f"{r[n]['ms']:>14.2f}" for n in names) + "  "
                  + " ".join(f"{r[n]['ms'] / base:>11.3f}" for n in names[1:])
                  + f"   {r['compile all']['warmup_s']:>9.0f}", flush=True)

    if not args.skip_memory:
        what = "CUDA peak MB" if device.type == "cuda" else "peak RSS growth MB"
        print(f"\npeak memory of one SVI step, conv SDE-BNN on 8x8 digits (16 channels, batch "
              f"128), {what}")
        print(f"{'K':>4} {'no checkpoint':>14} {'every 5':>9} {'ratio':>6}")
        out["memory"] = []
        for steps in args.memory_steps:
            full, ck = (peak_memory_mb(steps, e, device) for e in (None, 5))
            out["memory"].append({"K": steps, "full_mb": full, "checkpoint5_mb": ck})
            print(f"{steps:>4} {full:>14.1f} {ck:>9.1f} {ck / full:>6.2f}", flush=True)

    if not args.skip_exact:
        print("\nexact posterior (OU prior, y ~ N(w(1), 0.2^2)), guide drift = Doob h-transform,"
              " 2000 paths")
        print(f"{'dt':>7} {'ELBO - log p(y)':>16} {'+-':>7} {'Var STL grad':>13} "
              f"{'Var Trace_ELBO grad':>20} {'ratio':>8}")
        rows = exact_posterior_table()
        out["exact_posterior"] = rows
        for r in rows:
            print(f"{r['dt']:>7.4f} {r['gap']:>16.4f} {r['gap_se']:>7.4f} {r['stl_var']:>13.2e} "
                  f"{r['trace_var']:>20.3f} {r['stl_var'] / r['trace_var']:>8.1e}")

    if not args.skip_digits:
        prior = OUPrior(sigma=args.digits_sigma, theta=args.digits_theta)
        print(f"\ndigits (1347 train / 450 test), MLP field width {DIGITS['width']}, K = "
              f"{DIGITS['steps']}, {prior}, {args.digits_steps} steps of 128, "
              f"{DIGITS_FIT['num_particles']} particles, lr {DIGITS_FIT['lr']} decaying 10x, "
              f"{args.digits_samples} posterior samples per prediction, "
              f"at most {args.budget_seconds:.0f} s each")
        print(f"{'model':<9} {'seed':>4} {'acc':>6} {'NLL':>7} {'ECE':>7} {'conf':>6} "
              f"{'steps':>7} {'seconds':>8}")
        runs = []
        for seed in args.digits_seeds:
            runs.append(run_digits(device, args.digits_steps, args.budget_seconds, prior, seed,
                                   args.digits_samples))
            for name, r in runs[-1].items():
                print(f"{name:<9} {seed:>4} {r['accuracy']:>6.4f} {r['nll']:>7.4f} "
                      f"{r['ece']:>7.4f} {r['confidence']:>6.4f} {r['steps']:>7} "
                      f"{r['seconds']:>8.0f}", flush=True)
        out["digits"] = runs[0] if len(runs) == 1 else runs
        if len(runs) > 1:
            print(f"mean +- sd over {len(runs)} seeds")
            for name in runs[0]:
                cells = [_mean_sd([r[name][k] for r in runs]) for k in ("accuracy", "nll", "ece")]
                print(f"{name:<9} " + "  ".join(cells))
    print(f"\nmax RSS of this process: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
    return out


if __name__ == "__main__":
    main()
