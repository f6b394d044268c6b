"""Heavy-tailed gradient noise and Levy-driven escape (Simsekli et al. 2019; Zhou et al. 2020).

Part 1: the tail-index estimator of Mohammadi et al. (``heavy_tails.tail_index``; docs/theory.md
§6.5) on symmetric alpha-stable draws of known alpha (``heavy_tails.sample_symmetric_stable``,
Chambers-Mallows-Stuck), then
on the minibatch gradient noise ``g_B - grad L`` of a small MLP on scikit-learn's digits at
initialisation and after training (per-example gradients by ``torch.func.vmap(grad)``).

Part 2: escape from the basin ``U = h x^2 / 2`` on (-1, 1). Gaussian noise ``eps dW`` escapes
after a time exponential in ``h / eps^2`` (exact mean first-passage time by quadrature,
``escape.mean_first_passage_time``); alpha-stable noise ``eps dL^alpha`` after a time polynomial
in ``1/eps`` and independent of the depth h to leading order (simulated with
``heavy_tails.simulate_levy_sde``, against ``escape.levy_exit_time``; docs/theory.md §6.6).
Writes ``tail_index.png`` and ``exit_times.png``.

Run: ``python examples/heavy_tails.py [--quick] [--out runs/heavy_tails]``.
"""

from __future__ import annotations

from pathlib import Path

import _common
import matplotlib.pyplot as plt
import numpy as np
import torch
from bayesdepth.inference import escape, heavy_tails, noise

from bayesdepth.data import digits
from bayesdepth.plotting import save_figure

F64 = torch.float64
HIDDEN = 32


def mlp_loss(theta, x, y):
    """Cross-entropy of a 64-32-10 tanh MLP whose weights are the flat vector ``theta``."""
    d_in, h = x.shape[-1], HIDDEN
    w1 = theta[: d_in * h].reshape(d_in, h)
    b1 = theta[d_in * h : d_in * h + h]
    w2 = theta[d_in * h + h : d_in * h + h + h * 10].reshape(h, 10)
    b2 = theta[d_in * h + h + h * 10 :]
    logits = torch.tanh(x @ w1 + b1) @ w2 + b2
    return torch.nn.functional.cross_entropy(logits.unsqueeze(0), y.unsqueeze(0))


def minibatch_noise(grads, batch, draws, gen, chunk=1000):
    """``draws`` samples of ``g_B - grad L`` (batches iid with replacement), in chunks."""
    out = []
    for start in range(0, draws, chunk):
        idx = torch.randint(grads.shape[0], (min(chunk, draws - start), batch), generator=gen)
        out.append(grads[idx].mean(1) - grads.mean(0))
    return torch.cat(out)


def part1(out: Path, quick: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    k = 2500 if quick else 20_000
    print(f"tail index of symmetric alpha-stable draws (K = {k}):")
    for alpha in (1.2, 1.5, 1.8, 2.0):
        x = heavy_tails.sample_symmetric_stable(alpha, (20, k), generator=gen)
        est = heavy_tails.tail_index(x)
        print(f"  alpha = {alpha}: estimate {float(est.mean()):.3f} +- "
              f"{float(est.std()) / 20 ** 0.5:.3f}")
    data = digits(dtype=F64)
    xs, ys = data.x_train, data.y_train
    if quick:
        xs, ys = xs[:600], ys[:600]
    d_param = 64 * HIDDEN + HIDDEN + HIDDEN * 10 + 10
    theta = 0.1 * torch.randn(d_param, generator=gen, dtype=F64)
    coords = torch.randperm(d_param, generator=gen)[:256]  # a random subset of coordinates
    estimates = {}
    steps = 100 if quick else 3000
    for label in ("initialisation", f"after {steps} SGD steps"):
        grads = noise.per_example_grads(mlp_loss, theta, xs, ys)[:, coords]
        eps = minibatch_noise(grads, 32, k, gen)
        keep = eps.abs().amax(0) > 0
        estimates[label] = heavy_tails.tail_index(eps[:, keep].T).clamp(0, 2.5).numpy()
        print(f"MLP gradient noise at {label}: median tail index over "
              f"{int(keep.sum())} coordinates {np.median(estimates[label]):.3f}")
        for _ in range(steps):
            idx = torch.randint(xs.shape[0], (32,), generator=gen)
            g = torch.func.grad(lambda t, idx=idx: torch.func.vmap(
                mlp_loss, in_dims=(None, 0, 0))(t, xs[idx], ys[idx]).mean())(theta)
            theta = theta - 0.1 * g
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, est in estimates.items():
        ax.hist(est, bins=40, alpha=0.6, label=label)
    ax.axvline(2.0, color="k", ls=":", label="Gaussian (alpha = 2)")
    ax.set_xlabel("tail index estimate per coordinate")
    ax.set_ylabel("coordinates")
    ax.legend(fontsize=8)
    save_figure(fig, out / "tail_index.png")


def part2(out: Path, quick: bool) -> None:
    alpha = 1.5
    scales = [0.4, 0.3, 0.2] if quick else [0.4, 0.3, 0.2, 0.15, 0.1]
    chains, dt, steps = (300, 0.05, 4000) if quick else (1000, 0.02, 40_000)
    fig, (ax_l, ax_g) = plt.subplots(1, 2, figsize=(9, 4))
    inv = 1 / np.array(scales)
    for h, style in ((1.0, "-"), (2.0, "--")):
        gauss, levy, law = [], [], []
        for eps in scales:
            # Gaussian: exit from (-1, 1) from 0 = passage 0 -> 1 with a reflecting wall at 0
            gauss.append(escape.mean_first_passage_time(
                lambda x, h=h: h * x * x / 2, 0.0, 1.0, eps**2 / 2, lower=0.0))
            gen = torch.Generator().manual_seed(int(100 * eps))
            sim = heavy_tails.simulate_levy_sde(lambda x, h=h: -h * x,
                                                torch.zeros(chains, dtype=F64), alpha, eps, dt,
                                                steps, generator=gen, interval=(-1.0, 1.0))
            levy.append(escape.censored_mean_exit_time(sim.exit_time, steps * dt).mean)
            law.append(escape.levy_exit_time(alpha, eps, 1.0, 1.0))
            print(f"h = {h}, eps = {eps}: Gaussian exit {gauss[-1]:.4g}, "
                  f"Levy exit {levy[-1]:.4g} (law {law[-1]:.4g})")
        ax_g.semilogy(inv, gauss, "C0" + style, label=f"Gaussian, depth h={h}")
        ax_l.loglog(inv, levy, "C3o" + style, label=f"alpha-stable, depth h={h} (simulated)")
    ax_l.loglog(inv, law, "k:", label=f"law alpha/(eps^alpha c (...)), slope {alpha}")
    ax_l.set_title(f"alpha-stable noise (alpha={alpha}): polynomial")
    ax_g.set_title("Gaussian noise (quadrature): exponential")
    for ax in (ax_l, ax_g):
        ax.set_xlabel("1 / noise scale eps")
        ax.set_ylabel("mean exit time from (-1, 1)")
        ax.legend(fontsize=7)
    save_figure(fig, out / "exit_times.png")


def main(argv: list[str] | None = None) -> None:
    args = _common.example_parser(__doc__, "heavy_tails").parse_args(argv)
    out = _common.start(args)
    part1(out, args.quick)
    part2(out, args.quick)
    print(f"wrote {out / 'tail_index.png'}, {out / 'exit_times.png'}")


if __name__ == "__main__":
    main()
