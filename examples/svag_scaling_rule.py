"""SVAG converging to the SDE, and where the linear scaling rule breaks (Li, Malladi, Arora 2021).

Part 1, a quadratic whose Hessian and gradient-noise covariance do not commute: SVAG(l) chains
(``bayesdepth.inference.SVAG``) against the exact law ``A S + S A - (eta/l) A S A = (eta/B) C``;
the gap ``tr S / tr S_SDE - 1`` to the SDE's stationary law halves with every doubling of l.

Part 2, Bayesian linear regression: a *single* small-batch SGD run (``SGD(noise_stats=True)``
reports unbiased estimates of ``|grad L|^2`` and ``tr Cov(g_B)``) gives the noise-to-signal ratio
``G/N`` (docs/theory.md §3.4). Scaling ``(eta, B) -> (kappa eta, kappa B)`` leaves the SDE
unchanged but multiplies ``G/N`` by about kappa, and ``E_SGD[L] / E_SDE[L] = 1 + G/N``: the
rule's error is predicted to be ``kappa G/N``. The prediction is checked against the exact
stationary moments of SGD on the regression at every kappa. Writes ``svag_gap.png``,
``scaling_rule.png``, ``noise_to_signal.png``.

Run: ``python examples/svag_scaling_rule.py [--quick] [--out runs/svag_scaling_rule]``.
"""

from __future__ import annotations

import math
from pathlib import Path

import _common
import matplotlib.pyplot as plt
import torch
from bayesdepth.inference import SGD, SVAG, SGDProblem, langevin, noise, sample
from bayesdepth.inference.plots import plot_noise_to_signal, plot_svag_gap
from bayesdepth.inference.regression import linear_regression_moments
from bayesdepth.inference.sgd_potentials import LinearRegressionPotential

from bayesdepth.data import linear_regression

F64 = torch.float64


def quadratic():
    a = torch.diag(torch.tensor([0.5, 2.0], dtype=F64))
    c, s = math.cos(0.6), math.sin(0.6)
    r = torch.tensor([[c, -s], [s, c]], dtype=F64)
    noise_cov = r @ torch.diag(torch.tensor([3.0, 0.3], dtype=F64)) @ r.T
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(8, 2, generator=gen, dtype=F64)
    z = z - z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(z.T @ z / 8)).T
    return a, noise_cov, z @ torch.linalg.cholesky(noise_cov).T


