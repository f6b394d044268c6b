"""Vectorised K-chain SGLD against a Python loop over K single chains: module and Pyro potentials.

For K in {1, 8, 32, 128} chains this measures the time of one SGLD step (minibatch gradient of the
potential + update, every chain with its own minibatch) on four problems:

- ``module linreg``: Bayesian linear regression, d = 10, N = 1000, B = 100, as an ``nn.Linear``
  (``module_potential``: ``torch.func.vmap`` over ``functional_call``);
- ``module mlp``: a 64-64-10 MLP on scikit-learn's digits (4810 parameters, B = 64);
- ``pyro linreg``: the same regression as a Pyro model with ``pyro.plate(subsample_size=100)``
  (``pyro_potential``: one ``vmap`` over a Pyro trace, the per-chain indices a batched argument);
- ``pyro mlp``: ``bayesdepth.BayesianMLP(64, 10, hidden=(64,))`` on digits with
  ``subsample_size=64``.

Columns: ``vec`` one step of all K chains; ``loop`` the same sampler and potential, one
single-chain step per chain in a Python loop (``speedup`` = loop / vec); ``posteriors`` the
``posteriors`` library's SGLD looped over chains (module rows, if it is installed); ``x K=1`` the
vectorised step's cost relative to one chain's; ``peak MB`` the peak memory of the vectorised
measurement: CUDA's ``max_memory_allocated`` on a GPU, else the process's peak resident set size
during it (Linux resets the high-water mark per measurement; elsewhere it is the peak so far).
Every variant is timed after two untimed steps, the best of ``--repeats`` (3) measurements.

Usage::

    python benchmarks/chains.py                       # CPU table
    python benchmarks/chains.py --quick               # tiny smoke run
    python benchmarks/chains.py --problems pyro       # only the Pyro rows
    python benchmarks/chains.py --device cuda --ks 1,1024 --max-loop-k 0
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from bayesdepth.inference import SGLD, module_potential, pyro_potential

import bayesdepth as bd
from bayesdepth.data import digits, linear_regression

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def _gauss(noise):
    def loglik(out, y):
        return -0.5 * ((out.squeeze(-1) - y) / noise) ** 2

    return loglik


def _categorical(logits, y):
    return logits.log_softmax(-1).gather(-1, y.unsqueeze(-1)).squeeze(-1)


def _regression_model(prior_scale, noise_scale):
    def model(x, y, subsample_size):
        zero = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
        w = pyro.sample("w", dist.Normal(zero, prior_scale).to_event(1))
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size, device=x.device) as i:
            pyro.sample("y", dist.Normal(x[i] @ w, noise_scale), obs=y[i])

    return model


def _problems(dtype, device):
    """name -> (potential, module or None for the posteriors baseline, loglik, x, y, B, lr)."""
    reg = linear_regression(num_points=1000, dim=10, seed=0, dtype=dtype)
    xr, yr = reg.x.to(device), reg.y.to(device)
    data = digits(dtype=dtype)
    xd, yd = data.x_train.to(device), data.y_train.to(device)
    lin = torch.nn.Linear(10, 1, bias=False).to(device=device, dtype=dtype)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
    mlp = mlp.to(device=device, dtype=dtype)
    net = bd.BayesianMLP(64, 10, hidden=(64,), likelihood=bd.Categorical(), seed=0)
    net = net.to(device=device, dtype=dtype)
    gauss = _gauss(reg.noise_scale)
    return {
        "module linreg": (module_potential(lin, gauss, xr, yr, prior=1.0, batch_size=100),
                          lin, gauss, xr, yr, 100, 1e-5),
        "module mlp": (module_potential(mlp, _categorical, xd, yd, prior=1.0, batch_size=64),
                       mlp, _categorical, xd, yd, 64, 1e-5),
        "pyro linreg": (pyro_potential(_regression_model(reg.prior_scale, reg.noise_scale),
                                       xr, yr, 100), None, None, xr, yr, 100, 1e-5),
        "pyro mlp": (pyro_potential(net.model, xd, yd, subsample_size=64),
                     None, None, xd, yd, 64, 1e-5),
    }


def _time(fn, steps, device, repeats=3):
    fn()
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def _reset_peak(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif _CLEAR.exists():
        try:
            _CLEAR.write_text("5")  # resets VmHWM (Linux >= 4.0)
        except OSError:
            pass


def _peak_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if _STATUS.exists():
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _posteriors_step(module, loglik, x, y, batch, lr, device):
    """A closure running one posteriors-SGLD step for each of K chains (built per K)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import posteriors
    except ImportError:
        return None
    n = x.shape[0]

    def log_posterior(params, data):
        xb, yb = data
        out = torch.func.functional_call(module, params, (xb,))
        prior = sum(torch.distributions.Normal(0.0, 1.0).log_prob(p).sum() for p in params.values())
        return (n / xb.shape[0]) * loglik(out, yb).sum() + prior, torch.tensor([])

    transform = posteriors.sgmcmc.sgld.build(log_posterior, lr=lr / 2)  # their lr = our eps/2

    def make(k, gen):
        states = [
            transform.init({name: p.detach().clone() for name, p in module.named_parameters()})
            for _ in range(k)
        ]

        def step():
            for i in range(k):
                idx = torch.randperm(n, generator=gen, device=device)[:batch]
                states[i] = transform.update(states[i], (x[idx], y[idx]))[0]

        return step

    return make


