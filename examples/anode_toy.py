"""Why a neural ODE fails where an augmented one succeeds (Dupont, Doucet, Teh 2019, figs 1-4).

1. The 1-D map g(-1) = 1, g(1) = -1. A NODE's flow on the line cannot let trajectories cross, so it
   squeezes both points towards 0; an ANODE with one extra dimension goes around.
2. Concentric annuli in 2-D: decision boundaries of a NODE and an ANODE (p = 1) trained alike.

    python examples/anode_toy.py [--quick] [--out runs/anode_toy]
"""

from __future__ import annotations

import _common
import matplotlib.pyplot as plt
import torch

from bayesdepth import data
from bayesdepth.anode import AugmentedNeuralODE, train_anode
from bayesdepth.metrics import accuracy


def one_d_flows(steps: int, seed: int):
    x, y = data.anode_1d_map()
    models = {}
    for p in (0, 1):
        model = AugmentedNeuralODE(1, 1, augment_dim=p, hidden=16, readout="identity", seed=seed)
        train_anode(model, x, y, loss="mse", steps=steps, lr=1e-2, seed=seed)
        models[p] = model
    return x, y, models


def plot_1d(x, y, models, args):
    times = torch.linspace(0, 1, 50)
    starts = torch.cat([x, torch.linspace(-1.5, 1.5, 9).unsqueeze(-1)])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    with torch.no_grad():
        node_traj = models[0].flow(starts, times)[..., 0]  # (T, n)
        anode_traj = models[1].flow(starts, times)  # (T, n, 2)
    for k in range(starts.shape[0]):
        style = {"lw": 2.5} if k < 2 else {"lw": 0.8, "alpha": 0.5}
        color = ("tab:red", "tab:blue")[k] if k < 2 else "grey"
        axes[0].plot(times, node_traj[:, k], color=color, **style)
        axes[1].plot(times, anode_traj[:, k, 0], color=color, **style)
        axes[2].plot(anode_traj[:, k, 0], anode_traj[:, k, 1], color=color, **style)
    for ax in axes[:2]:
        ax.scatter([1, 1], y.squeeze(), marker="*", s=150, c=["tab:red", "tab:blue"], zorder=3)
        ax.set_xlabel("t (depth)")
        ax.set_ylabel("h(t)  (first coordinate)")
    with torch.no_grad():
        mse = [torch.mean((m(x) - y) ** 2).item() for m in (models[0], models[1])]
    axes[0].set_title(f"NODE: trajectories cannot cross (MSE {mse[0]:.2f})")
    axes[1].set_title(f"ANODE p=1, first coordinate (MSE {mse[1]:.3f})")
    axes[2].set_title("ANODE p=1: the flow in the (h_1, h_2) plane")
    axes[2].set_xlabel("h_1")
    axes[2].set_ylabel("h_2 (augmented, starts at 0)")
    _common.save(fig, args, "flows_1d.png")
    return mse


def annuli_boundaries(num_points: int, steps: int, args, resolution: int = 120):
    seed = args.seed
    x, y = data.annuli(num_points=num_points, seed=seed)
    grid = torch.linspace(-2, 2, resolution)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    pts = torch.stack([gx.flatten(), gy.flatten()], -1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    results = {}
    for ax, (name, p, hidden) in zip(axes, (("NODE", 0, 32), ("ANODE p=1", 1, 24))):
        model = AugmentedNeuralODE(2, 2, augment_dim=p, hidden=hidden, seed=seed)
        history = train_anode(model, x, y, steps=steps, lr=1e-2, batch_size=128, seed=seed)
        with torch.no_grad():
            acc = accuracy(model(x).softmax(-1), y)
            prob = model(pts).softmax(-1)[:, 1].reshape(gx.shape)
        results[name] = (acc, history.forward_nfe[-1])
        ax.contourf(gx, gy, prob, levels=20, cmap="RdBu_r", alpha=0.7)
        ax.contour(gx, gy, prob, levels=[0.5], colors="k")
        ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu_r", s=4, edgecolors="none")
        ax.set_title(f"{name}: train acc {acc:.3f}, NFE {history.forward_nfe[-1]}")
        ax.set_aspect("equal")
    _common.save(fig, args, "annuli_boundary.png")
    return results


def main(argv=None):
    args = _common.example_parser(__doc__, "anode_toy").parse_args(argv)
    _common.start(args)
    steps_1d, steps_ann, points, res = (60, 40, 200, 50) if args.quick else (300, 400, 1000, 120)

    x, y, models = one_d_flows(steps_1d, args.seed)
    mse = plot_1d(x, y, models, args)
    print(f"1-D map: NODE MSE {mse[0]:.3f}, ANODE(p=1) MSE {mse[1]:.4f}")

    results = annuli_boundaries(points, steps_ann, args, res)
    for name, (acc, nfe) in results.items():
        print(f"annuli {name}: train accuracy {acc:.3f}, final forward NFE {nfe}")


if __name__ == "__main__":
    main()
