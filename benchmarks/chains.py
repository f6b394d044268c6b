"""Vectorised K-chain SGLD against a Python loop over K single chains (and the posteriors library).

For K in {1, 8, 32, 128} chains, on Bayesian linear regression (d = 10) and a two-layer Bayesian
MLP on scikit-learn's digits (64-64-10, 4810 parameters), this measures the time of one SGLD step
(minibatch gradient of the potential + update) for

- ``vectorised``: one ``bayesdepth.inference.SGLD`` step over all K chains (``module_potential``:
  ``torch.func.vmap`` over ``functional_call``);
- ``loop``: the same sampler and potential, one single-chain step per chain in a Python loop;
- ``posteriors``: ``posteriors.sgmcmc.sgld`` (if installed), one state per chain, looped.

Every variant is timed in the same run, after two untimed steps. Peak memory: CUDA's
``max_memory_allocated`` on a GPU, else the process's peak resident set size.

Usage::

    python benchmarks/chains.py                 # CPU table
    python benchmarks/chains.py --quick         # tiny smoke run
    python benchmarks/chains.py --device cuda --ks 1,1024 --max-loop-k 0
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import torch
from bayesdepth.inference import SGLD, module_potential

from bayesdepth.data import digits, linear_regression


def _problems(dtype):
    reg = linear_regression(num_points=1000, dim=10, seed=0, dtype=dtype)
    lin = torch.nn.Linear(10, 1, bias=False).to(dtype)
    noise = reg.noise_scale

    def gauss(out, y):
        return -0.5 * ((out.squeeze(-1) - y) / noise) ** 2

    data = digits()
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
    mlp = mlp.to(dtype)

    def categorical(logits, y):
        return torch.distributions.Categorical(logits=logits).log_prob(y)

    return {
        "linreg d=10": (lin, gauss, reg.x, reg.y, 100, 1e-5),
        "mlp digits": (mlp, categorical, data.x_train.to(dtype), data.y_train, 64, 1e-5),
    }


def _time(fn, steps, device):
    fn()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def _peak_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
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
                idx = torch.randint(n, (batch,), generator=gen, device=device)
                states[i] = transform.update(states[i], (x[idx], y[idx]))[0]

        return step

    return make


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ks", default="1,8,32,128", help="comma-separated chain counts")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--max-loop-k", type=int, default=128, help="largest K for loop baselines")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="K in {1, 8}, 3 steps")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ks = [1, 8] if args.quick else [int(k) for k in args.ks.split(",")]
    steps = 3 if args.quick else args.steps
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    print(f"device={device} dtype={args.dtype} threads={torch.get_num_threads()} steps={steps}")
    header = (
        f"{'problem':<12} {'K':>5} {'vec ms':>9} {'loop ms':>9} {'speedup':>8} "
        f"{'post. ms':>9} {'vs post.':>9} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, (module, loglik, x, y, batch, lr) in _problems(dtype).items():
        module, x, y = module.to(device), x.to(device), y.to(device)
        pot = module_potential(module, loglik, x, y, prior=1.0, batch_size=batch)
        sampler = SGLD(lr)
        post_make = _posteriors_step(module, loglik, x, y, batch, lr, device)
        for k in ks:
            gen = torch.Generator(device=device).manual_seed(0)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            grad_fn = pot.grad_fn(k)
            box = [sampler.init(pot.init(k, gen))]

            def vec_step(box=box, grad_fn=grad_fn, gen=gen, sampler=sampler):
                box[0] = sampler.step(box[0], grad_fn, gen)[0]

            t_vec = _time(vec_step, steps, device)
            peak = _peak_mb(device)
            t_loop = t_post = float("nan")
            if k <= args.max_loop_k:
                grad_one = pot.grad_fn(1)
                singles = [sampler.init(pot.init(1, gen)) for _ in range(k)]

                def loop_step(singles=singles, grad_one=grad_one, gen=gen, sampler=sampler):
                    for i in range(len(singles)):
                        singles[i] = sampler.step(singles[i], grad_one, gen)[0]

                t_loop = _time(loop_step, steps, device)
                if post_make is not None:
                    t_post = _time(post_make(k, gen), steps, device)
            print(
                f"{name:<12} {k:>5} {1e3 * t_vec:>9.3f} {1e3 * t_loop:>9.3f} "
                f"{t_loop / t_vec:>7.1f}x {1e3 * t_post:>9.3f} {t_post / t_vec:>8.1f}x "
                f"{peak:>8.1f}"
            )
    if post_make is None:
        print("posteriors is not installed: its column is empty")


if __name__ == "__main__":
    main()