def run_svag(a, b, lr, l, chains, steps, seed):
    def grad_fn(params, generator):
        idx = torch.randint(b.shape[0], (params.shape[0], 1), generator=generator)
        return params @ a - b[idx].mean(1), params.sum(-1)

    sampler, gen = SVAG(lr, l=l), torch.Generator().manual_seed(seed)
    state = sampler.init(torch.zeros(chains, 2, dtype=F64))
    burn = int(20 * l / (lr * 0.5))
    draws = torch.empty(chains, steps, 2, dtype=F64)
    for k in range(burn + steps * int(l)):
        state, _ = sampler.step(state, grad_fn, gen)
        if k >= burn and (k - burn) % int(l) == 0:
            draws[:, (k - burn) // int(l)] = state.params
    return draws


def part1(out: Path, quick: bool) -> None:
    a, c, b = quadratic()
    lr = 0.4
    ls = [1, 2, 4] if quick else [1, 2, 4, 8, 16]
    chains, steps = (200, 200) if quick else (2000, 1000)
    problem = SGDProblem(a, c, lr=lr)
    sde = langevin.stationary_covariance(problem, discrete=False)
    closed, sim, err = [], [], []
    for l in ls:
        closed.append(float(torch.trace(langevin.svag_covariance(problem, l))
                            / torch.trace(sde)) - 1)
        draws = run_svag(a, b, lr, l, chains, steps, seed=l)
        per = (draws**2).sum(-1).mean(1) / float(torch.trace(sde)) - 1
        sim.append(float(per.mean()))
        err.append(float(per.std()) / math.sqrt(chains))
        print(f"l = {l:3d}: gap to SDE closed form {closed[-1]:.4f}, "
              f"SVAG chains {sim[-1]:.4f} +- {err[-1]:.4f}")
    path = plot_svag_gap(ls, closed, out / "svag_gap.png", simulated=sim, errors=err,
                         title=f"SVAG on a quadratic, lr={lr}")
    print(f"wrote {path}")


def part2(args) -> None:
    out, quick = args.out, args.quick
    data = linear_regression()
    x, s = data.x, data.noise_scale
    n = x.shape[0]
    lr, batch = 0.01, 1
    steps = 1500 if quick else 6000
    chains = 8 if quick else 64
    start = data.posterior_mean + 5.0  # start far from the optimum: G/N falls as SGD converges
    run = sample(LinearRegressionPotential(data, batch), SGD(lr, noise_stats=True),
                 num_chains=chains, num_draws=steps, init=start.expand(chains, -1).clone(),
                 seed=0)
    sq, var = run.stats["grad_sq"].mean(0), run.stats["grad_noise"].mean(0)
    window = 200
    smooth = torch.nn.functional.avg_pool1d
    ratio = (smooth(sq[None, None], window, 1) / smooth(var[None, None], window, 1))[0, 0]
    p1 = plot_noise_to_signal(torch.arange(ratio.numel()) + window, ratio.clamp_min(1e-3),
                              out / "noise_to_signal.png",
                              title=f"G/N along SGD (lr={lr}, B={batch})")
    tail = steps // 2
    est = noise.two_batch_estimate({k: run.stats[k][:, tail:] for k in ("grad_sq", "grad_noise")})
    gn = 1 / est.noise_over_signal
    print(f"stationary G/N from one run (lr={lr}, B={batch}): {gn:.4f} (N/G = "
          f"{est.noise_over_signal:.1f} +- {est.noise_over_signal_se:.1f}) -> the linear "
          f"scaling rule should hold while kappa << {1 / gn:.0f}")
    # exact stationary G/N: G = tr(A S A), N = tr E[Cov g_B(theta)] = tr(C_* + mean_n K_n S K_n) / B
    problem = SGDProblem.from_linear_regression(data, lr=lr, batch_size=batch)
    a, c_star = problem.hessian, problem.noise_cov  # at the optimum (the posterior mean)
    s_sgd = linear_regression_moments(data, problem).covariance
    k = torch.einsum("ni,nj->nij", x, x) / s**2 - x.T @ x / (n * s**2)
    noise_tr = float(torch.trace(c_star + torch.einsum("nij,jk,nkl->il", k, s_sgd, k) / n)) / batch
    print(f"exact stationary G/N from the closed-form moments: "
          f"{float(torch.trace(a @ s_sgd @ a)) / noise_tr:.4f}")
    # the SDE's law (same state-dependent noise) is invariant under the scaling rule
    s_sde = linear_regression_moments(data, problem, discrete=False).covariance
    e_sde = float(torch.trace(a @ s_sde))
    kappas, measured = [], []
    for kappa in [1, 2, 4, 8, 16, 32, 64, 100]:
        scaled = problem.replace(lr=kappa * lr, batch_size=kappa * batch)
        try:
            sk = linear_regression_moments(data, scaled).covariance
        except ValueError:
            break
        kappas.append(kappa)
        measured.append(float(torch.trace(a @ sk)) / e_sde - 1)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.loglog(kappas, measured, "o-", label="exact: E_SGD[L] / E_SDE[L] - 1")
    ax.loglog(kappas, [k * gn for k in kappas], "k--", label="predicted: kappa G/N (one run)")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("scaling kappa: (lr, B) -> (kappa lr, kappa B)")
    ax.set_ylabel("relative error of the scaling rule")
    ax.legend(fontsize=8)
    for k, m in zip(kappas, measured):
        print(f"kappa = {k:3d}: exact error {m:.4f}, predicted kappa G/N = {k * gn:.4f}")
    print(f"wrote {p1}")
    _common.save(fig, args, "scaling_rule.png")


def main(argv: list[str] | None = None) -> None:
    parser = _common.example_parser(__doc__, "svag_scaling_rule")
    args = parser.parse_args(argv)
    _common.start(args)
    part1(args.out, args.quick)
    part2(args)


if __name__ == "__main__":
    main()
