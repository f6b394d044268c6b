"""Which minimum SGD picks: degenerate minima, basin masses, Eyring–Kramers, the tail-index pitfall.

Prints the numbers of docs/theory.md §13 and writes two figures:

1. A degenerate minimum H = diag(2, 1, 0): the closed forms return the Lyapunov law of the range
   block, and SGD chains diffuse along the null direction at the rate
   ``degenerate.null_space_diffusion`` predicts (§13.1).
2. The tilted double well L = (x^2 - 1)^2 (1 + tanh(x) / 2): stationary basin masses
   (``fokker_planck.basin_masses``), flat / sharp -> sqrt(11.046 / 4.954) = 1.4933 as T -> 0,
   the same for every (lr, batch size) with the same lr / B; the spectral gap against the sum of
   the Eyring–Kramers rates (§13.3). Figure ``basin_masses.png``.
3. A sheared 2-D double well: simulated mean exit time against the Eyring–Kramers law.
4. Gaussian coordinates with log-normal scales pooled into the tail-index estimator give 1.80
   instead of 2; standardising per coordinate gives 2 again (§13.5). Figure
   ``tail_index_pooling.png``.

    python examples/which_minimum.py [--quick] [--out runs/which_minimum]
"""

from __future__ import annotations

import math
import warnings

import _common
import matplotlib.pyplot as plt
import numpy as np
import torch
from bayesdepth.inference import (
    SGD,
    SGDProblem,
    degenerate,
    escape,
    fokker_planck,
    heavy_tails,
    langevin,
    sample,
)
from bayesdepth.inference.problem import DegenerateMinimumWarning
from bayesdepth.inference.sgd_potentials import QuadraticPotential

F64 = torch.float64


