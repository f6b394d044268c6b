"""Closed-form Langevin predictions against simulating SGD; torchsde SDEs against SGD chains.

Table 1: for d from 10 to 2000, the time of the exact discrete stationary covariance of SGD
(``langevin.stationary_covariance``: one ``eigh``, O(d^3) time and O(d^2) memory), of the
phase-space law with momentum (``momentum.phase_space_covariance``: ``eigh`` plus d^2 batched 4x4
solves), and of scipy's ``solve_discrete_lyapunov`` (the O(d^3) Bartels-Stewart/bilinear
reference), against the time SGD chains need to estimate the same covariance to 5% relative
Frobenius error (measured error after a fixed run, extrapolated with error ∝ 1/sqrt(steps)).

Table 2: cost per step of an SDE solved by torchsde (SME1, SME2, the stochastic modified flow
with one Brownian motion per data point, Euler) against one step of the SGD sampler on the same
data set and the same number of paths/chains.

Run: ``python benchmarks/langevin.py [--quick]``. Peak memory is the process's maximum resident
set size so far (``resource.getrusage``), so it only grows down the table.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import scipy.linalg as sl
import torch
from bayesdepth.inference import SGD, SGDProblem, langevin, momentum, sdes
from bayesdepth.inference.statistics import relative_frobenius_error

F64 = torch.float64


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def problem(d, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=F64))
    a = q @ torch.diag(torch.linspace(0.5, 2.0, d, dtype=F64)) @ q.T
    r = torch.randn(d, d, generator=gen, dtype=F64) / d**0.5
    c = r @ r.T + 0.1 * torch.eye(d, dtype=F64)
    return (a + a.T) / 2, c


def sgd_time_to_accuracy(a, c, lr, chains, steps, target):
    """Run SGD chains (Gaussian gradient noise with covariance c), return (seconds, error)."""
    d = a.shape[0]
    root = torch.linalg.cholesky(c)
    gen = torch.Generator().manual_seed(1)

    def grad_fn(params, generator):
        z = torch.randn(params.shape, generator=generator, dtype=F64)
        return params @ a - z @ root.T, params.sum(-1)

    exact = langevin.stationary_covariance(SGDProblem(a, c, lr=lr))
    sampler = SGD(lr)
    t0 = time.perf_counter()
    state = sampler.init(torch.zeros(chains, d, dtype=F64))
    for _ in range(200):  # burn-in: 200 lr * lambda_min = 20 relaxation times
        state, _ = sampler.step(state, grad_fn, gen)
    acc = torch.zeros(d, d, dtype=F64)
    for _ in range(steps):
        state, _ = sampler.step(state, grad_fn, gen)
        acc += state.params.T @ state.params
    elapsed = time.perf_counter() - t0
    err = relative_frobenius_error(acc / (steps * chains), exact)
    # error ∝ 1/sqrt(samples): steps needed for the target, burn-in included once
    per_step = elapsed / (steps + 200)
    need = steps * (err / target) ** 2
    return per_step * (need + 200), err


def table1(dims, quick):
    lr = 0.2
    print("\nTable 1: closed form vs SGD simulation (seconds; ratio = SGD / eigh closed form)")
    print(f"{'d':>6} {'eigh S':>9} {'scipy S':>9} {'momentum P':>11} {'SGD to 5%':>11} "
          f"{'ratio':>9} {'SGD err':>8} {'peak MB':>8}")
    for d in dims:
        a, c = problem(d)
        plain = SGDProblem(a, c, lr=lr)
        t_eig, s = timed(lambda p=plain: langevin.stationary_covariance(p), 3)
        t_sp = float("nan")
        if d <= 1000:  # scipy's O(d^3) solver takes minutes beyond
            m = np.eye(d) - lr * a.numpy()
            t_sp, s_ref = timed(
                lambda m=m, c=c: sl.solve_discrete_lyapunov(m, lr**2 * c.numpy()), 1)
            assert np.abs(s.numpy() - s_ref).max() < 1e-8 * np.abs(s_ref).max()
        if d <= 1000 or not quick:
            t_mom, _ = timed(lambda p=plain: momentum.phase_space_covariance(
                p.replace(momentum=0.9)), 1)
        else:
            t_mom = float("nan")
        steps = 200 if quick else (1000 if d <= 500 else 300)
        t_sgd, err = sgd_time_to_accuracy(a, c, lr, 16, steps, 0.05)
        print(f"{d:>6} {t_eig:>9.4f} {t_sp:>9.4f} {t_mom:>11.4f} {t_sgd:>11.2f} "
              f"{t_sgd / t_eig:>9.0f} {err:>8.3f} {rss_mb():>8.0f}")


def table2(quick):
    d, n, paths = 10, 64, 256
    steps = 50 if quick else 200
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=gen, dtype=F64)
    y = x @ torch.randn(d, generator=gen, dtype=F64) + 0.5 * torch.randn(n, generator=gen,
                                                                           dtype=F64)

    def losses(theta):  # (M, d) -> (M, N)
        return 0.5 * (theta @ x.T - y) ** 2

    def grad_fn(params, generator):
        idx = torch.randint(n, (params.shape[0], 1), generator=generator)
        xb = x[idx[:, 0]]
        return xb * ((xb * params).sum(-1) - y[idx[:, 0]]).unsqueeze(-1), params.sum(-1)

    lr = 0.05
    sampler = SGD(lr)
    state = sampler.init(torch.zeros(paths, d, dtype=F64))

    def run_sgd():
        s = state
        for _ in range(steps):
            s, _ = sampler.step(s, grad_fn, gen)

    t_sgd, _ = timed(run_sgd, 2)
    print(f"\nTable 2: per-step cost, d={d}, N={n} data points, {paths} paths/chains")
    print(f"{'method':>34} {'ms/step':>9} {'ratio':>7}")
    print(f"{'SGD sampler (baseline)':>34} {1e3 * t_sgd / steps:>9.3f} {1.0:>7.1f}")
    y0 = torch.zeros(paths, d, dtype=F64)
    cases = [
        ("torchsde SME1, Euler", sdes.SME(losses, n, lr, 1, order=1), y0),
        ("torchsde SME2, Euler", sdes.SME(losses, n, lr, 1, order=2), y0),
        ("torchsde SMF (2 points), Euler", sdes.StochasticModifiedFlow(losses, n, lr, 1),
         torch.zeros(paths, 2 * d, dtype=F64)),
    ]
    for name, sde, start in cases:
        t, _ = timed(lambda sde=sde, start=start: sdes.simulate(
            sde, start, [0.0, steps * lr], dt=lr, seed=0), 2)
        print(f"{name:>34} {1e3 * t / steps:>9.3f} {t / t_sgd:>7.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    dims = [10, 100, 500] if args.quick else [10, 100, 500, 1000, 2000]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float64, CPU")
    table1(dims, args.quick)
    table2(args.quick)


if __name__ == "__main__":
    main()
