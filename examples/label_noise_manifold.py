"""Label-noise SGD slides along the zero-loss manifold to its flattest point (Li, Wang, Arora 2022).

The model f(u, v) = u v fits y = 1 exactly on the hyperbola u v = 1, where the Hessian of
L = (f - y)^2 / 2 has trace u^2 + v^2. SGD with fresh label noise y + sigma eps (a
``LeastSquaresPotential`` with ``label_noise=sigma``) stays next to the hyperbola and slides along
it towards (1, 1), the flattest point, following the slow flow
dX/dt = -(sigma^2 / 4) P_T grad tr grad^2 L in the time t = eta^2 k
(``bayesdepth.inference.label_noise.limiting_flow``; docs/theory.md §13.2); plain SGD without
label noise stays where it landed. The finite-eta correction d log D / dt = -2 sigma^2 /
(2 - eta tr H) of the imbalance D = u^2 - v^2 explains the small extra drift.

Writes ``hyperbola.png`` (trajectories in the (u, v) plane against the flow) and
``sharpness.png`` (tr H over time: chains, flow, finite-eta correction).

    python examples/label_noise_manifold.py [--quick] [--out runs/label_noise_manifold]
"""

from __future__ import annotations

import math

import _common
import matplotlib.pyplot as plt
import numpy as np
import torch
from bayesdepth.inference import SGD, label_noise, sample
from bayesdepth.inference.sgd_potentials import LeastSquaresPotential
from torchdiffeq import odeint

F64 = torch.float64


def product(theta, x):
    return theta[0] * theta[1] * x


def finite_eta_log_imbalance(start, times, eta, sigma):
    """log D(t) by d log D / dt = -2 sigma^2 / (2 - eta tr H), tr H = sqrt(D^2 + 4)."""

    def rate(_, log_d):
        d = torch.exp(log_d)
        return -2 * sigma**2 / (2 - eta * torch.sqrt(d * d + 4))

    d0 = start[0] ** 2 - start[1] ** 2
    return odeint(rate, torch.log(d0).reshape(1), times, rtol=1e-10, atol=1e-12)[:, 0]


def main(argv=None):
    parser = _common.example_parser(__doc__, "label_noise_manifold")
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--sigma", type=float, default=1.0, help="label-noise scale")
    args = parser.parse_args(argv)
    _common.start(args)
    chains, steps = (200, 1500) if args.quick else (2000, 5000)
    eta, sigma = args.lr, args.sigma
    start = torch.tensor([3.0, 1 / 3], dtype=F64)
    one = torch.ones(1, dtype=F64)
    noisy = LeastSquaresPotential(product, one, one, label_noise=sigma, init=start)
    plain = LeastSquaresPotential(product, one, one, init=start)
    every = max(steps // 100, 1)
    runs = {name: sample(pot, SGD(eta), num_chains=chains, num_draws=steps // every, thin=every,
                         seed=args.seed).draws["theta"]
            for name, pot in (("label noise", noisy), ("no label noise", plain))}
    k = every * torch.arange(1, steps // every + 1)
    t = (eta**2 * k).to(F64)
    times = torch.cat([torch.zeros(1, dtype=F64), t])
    flow = label_noise.limiting_flow(noisy, start, times)
    flow_sharpness = label_noise.hessian_trace(noisy, flow)
    corrected_log_d = finite_eta_log_imbalance(start, times, eta, sigma)
    corrected = torch.sqrt(torch.exp(2 * corrected_log_d) + 4)
    theta = runs["label noise"]
    sharp = label_noise.hessian_trace(noisy, theta.reshape(-1, 2)).reshape(theta.shape[:2])
    log_d = torch.log((theta[..., 0] ** 2 - theta[..., 1] ** 2) / (start[0] ** 2 - start[1] ** 2))
    mean, se = float(log_d[:, -1].mean()), float(log_d[:, -1].std()) / math.sqrt(chains)
    flow_log_d = torch.log(flow[:, 0] ** 2 - flow[:, 1] ** 2)
    print(f"eta = {eta}, sigma = {sigma}, {chains} chains, K = {steps} (t = {float(t[-1]):.3f}):")
    print(f"  E log D_K - log D_0 = {mean:.4f} +- {se:.4f}; flow "
          f"{float(flow_log_d[-1] - flow_log_d[0]):.4f}; finite-eta correction "
          f"{float(corrected_log_d[-1] - corrected_log_d[0]):.4f}")
    plain_sharp = float(label_noise.hessian_trace(plain, runs["no label noise"][:, -1]).mean())
    print(f"  tr H: start {float(flow_sharpness[0]):.3f}, chains at the end "
          f"{float(sharp[:, -1].mean()):.3f}, flow {float(flow_sharpness[-1]):.3f}; without label "
          f"noise {plain_sharp:.3f}")

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    u = np.linspace(0.25, 3.6, 200)
    ax.plot(u, 1 / u, color="grey", lw=1, label="zero-loss manifold u v = 1")
    for i in range(min(5, chains)):
        ax.plot(theta[i, :, 0], theta[i, :, 1], lw=0.6, alpha=0.7)
    ax.plot(flow[:, 0], flow[:, 1], "k--", lw=2, label="limiting flow (t = eta^2 k)")
    ax.scatter([3.0, 1.0], [1 / 3, 1.0], c=["tab:red", "k"], zorder=3, s=25)
    ax.annotate("start (sharp)", (3.0, 1 / 3), textcoords="offset points", xytext=(-30, 10))
    ax.annotate("flattest (1, 1)", (1.0, 1.0), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel("u")
    ax.set_ylabel("v")
    ax.set_xlim(0.5, 3.6)
    ax.set_ylim(0.2, 2.0)
    ax.set_title(f"label-noise SGD (eta={eta}, sigma={sigma}): 5 trajectories")
    ax.legend(fontsize=8)
    _common.save(fig, args, "hyperbola.png")

    fig, ax = plt.subplots(figsize=(5.5, 4))
    m, s = sharp.mean(0), sharp.std(0)
    ax.fill_between(t, m - s, m + s, alpha=0.25, label="chains: mean +- sd")
    ax.plot(t, m, lw=1.5, label=f"label-noise SGD ({chains} chains)")
    ax.plot(times, flow_sharpness, "k--", label="limiting flow")
    ax.plot(times, corrected, "k:", label="finite-eta correction")
    ax.axhline(plain_sharp, color="tab:red", lw=1, label="SGD without label noise")
    ax.axhline(2.0, color="grey", lw=0.8)
    ax.set_xlabel("t = eta^2 k")
    ax.set_ylabel("tr H = u^2 + v^2")
    ax.legend(fontsize=8)
    _common.save(fig, args, "sharpness.png")


if __name__ == "__main__":
    main()
