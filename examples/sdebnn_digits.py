"""SDE-BNN classifier on scikit-learn's 8x8 digits: accuracy, NLL, ECE and a reliability diagram.

Trains :class:`~bayesdepth.sde.models.SDEBNNClassifier` (width 32, 10 Euler steps, OU prior with
sigma = 2; the configuration of ``benchmarks/sdebnn.py``) with the STL ELBO on minibatches of 128
and 8 vectorised particles (learning rate 5e-3 decaying to 5e-4), then evaluates probabilities
averaged over posterior weight paths on the held-out quarter of the data. ``--conv`` uses the
convolutional ``f_h`` on the 8x8 images instead of the MLP on 64 pixels.

    python examples/sdebnn_digits.py                      # 4000 steps
    python examples/sdebnn_digits.py --budget-seconds 60  # stop after one minute
    python examples/sdebnn_digits.py --quick              # a few seconds
"""

from __future__ import annotations

import itertools
from pathlib import Path

import _common
import matplotlib.pyplot as plt
import torch

import bayesdepth as bd


def main(argv: list[str] | None = None) -> Path:
    p = _common.example_parser(__doc__, "sdebnn_digits")
    p.add_argument("--steps", type=int, default=4000, help="SVI steps")
    p.add_argument("--conv", action="store_true", help="convolutional f_h on 8x8 images")
    p.add_argument("--budget-seconds", type=float, default=None, help="stop training after this")
    p.add_argument("--samples", type=int, default=32, help="posterior samples for predict")
    args = p.parse_args(argv)
    _common.start(args)
    if args.quick:
        args.steps, args.samples = 100, 4

    d = bd.data.digits(seed=args.seed, flatten=not args.conv)
    width = (8 if args.conv else 32) // (2 if args.quick else 1)
    model = bd.SDEBNNClassifier(
        1 if args.conv else 64, d.num_classes, width=width, steps=4 if args.quick else 10,
        prior=bd.OUPrior(sigma=2.0), field="conv" if args.conv else "mlp", seed=args.seed,
    )
    hist = bd.fit(model.model, model.guide, d.x_train, d.y_train, num_steps=args.steps,
                  batch_size=128, lr=5e-3, final_lr_fraction=0.1,
                  num_particles=2 if args.quick else 8, vectorize_particles=True,
                  max_seconds=args.budget_seconds, seed=args.seed, progress=not args.quick)
    probs = model.predict(d.x_test, num_samples=args.samples, seed=args.seed).probs
    acc = bd.metrics.accuracy(probs, d.y_test)
    nll = bd.metrics.nll(probs, d.y_test)
    ece = bd.metrics.expected_calibration_error(probs, d.y_test, num_bins=10)
    print(f"{hist.steps} SVI steps in {hist.seconds:.1f} s; test accuracy {acc:.3f}, "
          f"NLL {nll:.3f}, ECE {ece:.3f}")

    fig, (ax, axh) = plt.subplots(1, 2, figsize=(9, 4))
    centers, counts = reliability(ax, probs, d.y_test, ece)
    axh.bar(centers, counts, width=0.09)
    axh.set(xlabel="confidence", ylabel="test points", yscale="log",
            title=f"accuracy {acc:.3f}, NLL {nll:.3f}")
    return _common.save(fig, args, "sdebnn_digits.png")


def reliability(ax, probs: torch.Tensor, labels: torch.Tensor, ece: float):
    """Draw the reliability diagram (10 confidence bins) on ``ax``; return the bins' centres
    and counts."""
    conf, pred = probs.max(-1)
    correct = (pred == labels).double()
    centers, accs, counts = [], [], []
    for lo, hi in itertools.pairwise(torch.linspace(0, 1, 11)):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            centers.append(float((lo + hi) / 2))
            accs.append(float(correct[inside].mean()))
            counts.append(int(inside.sum()))
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.bar(centers, accs, width=0.09, alpha=0.7)
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title=f"reliability (ECE {ece:.3f})")
    return centers, counts


if __name__ == "__main__":
    main()
