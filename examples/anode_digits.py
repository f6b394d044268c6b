"""NODE against ANODE on scikit-learn's 8x8 digits (cf. Dupont, Doucet, Teh 2019, MNIST).

Both use a convolutional vector field with time as an extra channel, dopri5 with rtol = atol =
1e-3 and a linear readout; the ANODE appends ``--augment`` zero channels and has fewer hidden
channels, so both have about the same number of parameters. Prints test accuracy and NFE and
plots the training loss and the forward NFE per step.

    python examples/anode_digits.py [--quick] [--epochs 4] [--out runs/anode_digits]
"""

from __future__ import annotations

import math

import _common
import matplotlib.pyplot as plt
import torch

from bayesdepth import data
from bayesdepth.anode import AugmentedNeuralODE, SolveCost, train_anode
from bayesdepth.metrics import accuracy


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_pair(hidden: int, augment: int):
    """A NODE with ``hidden`` channels and an ANODE whose width matches its parameter count."""
    node = AugmentedNeuralODE((1, 8, 8), 10, augment_dim=0, hidden=hidden)
    target = num_params(node)
    best = min(
        range(1, 4 * hidden),
        key=lambda h: abs(num_params(AugmentedNeuralODE((1, 8, 8), 10, augment, hidden=h))
                          - target),
    )
    return node, AugmentedNeuralODE((1, 8, 8), 10, augment_dim=augment, hidden=best)


def main(argv=None):
    parser = _common.example_parser(__doc__, "anode_digits")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=32, help="NODE's hidden channels")
    parser.add_argument("--augment", type=int, default=5, help="ANODE's extra channels")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-2)
    args = parser.parse_args(argv)
    _common.start(args)
    d = data.digits(flatten=False, seed=args.seed)
    x, y, xt, yt = d.x_train, d.y_train, d.x_test, d.y_test
    if args.quick:
        x, y, xt, yt = x[:256], y[:256], xt[:200], yt[:200]
        args.hidden, args.augment, args.epochs, args.batch_size = 16, 1, 1, 64
    steps = args.epochs * math.ceil(x.shape[0] / args.batch_size)
    torch.manual_seed(args.seed)
    node, anode = build_pair(args.hidden, args.augment)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, model in ((f"NODE ({num_params(node)} params)", node),
                        (f"ANODE p={args.augment} ({num_params(anode)} params)", anode)):
        history = train_anode(model, x, y, steps=steps, batch_size=args.batch_size, lr=args.lr,
                              seed=args.seed)
        cost = SolveCost()
        with torch.no_grad():
            acc = accuracy(model(xt, cost=cost).softmax(-1), yt)
        print(f"{name}: test accuracy {acc:.3f}, forward NFE at test {cost.forward_nfe}, "
              f"mean NFE per step fwd {sum(history.forward_nfe) / steps:.1f} "
              f"bwd {sum(history.backward_nfe) / steps:.1f}, {history.seconds:.1f} s")
        axes[0].plot(history.loss, label=f"{name}, test acc {acc:.3f}")
        axes[1].plot(history.forward_nfe, label=name)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training cross-entropy")
    axes[0].set_yscale("log")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("forward NFE")
    for ax in axes:
        ax.legend(fontsize=8)
    _common.save(fig, args, "digits_node_vs_anode.png")


if __name__ == "__main__":
    main()