def degenerate_minimum(quick: bool, seed: int) -> None:
    a = torch.diag(torch.tensor([2.0, 1.0, 0.0], dtype=F64))
    r = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.5, 0.4, 0.9]], dtype=F64)
    problem = SGDProblem(a, r @ r.T, lr=0.3, batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateMinimumWarning)
        s = langevin.stationary_covariance(problem)
    rate = float(degenerate.null_space_diffusion(problem).rate[2, 2])
    chains, steps = (500, 200) if quick else (4000, 400)
    theta = sample(QuadraticPotential(problem), SGD(problem.lr), num_chains=chains,
                   num_draws=steps, seed=seed).draws["theta"]
    print(f"1. degenerate minimum H = diag(2, 1, 0): range law diag {np.diag(s)[:2].round(4)}, "
          f"null rate eta^2 phi C_33 = {rate:.4f} per step")
    for k in (steps // 4, steps):
        var = float(theta[:, k - 1, 2].var())
        se = math.sqrt(2 / (chains - 1))
        print(f"   Var(theta_3) after {k} steps / (k rate) = {var / (k * rate):.4f} +- {se:.4f}")
    cov = theta[:, steps // 4 :, :2].reshape(-1, 2).T.cov()
    print(f"   chains' range covariance diag {cov.diagonal().numpy().round(4)}")


def tilted(x):
    return (x**2 - 1) ** 2 * (1 + torch.tanh(x) / 2)


def basins(args) -> None:
    interval = (-2.2, 2.0)
    hess = torch.func.jacrev(torch.func.jacrev(tilted))
    curv = {m: float(hess(torch.tensor(m, dtype=F64))) for m in (-1.0, 1.0)}
    limit = math.sqrt(curv[1.0] / curv[-1.0])
    temps = [0.4, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05, 0.035, 0.025]
    ratios, gaps = [], []
    for t in temps:
        out = fokker_planck.basin_masses(tilted, t, interval)
        saddle = out.boundaries[0]
        barrier = float(tilted(torch.tensor(saddle, dtype=F64)))
        h_saddle = float(hess(torch.tensor(saddle, dtype=F64)))
        rates = sum(escape.eyring_kramers_rate(curv[m], h_saddle, barrier, t) for m in curv)
        ratios.append(out.masses[0] / out.masses[1])
        gaps.append(fokker_planck.spectral_gap(tilted, t, interval) / rates)
    print(f"2. tilted double well: curvatures {curv[-1.0]:.4f} (flat), {curv[1.0]:.4f} (sharp), "
          f"barrier {barrier:.4f} at x = {saddle:.4f}; limit sqrt ratio {limit:.4f}")
    for t, r, g in zip(temps, ratios, gaps):
        print(f"   T = {t:<6}: mass flat / sharp = {r:.4f}, gap / sum of Eyring-Kramers rates "
              f"= {g:.4f}")
    same = [fokker_planck.basin_masses(tilted, fokker_planck.sgd_diffusion(lr, b, 2.0),
                                       interval).masses[0] for lr, b in ((0.1, 10), (0.4, 40))]
    print(f"   SGD with c = 2: flat mass {same[0]:.6f} at (lr, B) = (0.1, 10) and {same[1]:.6f} "
          f"at (0.4, 40) (T = lr c / (2 B) = 0.01)")
    fig, (ax_p, ax_r) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.linspace(*interval, 600)
    for t in (0.2, 0.1, 0.05):
        dens = fokker_planck.stationary_density(tilted, t, interval)
        ax_p.plot(dens.x, dens.density, label=f"T = {t}")
    ax_p.plot(x, tilted(torch.tensor(x)).numpy(), "k:", lw=0.8, label="loss L")
    ax_p.set_ylim(0, 3)
    ax_p.set_xlabel("theta")
    ax_p.set_ylabel("stationary density")
    ax_p.legend(fontsize=8)
    inv = 1 / np.array(temps)
    ax_r.plot(inv, ratios, "o-", label="basin mass flat / sharp")
    ax_r.axhline(limit, color="C0", ls="--", lw=0.8, label=f"sqrt(L''_sharp / L''_flat) = "
                 f"{limit:.4f}")
    ax_r.plot(inv, gaps, "s-", color="C3", label="spectral gap / sum of E-K rates")
    ax_r.axhline(1.0, color="C3", ls="--", lw=0.8)
    ax_r.set_xlabel("1 / T")
    ax_r.legend(fontsize=8)
    _common.save(fig, args, "basin_masses.png")


def sheared(z):
    x, y = z[..., 0], z[..., 1]
    return (x * x - 1) ** 2 * (1 + x * x) + 2.0 * (y - 0.5 * x * x) ** 2


def two_dimensional_exit(quick: bool, seed: int) -> None:
    temperature, dt, chains = 0.2, 0.004, 2000 if quick else 20_000
    left = torch.tensor([-1.0, 0.5], dtype=F64)
    hess = torch.func.jacrev(torch.func.jacrev(sheared))
    rate = escape.eyring_kramers_rate(hess(left), hess(torch.zeros(2, dtype=F64)), 1.0,
                                      temperature)
    grad = torch.func.vmap(torch.func.grad(sheared))
    steps = int(0.15 / rate / dt)
    out = heavy_tails.simulate_levy_sde(lambda z: -grad(z), left.repeat(chains, 1), 2.0,
                                        math.sqrt(temperature), dt, steps,
                                        generator=torch.Generator().manual_seed(seed),
                                        inside=lambda z: z[:, 0] < 1.0)
    est = escape.censored_mean_exit_time(out.exit_time, steps * dt, tail_from=5.0)
    print(f"3. sheared 2-D double well at T = {temperature}: Eyring-Kramers mean exit time "
          f"{1 / rate:.2f}, simulated {est.mean:.2f} +- {est.standard_error:.2f} "
          f"(ratio {est.mean * rate:.3f}, {chains} chains)")


def pooled_tail_index(args) -> None:
    gen = torch.Generator().manual_seed(args.seed)
    k1, s = 100, 1.0
    draws, coords = (50, 2000) if args.quick else (200, 10_000)
    scales = torch.exp(s * torch.randn(draws, coords, generator=gen, dtype=F64) / 2)
    pooled = heavy_tails.tail_index(scales * torch.randn(draws, coords, generator=gen,
                                                         dtype=F64), k1)
    fixed = torch.exp(s * torch.randn(coords, generator=gen, dtype=F64) / 2)
    x = fixed * torch.randn(5 * draws, coords, generator=gen, dtype=F64)
    standardised = heavy_tails.tail_index(x, k1, per_coordinate=True)

    def harmonic(e):
        return 1 / float((1 / e).mean()), float((1 / e).std()) / math.sqrt(e.numel()) * float(
            (1 / e).mean()) ** -2

    predicted = 1 / (0.5 + s**2 / (4 * math.log(k1)))
    (p, pse), (q, qse) = harmonic(pooled), harmonic(standardised)
    print(f"4. tail index of Gaussian coordinates, ln sigma^2 ~ N(0, {s}^2), K1 = {k1}: pooled "
          f"{p:.3f} +- {pse:.3f} (predicted {predicted:.3f}); per coordinate {q:.3f} +- {qse:.3f}")
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.hist(pooled.numpy(), bins=30, alpha=0.6, label="pooled coordinates")
    ax.hist(standardised.numpy(), bins=30, alpha=0.6, label="standardised per coordinate")
    ax.axvline(predicted, color="C0", ls="--", label=f"1 / (1/2 + s^2 / (4 ln K1)) = "
               f"{predicted:.2f}")
    ax.axvline(2.0, color="k", ls=":", label="Gaussian: 2")
    ax.set_xlabel("tail-index estimate per draw")
    ax.legend(fontsize=8)
    _common.save(fig, args, "tail_index_pooling.png")


def main(argv=None):
    args = _common.example_parser(__doc__, "which_minimum").parse_args(argv)
    _common.start(args)
    degenerate_minimum(args.quick, args.seed)
    basins(args)
    two_dimensional_exit(args.quick, args.seed + 1)
    pooled_tail_index(args)


if __name__ == "__main__":
    main()
