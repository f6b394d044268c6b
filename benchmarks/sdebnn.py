"""SDE-BNN benchmark: torchsde vs a hand-written Euler–Maruyama loop, and digits classification.

Part 1 times one SVI step (STL ELBO) of the same SDE-BNN with the weight path simulated by
torchsde (the package default) and by a plain-torch Euler–Maruyama loop with the same maths,
interleaved in the same process (median of repetitions), for several numbers of grid steps.
Memory per configuration: ``torch.cuda.max_memory_allocated`` on a GPU; on the CPU the bytes
autograd saves for the backward pass (the part that grows with the grid).

Part 2 trains four digits classifiers under the same wall-clock budget and reports test
accuracy, NLL and ECE (10 bins) on averaged predictive probabilities: the SDE-BNN (MLP ``f_h`` on
the 64 pixels, and a conv ``f_h`` on the 8x8 images), a deterministic ODE-net with the same MLP
``f_h`` (weights constant in depth, a point estimate), and a mean-field Bayesian MLP (Pyro
``AutoNormal``, STL ELBO).

    python benchmarks/sdebnn.py                      # everything, at most 600 s per model
    python benchmarks/sdebnn.py --budget-seconds 60  # shorter digits runs
    python benchmarks/sdebnn.py --skip-digits

Part 3 (small) reproduces the exact-posterior table of ``docs/sdebnn.md``: with the variational
drift set to the exact Doob h-transform of an OU prior observed at t = 1, the ELBO gap and the
STL gradient variance vanish as dt shrinks; Trace_ELBO's gradient variance does not.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import resource
import statistics
import time

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroSample
from torch import nn

from bayesdepth import data, metrics
from bayesdepth.elbo import STLTrace_ELBO
from bayesdepth.sde.block import SDEBNNBlock
from bayesdepth.sde.exact import OUObservation
from bayesdepth.sde.models import SDEBNNClassifier
from bayesdepth.sde.processes import OUPrior
from bayesdepth.svi import fit


def loop_simulate(drift, sigma, grid, w0, entropy):
    """Plain-torch Euler–Maruyama with the same chain as the torchsde path (the baseline)."""
    gen = torch.Generator(device=w0.device).manual_seed(entropy % (2**63))
    dt = grid.diff()
    eps = torch.randn((dt.numel(), *w0.shape), generator=gen, dtype=w0.dtype, device=w0.device)
    scale = sigma * dt.sqrt()
    ys, w = [w0], w0
    for k in range(dt.numel()):
        w = w + drift(grid[k], w) * dt[k] + scale[k] * eps[k]
        ys.append(w)
    return torch.stack(ys)


def _svi(steps: int, simulate, device):
    d = data.digits()
    x, y = d.x_train.to(device), d.y_train.to(device)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    m = SDEBNNClassifier(64, 10, width=32, steps=steps, seed=0,
                         block_kwargs={"simulator": simulate}).to(device)
    svi = SVI(m.model, m.guide, pyro.optim.Adam({"lr": 1e-3}), STLTrace_ELBO())
    return lambda: svi.step(x, y, subsample_size=128)


def time_steps(steps: int, reps: int, device) -> tuple[float, float]:
    runs = {"torchsde": _svi(steps, None, device), "loop": _svi(steps, loop_simulate, device)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        for _ in range(3):
            fn()
    for _ in range(reps):
        for name, fn in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t)
    return statistics.median(times["torchsde"]), statistics.median(times["loop"])


def peak_memory_mb(steps: int, backend: str, device) -> float:
    """Memory of one SVI step: CUDA peak on a GPU; on the CPU, the bytes autograd saves for the
    backward pass (distinct storages seen by a ``saved_tensors_hooks`` pack hook), which is the
    part that grows with the number of grid steps."""
    fn = _svi(steps, None if backend == "torchsde" else loop_simulate, device)
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        fn()
        return torch.cuda.max_memory_allocated() / 2**20
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values()) / 2**20


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
class ODENet(nn.Module):
    """Deterministic ODE-net: encoder, the same f_h with constant weights, readout."""

    def __init__(self, width=32, steps=10):
        super().__init__()
        self.encoder = nn.Linear(64, width)
        self.block = SDEBNNBlock(width, steps=steps)
        self.readout = nn.Linear(width, 10)

    def forward(self, x):
        path = self.block.w0.expand(self.block.grid.numel(), -1)
        return self.readout(self.block.integrate(self.encoder(x), path))


class BayesMLP(PyroModule):
    """Mean-field Bayesian MLP 64-32-32-10 with N(0, 1) weight priors."""

    def __init__(self, width=32):
        super().__init__()
        sizes = [64, width, width, 10]
        self.layers = PyroModule[nn.ModuleList]([
            PyroModule[nn.Linear](a, b) for a, b in itertools.pairwise(sizes)
        ])
        for layer in self.layers:
            layer.weight = PyroSample(
                dist.Normal(0.0, 1.0).expand(layer.weight.shape).to_event(2))
            layer.bias = PyroSample(dist.Normal(0.0, 1.0).expand(layer.bias.shape).to_event(1))

    def forward(self, x, y=None, subsample_size=None):
        weights = [(layer.weight, layer.bias) for layer in self.layers]  # global latents
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size) as idx:
            h = x[idx]
            for i, (w, b) in enumerate(weights):
                h = h @ w.transpose(-1, -2) + b.unsqueeze(-2)
                if i < len(weights) - 1:
                    h = torch.tanh(h)
            pyro.deterministic("probs", h.softmax(-1))
            return pyro.sample("y", dist.Categorical(logits=h),
                               obs=None if y is None else y[idx])


def _scores(probs, labels):
    return {
        "accuracy": metrics.accuracy(probs, labels),
        "nll": metrics.nll(probs, labels),
        "ece": metrics.expected_calibration_error(probs, labels, num_bins=10),
    }


def run_digits(budget: float, device, sde_steps: int = 3000, bnn_steps: int = 10000
               ) -> dict[str, dict]:
    d = data.digits()
    xtr, ytr, xte, _ = (t.to(device) for t in (d.x_train, d.y_train, d.x_test, d.y_test))
    results = {}

    pyro.clear_param_store()
    torch.manual_seed(0)
    m = SDEBNNClassifier(64, 10, width=32, steps=10, prior=OUPrior(sigma=1.0)).to(device)
    h = fit(m.model, m.guide, xtr, ytr, num_steps=sde_steps, batch_size=128, lr=5e-3,
            final_lr_fraction=0.1, max_seconds=budget, progress=False, seed=0)
    probs = m.predict(xte, num_samples=32, seed=0).probs.cpu()
    results["SDE-BNN (MLP f_h)"] = {**_scores(probs, d.y_test), "steps": h.steps,
                                    "seconds": h.seconds}

    pyro.clear_param_store()
    torch.manual_seed(0)
    img = data.digits(flatten=False)
    m = SDEBNNClassifier(1, 10, width=8, steps=10, field="conv",
                         prior=OUPrior(sigma=1.0)).to(device)
    h = fit(m.model, m.guide, img.x_train.to(device), ytr, num_steps=sde_steps, batch_size=128,
            lr=5e-3, final_lr_fraction=0.1, max_seconds=budget, progress=False, seed=0)
    probs = m.predict(img.x_test.to(device), num_samples=32, seed=0).probs.cpu()
    results["SDE-BNN (conv f_h)"] = {**_scores(probs, d.y_test), "steps": h.steps,
                                     "seconds": h.seconds}

    torch.manual_seed(0)
    net = ODENet().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3, weight_decay=1e-4)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < budget:
        idx = torch.randint(0, xtr.shape[0], (128,), device=device)
        loss = nn.functional.cross_entropy(net(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    with torch.no_grad():
        probs = net(xte).softmax(-1).cpu()
    results["ODE-net"] = {**_scores(probs, d.y_test), "steps": steps,
                          "seconds": time.perf_counter() - start}

    pyro.clear_param_store()
    bnn = BayesMLP().to(device)
    guide = AutoNormal(bnn, init_scale=1e-2)
    h = fit(bnn, guide, xtr, ytr, num_steps=bnn_steps, batch_size=128, lr=1e-2,
            final_lr_fraction=0.1, max_seconds=budget, progress=False, seed=0)
    with torch.no_grad():
        pred = Predictive(bnn, guide=guide, num_samples=32, return_sites=("probs",))
        probs = pred(xte, subsample_size=xte.shape[0])["probs"].mean(0).cpu()
    results["MF-BNN (AutoNormal)"] = {**_scores(probs, d.y_test), "steps": h.steps,
                                      "seconds": h.seconds}
    return results


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid-steps", type=int, nargs="+", default=[5, 10, 20, 40])
    p.add_argument("--reps", type=int, default=15, help="timed SVI steps per backend")
    p.add_argument("--budget-seconds", type=float, default=600.0,
                   help="training wall time cap per digits model")
    p.add_argument("--sde-steps", type=int, default=3000, help="SVI steps of the SDE-BNNs")
    p.add_argument("--bnn-steps", type=int, default=10000, help="SVI steps of the MF-BNN")
    p.add_argument("--skip-digits", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-exact", action="store_true", help="skip the exact-posterior table")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device(args.device)
    out = {"device": str(device), "threads": torch.get_num_threads(), "svi": [], "digits": {}}

    print(f"SVI step time, digits SDE-BNN (width 32, batch 128, STL), device {device}")
    mem_name = "peak MB" if device.type == "cuda" else "saved MB"
    print(f"{'K':>4} {'torchsde ms':>12} {'loop ms':>9} {'ratio':>6} "
          f"{mem_name + ' torchsde':>17} {mem_name + ' loop':>13}")
    for steps in args.grid_steps:
        t_sde, t_loop = time_steps(steps, args.reps, device)
        mem = ("-", "-") if args.skip_memory else tuple(
            f"{peak_memory_mb(steps, b, device):.1f}" for b in ("torchsde", "loop"))
        row = {"K": steps, "torchsde_ms": 1e3 * t_sde, "loop_ms": 1e3 * t_loop,
               "ratio": t_sde / t_loop, "peak_mb": mem}
        out["svi"].append(row)
        print(f"{steps:>4} {1e3 * t_sde:>12.1f} {1e3 * t_loop:>9.1f} {t_sde / t_loop:>6.2f} "
              f"{mem[0]:>17} {mem[1]:>13}", flush=True)

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
        print(f"\ndigits (1347 train / 450 test), at most {args.budget_seconds:.0f} s per model")
        print(f"{'model':<22} {'acc':>6} {'NLL':>7} {'ECE':>7} {'steps':>7} {'seconds':>8}")
        res = run_digits(args.budget_seconds, device, args.sde_steps, args.bnn_steps)
        out["digits"] = res
        for name, r in res.items():
            print(f"{name:<22} {r['accuracy']:>6.3f} {r['nll']:>7.3f} {r['ece']:>7.3f} "
                  f"{r['steps']:>7} {r['seconds']:>8.0f}")
    print(f"\nmax RSS of this process: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
    main()
