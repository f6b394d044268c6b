"""SGD leaves a sharp basin under heavy-tailed gradient noise; Adam stays (Zhou et al. 2020).

The loss L = h theta^2 / 2 with h = 10 is a sharp basin of half-width w = 0.5; every gradient
carries symmetric alpha-stable noise (``StableNoisePotential``, alpha = 1.2). SGD's update
``-eta (h theta - eps S)`` is an Euler step of the Levy SDE dX = -h X dt + eps eta^(1 - 1/alpha)
dL^alpha with dt = eta, so its mean exit time is the Imkeller–Pavlyukevich law
(``escape.levy_exit_time``; docs/theory.md §6.6) divided by eta. Adam (``inference.Adam``,
bit-identical to ``torch.optim.Adam``) divides by sqrt(v): a single huge gradient moves it by at
most ``Adam.step_bound(t)`` (31.8 eta), and with its preconditioner q = sqrt(v) frozen the exit
time is multiplied by q^alpha (docs/theory.md §13.4).

Writes ``survival.png`` (fraction of chains still in the basin against the step) and
``jumps.png`` (the largest step of each sampler, with Adam's bound).

    python examples/adam_escape.py [--quick] [--out runs/adam_escape]
"""

from __future__ import annotations

import _common
import matplotlib.pyplot as plt
import numpy as np
import torch
from bayesdepth.inference import SGD, Adam, escape, sample
from bayesdepth.inference.sgd_potentials import StableNoisePotential

F64 = torch.float64
CURVATURE, WIDTH, ALPHA, SCALE = 10.0, 0.5, 1.2, 1.0


def first_exits(theta: torch.Tensor) -> torch.Tensor:
    """Step (1, 2, ...) at which each chain first leaves (-w, w); inf if it never does."""
    out = (theta.abs() >= WIDTH).any(-1)  # (chains, steps)
    steps = torch.arange(1, theta.shape[1] + 1, dtype=F64)
    return torch.where(out, steps, torch.tensor(float("inf"), dtype=F64)).amin(1)


def main(argv=None):
    parser = _common.example_parser(__doc__, "adam_escape")
    parser.add_argument("--lr", type=float, default=0.01, help="learning rate of both")
    args = parser.parse_args(argv)
    _common.start(args)
    chains, steps = (100, 600) if args.quick else (1000, 4000)
    lr = args.lr
    potential = StableNoisePotential(lambda x: 0.5 * CURVATURE * (x * x).sum(-1), dim=1,
                                     alpha=ALPHA, scale=SCALE)
    adam = Adam(lr)
    runs, exits, jumps = {}, {}, {}
    for name, sampler in (("SGD", SGD(lr)), ("Adam", adam)):
        runs[name] = sample(potential, sampler, num_chains=chains, num_draws=steps,
                            seed=args.seed)
        theta = runs[name].draws["theta"]
        exits[name] = first_exits(theta)
        path = torch.cat([torch.zeros(chains, 1, 1, dtype=F64), theta], 1)
        jumps[name] = (path[:, 1:] - path[:, :-1]).abs().amax((0, 2))
    scale = SCALE * lr ** (1 - 1 / ALPHA)  # SGD as an Euler step of the Levy SDE, dt = lr
    law_sgd = escape.levy_exit_time(ALPHA, scale, WIDTH, WIDTH) / lr
    v_hat = runs["Adam"].state.exp_avg_sq / (1 - adam.betas[1] ** steps)
    q = float(v_hat.sqrt().median())
    law_adam = escape.levy_exit_time(ALPHA, scale, WIDTH, WIDTH, preconditioner=q) / lr
    for name in runs:
        left = int(torch.isinf(exits[name]).sum())
        if chains - left >= 20:
            est = escape.censored_mean_exit_time(exits[name], float(steps))
            mean = f"mean exit step {est.mean:.4g} +- {est.standard_error:.2g}"
        else:
            mean = f"too few exits for a mean ({chains - left} in {steps} steps)"
        print(f"{name}: {mean}; {left}/{chains} chains never left; largest step "
              f"{float(jumps[name].max()) / lr:.3g} lr")
    print(f"SGD's Levy law: {law_sgd:.4g} steps; Adam's frozen preconditioner sqrt(v) = {q:.3g} "
          f"gives q^alpha = {q**ALPHA:.3g} times that: {law_adam:.4g} steps; Adam's step bound "
          f"{adam.step_bound(steps) / lr:.3g} lr")

    fig, ax = plt.subplots(figsize=(5.5, 4))
    k = np.arange(1, steps + 1)
    for name, color in (("SGD", "tab:red"), ("Adam", "tab:blue")):
        alive = (exits[name][None, :] > torch.as_tensor(k, dtype=F64)[:, None]).double().mean(1)
        ax.plot(k, alive, color=color, label=f"{name} (lr={lr}), {chains} chains")
    ax.plot(k, np.exp(-k / law_sgd), "k:", label="exp(-k / Levy law), SGD")
    ax.set_xlabel("step k")
    ax.set_ylabel("fraction still in the sharp basin")
    ax.set_title(f"escape from |theta| < {WIDTH}, h = {CURVATURE}, alpha = {ALPHA}")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    _common.save(fig, args, "survival.png")

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, color in (("SGD", "tab:red"), ("Adam", "tab:blue")):
        ax.semilogy(k, jumps[name] / lr, color=color, lw=0.6, label=f"{name}: max |step| / lr")
    bound = [adam.step_bound(int(t)) / lr for t in k]
    ax.semilogy(k, bound, "k--", label="Adam's bound (31.8 at large t)")
    ax.set_xlabel("step k")
    ax.set_ylabel("largest |step| over chains, in units of lr")
    ax.legend(fontsize=8)
    _common.save(fig, args, "jumps.png")


if __name__ == "__main__":
    main()
