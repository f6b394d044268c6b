"""A user-defined field on sequences: an SDE-BNN whose weights drive a gated 1-D convolution.

The field is plain PyTorch (a time-conditioned 1-D convolution, a ReLU, a 1x1 convolution and a
tanh gate); ``SDEBNNClassifier(field=..., image_size=(L,))`` makes every one of its parameters
follow the OU-prior weight SDE in depth (one Pyro site per block) and adds a 3-wide convolutional
encoder and a linear readout. The task: noisy sequences of length 32 whose class is the
frequency of a hidden sine (1, 2 or 4 periods), at a random phase. The model is saved and loaded
back (``@bd.saveable`` makes the field class recordable).

    python examples/sdebnn_sequences.py            # about a minute
    python examples/sdebnn_sequences.py --quick    # a few seconds
"""

from __future__ import annotations

import math
from pathlib import Path

import _common
import matplotlib.pyplot as plt
import torch
from torch import nn

import bayesdepth as bd
from bayesdepth.sde import ConcatConv1d


@bd.saveable
class GatedConv1dField(nn.Module):
    """``dh/dt = tanh(W2 relu(conv3([h, t]))) * h``: a gated, time-conditioned 1-D conv field."""

    def __init__(self, channels: int, hidden: int = 8):
        super().__init__()
        self.conv = ConcatConv1d(channels, hidden, kernel_size=3)
        self.mix = nn.Conv1d(hidden, channels, 1)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.mix(torch.relu(self.conv(t, h)))) * h


def sequences(n: int, length: int = 32, seed: int = 0):
    """Noisy sines of 1, 2 or 4 periods over the window (class 0, 1, 2), random phases."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    periods = torch.tensor([1.0, 2.0, 4.0])[y]
    phase = 2 * math.pi * torch.rand(n, generator=g)
    t = torch.linspace(0, 1, length)
    x = torch.sin(2 * math.pi * periods[:, None] * t + phase[:, None])
    x = x + 0.4 * torch.randn(n, length, generator=g)
    return x.unsqueeze(1), y  # (n, 1 channel, length)


def main(argv: list[str] | None = None) -> Path:
    p = _common.example_parser(__doc__, "sdebnn_sequences")
    p.add_argument("--steps", type=int, default=800, help="SVI steps")
    args = p.parse_args(argv)
    _common.start(args)
    if args.quick:
        args.steps = 40
    x, y = sequences(600, seed=args.seed)
    x_test, y_test = sequences(300, seed=args.seed + 1)
    model = bd.SDEBNNClassifier(1, 3, width=4, steps=4 if args.quick else 8,
                                field=GatedConv1dField(4), image_size=(32,),
                                prior=bd.OUPrior(sigma=0.5), seed=args.seed)
    print(f"{model.parameter_counts()['sde_weights']} SDE-driven weights in "
          f"{len(model.blocks)} block")
    hist = bd.fit(model.model, model.guide, x, y, num_steps=args.steps, batch_size=64, lr=1e-2,
                  final_lr_fraction=0.1, seed=args.seed, progress=not args.quick)
    path = bd.save(model, args.out / "model.pt")
    model = bd.load(path, classes=[GatedConv1dField])  # the same predictions, bit for bit
    pred = model.predict(x_test, num_samples=8 if args.quick else 32, seed=args.seed)
    acc = bd.metrics.accuracy(pred.probs, y_test)
    print(f"{hist.steps} SVI steps in {hist.seconds:.1f} s; test accuracy {acc:.3f}, NLL "
          f"{bd.metrics.nll(pred.probs, y_test):.3f}; saved to {path}")

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), sharey=True)
    for c, ax in enumerate(axes):
        rows = (y_test == c).nonzero()[:3, 0]
        for i in rows:
            ax.plot(x_test[i, 0].numpy(), lw=1,
                    label=f"p(class {c}) = {float(pred.probs[i, c]):.2f}")
        ax.set(title=f"class {c}: {(1, 2, 4)[c]} period(s)", xlabel="position")
        ax.legend(fontsize=7, loc="lower left")
    return _common.save(fig, args, "sdebnn_sequences.png")


if __name__ == "__main__":
    main()
