"""Gradient variance of STL against Trace_ELBO, and the cost of an STL step.

Two problems, both with a known exact posterior:

- the conjugate Normal model (x = 1.3, prior N(0, 1), likelihood N(z, 1); posterior N(0.65, 0.5));
- Bayesian linear regression (d = 5, N = 100) with an ``AutoMultivariateNormal`` guide set to the
  exact posterior.

The guide's mean is moved by 0, 0.5 and 2 posterior standard deviations, and the variance of each
gradient coordinate over many draws is summed. Then the time per ``SVI.step`` of each estimator is
measured in the same run.

Usage: ``python benchmarks/stl_variance.py [--draws 500] [--steps 300]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoMultivariateNormal

from bayesdepth import STLTrace_ELBO, data

POSTERIOR_LOC, POSTERIOR_SD = 0.65, 0.5**0.5


def conjugate_model(x):
    z = pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0))
    pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def conjugate_guide(x, shift=0.0):
    loc = pyro.param("loc", torch.tensor(POSTERIOR_LOC + shift * POSTERIOR_SD))
    log_scale = pyro.param("log_scale", torch.tensor(POSTERIOR_SD).log())
    pyro.sample("z", dist.Normal(loc, log_scale.exp()))


def blr_model(x, y, prior_scale, noise_scale):
    w = pyro.sample("w", dist.Normal(torch.zeros(x.shape[-1]), prior_scale).to_event(1))
    with pyro.plate("data", len(x)):
        pyro.sample("y", dist.Normal((x * w).sum(-1), noise_scale), obs=y)


def exact_blr_guide(problem, shift):
    """An AutoMultivariateNormal whose parameters are the exact posterior, mean shifted."""
    pyro.clear_param_store()
    guide = AutoMultivariateNormal(blr_model)
    args = (problem.x, problem.y, problem.prior_scale, problem.noise_scale)
    guide(*args)
    chol = torch.linalg.cholesky(problem.posterior_cov)
    scale = chol.diagonal()
    sd = problem.posterior_cov.diagonal().sqrt()
    with torch.no_grad():
        guide.loc.copy_(problem.posterior_mean + shift * sd)
        guide.scale = scale
        guide.scale_tril = chol / scale.unsqueeze(-1)  # L = diag(scale) @ unit_tril
    return guide, args


def total_variance(elbo, model, guide, args, draws):
    grads = []
    for seed in range(draws):
        pyro.set_rng_seed(seed)
        loss = elbo.differentiable_loss(model, guide, *args)
        params = [p for _, p in sorted(pyro.get_param_store().named_parameters())]
        if hasattr(guide, "parameters"):
            params = list(guide.parameters())
        flat = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
        grads.append(flat)
    return float(torch.stack(grads).var(0).sum())


def time_per_step(problem, steps: int, blocks: int = 10) -> dict[str, float]:
    """Median seconds per SVI step of each estimator, timed in interleaved blocks.

    Interleaving (block of Trace_ELBO steps, block of STL steps, ...) and taking medians keeps
    the ratio honest on a machine whose load changes during the run.
    """
    args = (problem.x, problem.y, problem.prior_scale, problem.noise_scale)
    store = pyro.get_param_store()
    runs = {}
    for name, elbo in (("Trace_ELBO", Trace_ELBO()), ("STLTrace_ELBO", STLTrace_ELBO())):
        pyro.set_rng_seed(0)
        with store.scope() as params:  # each estimator keeps its own parameters
            guide = AutoMultivariateNormal(blr_model)
            svi = SVI(blr_model, guide, pyro.optim.Adam({"lr": 0.01}), elbo)
            svi.step(*args)
        runs[name] = (svi, params, [])
    per_block = max(1, steps // blocks)
    for _ in range(blocks):
        for svi, params, times in runs.values():
            with store.scope(params):
                start = time.perf_counter()
                for _ in range(per_block):
                    svi.step(*args)
                times.append((time.perf_counter() - start) / per_block)
    return {name: statistics.median(times) for name, (_, _, times) in runs.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=500, help="gradient draws per cell")
    parser.add_argument("--steps", type=int, default=300, help="SVI steps timed per estimator")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    problem = data.linear_regression(num_points=100, dim=5, seed=0)

    print(f"Summed gradient variance over {args.draws} draws "
          "(guide mean shifted by k posterior sd)")
    print(f"{'problem':<22}{'shift':>6}{'Trace_ELBO':>14}{'STL':>14}{'ratio':>12}")
    for shift in (0.0, 0.5, 2.0):
        x = torch.tensor(1.3)
        cells = []
        for elbo in (Trace_ELBO(), STLTrace_ELBO()):
            pyro.clear_param_store()
            guide = lambda x, s=shift: conjugate_guide(x, s)  # noqa: E731
            cells.append(total_variance(elbo, conjugate_model, guide, (x,), args.draws))
        print(f"{'conjugate normal':<22}{shift:>6.1f}{cells[0]:>14.3e}{cells[1]:>14.3e}"
              f"{cells[1] / cells[0]:>12.2e}")
    for shift in (0.0, 0.5, 2.0):
        cells = []
        for elbo in (Trace_ELBO(), STLTrace_ELBO()):
            guide, fargs = exact_blr_guide(problem, shift)
            cells.append(total_variance(elbo, blr_model, guide, fargs, args.draws))
        print(f"{'linear regr. (d=5)':<22}{shift:>6.1f}{cells[0]:>14.3e}{cells[1]:>14.3e}"
              f"{cells[1] / cells[0]:>12.2e}")

    times = time_per_step(problem, args.steps)
    base, stl = times["Trace_ELBO"], times["STLTrace_ELBO"]
    print()
    print(f"{'estimator':<22}{'ms / SVI step':>14}{'ratio':>8}")
    print(f"{'Trace_ELBO':<22}{1e3 * base:>14.3f}{1.0:>8.2f}")
    print(f"{'STLTrace_ELBO':<22}{1e3 * stl:>14.3f}{stl / base:>8.2f}")


if __name__ == "__main__":
    main()