def _row(name, k, t_vec, t_one, t_loop, t_post, peak):
    def ms(t):
        return f"{1e3 * t:>9.3f}"

    def ratio(a, b):
        return f"{a / b:>7.1f}x"

    return (f"{name:<13} {k:>5} {ms(t_vec)} {ms(t_loop)} {ratio(t_loop, t_vec)} {ms(t_post)} "
            f"{ratio(t_post, t_vec)} {ratio(t_vec, t_one)} {peak:>8.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ks", default="1,8,32,128", help="comma-separated chain counts")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements; the best is kept")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--max-loop-k", type=int, default=128, help="largest K for loop baselines")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--problems", default="module,pyro",
                        help="comma-separated kinds (module, pyro) or problem names")
    parser.add_argument("--quick", action="store_true", help="K in {1, 8}, 3 steps")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ks = [1, 8] if args.quick else [int(k) for k in args.ks.split(",")]
    steps = 3 if args.quick else args.steps
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    wanted = args.problems.split(",")
    print(f"device={device} dtype={args.dtype} threads={torch.get_num_threads()} steps={steps}")
    header = (
        f"{'problem':<13} {'K':>5} {'vec ms':>9} {'loop ms':>9} {'speedup':>8} "
        f"{'post. ms':>9} {'vs post.':>8} {f'x K={ks[0]}':>8} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    posteriors_missing = False
    for name, (pot, module, loglik, x, y, batch, lr) in _problems(dtype, device).items():
        if name not in wanted and name.split()[0] not in wanted:
            continue
        sampler = SGLD(lr)
        post_make = None
        if module is not None:
            post_make = _posteriors_step(module, loglik, x, y, batch, lr, device)
            posteriors_missing |= post_make is None
        t_one = None
        for k in ks:
            gen = torch.Generator(device=device).manual_seed(0)
            grad_fn = pot.grad_fn(k)
            box = [sampler.init(pot.init(k, gen))]

            def vec_step(box=box, grad_fn=grad_fn, gen=gen, sampler=sampler):
                box[0] = sampler.step(box[0], grad_fn, gen)[0]

            _reset_peak(device)
            t_vec = _time(vec_step, steps, device, args.repeats)
            peak = _peak_mb(device)
            t_one = t_vec if t_one is None else t_one
            t_loop = t_post = float("nan")
            if k <= args.max_loop_k:
                grad_one = pot.grad_fn(1)
                singles = [sampler.init(pot.init(1, gen)) for _ in range(k)]

                def loop_step(singles=singles, grad_one=grad_one, gen=gen, sampler=sampler):
                    for i in range(len(singles)):
                        singles[i] = sampler.step(singles[i], grad_one, gen)[0]

                t_loop = _time(loop_step, steps, device, args.repeats)
                if post_make is not None:
                    t_post = _time(post_make(k, gen), steps, device, args.repeats)
            print(_row(name, k, t_vec, t_one, t_loop, t_post, peak), flush=True)
    if posteriors_missing:
        print("posteriors is not installed: its column is empty")


if __name__ == "__main__":
    main()
