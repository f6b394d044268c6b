"""A user-defined ResNet-style field in the multi-scale SDE-BNN, on images.

``MultiScaleSDEBNN`` stacks stages of SDE-BNN blocks with space-to-depth downsampling between
them; here every stage uses your own field, a pre-activation residual branch written in plain
PyTorch (GroupNorm -> softplus -> 3x3 conv -> softplus -> 3x3 conv), all of whose parameters
follow the weight SDE. By default on scikit-learn's 8x8 digits (two stages: 8x8 and 4x4);
``--data mnist`` uses MNIST through torchvision (``pip install "bayesdepth[vision]"``, downloaded
once) with three stages. The figure: the reliability diagram of the averaged probabilities and
the predictive entropy of correct and wrong test predictions.

    python examples/sdebnn_images.py                # digits, a few minutes on a CPU
    python examples/sdebnn_images.py --quick        # seconds
    python examples/sdebnn_images.py --data mnist --device cuda --steps 5000
"""

from __future__ import annotations

from pathlib import Path

import _common
import matplotlib.pyplot as plt
import torch
from sdebnn_digits import reliability
from torch import nn

import bayesdepth as bd
from bayesdepth.sde import MultiScaleSDEBNN


@bd.saveable
class PreActResidual(nn.Module):
    """The residual branch of a pre-activation ResNet block (He et al. 2016) as ``f(h)``."""

    def __init__(self, channels: int, hidden: int = 16, groups: int = 1):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, channels, 3, padding=1)
        self.act = nn.Softplus()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(self.act(self.norm(h)))))


def main(argv: list[str] | None = None) -> Path:
    p = _common.example_parser(__doc__, "sdebnn_images")
    p.add_argument("--data", choices=("digits", "mnist"), default="digits")
    p.add_argument("--steps", type=int, default=1500, help="SVI steps")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    _common.start(args)
    if args.quick:
        args.steps = 20
    if args.data == "digits":
        d = bd.data.digits(flatten=False, seed=args.seed)
        in_shape, blocks, augment = (1, 8, 8), (1, 1), 3
    else:
        d = bd.data.mnist(num_train=2000 if args.quick else None, seed=args.seed)
        in_shape, blocks, augment = (1, 28, 28), (1, 1, 1), 3
    channels = [(in_shape[0] + augment) * 4**s for s in range(len(blocks))]
    hidden = 4 if args.quick else 16
    model = MultiScaleSDEBNN(in_shape, 10, blocks=blocks, augment=augment,
                             field=[PreActResidual(c, hidden) for c in channels],
                             steps=3 if args.quick else 10, prior=bd.OUPrior(sigma=0.3),
                             seed=args.seed).to(args.device)
    for row in model.stage_table():
        print(f"stage {row['stage']}: {row['channels']} channels at {row['size']}, "
              f"{row['blocks']} block(s), {row['sde_weights']:,} SDE-driven weights")
    x, y = d.x_train.to(args.device), d.y_train.to(args.device)
    hist = bd.fit(model.model, model.guide, x, y, num_steps=args.steps, batch_size=128,
                  lr=5e-3, final_lr_fraction=0.1, seed=args.seed, progress=not args.quick)
    x_test = d.x_test[:200] if args.quick else d.x_test
    pred = model.predict(x_test.to(args.device), num_samples=4 if args.quick else 16,
                         seed=args.seed)
    probs, labels = pred.probs.cpu(), d.y_test[: len(x_test)]
    acc = bd.metrics.accuracy(probs, labels)
    ece = bd.metrics.expected_calibration_error(probs, labels)
    print(f"{hist.steps} SVI steps in {hist.seconds:.1f} s; test accuracy {acc:.3f}, NLL "
          f"{bd.metrics.nll(probs, labels):.3f}, ECE {ece:.3f}")

    fig, (ax, axh) = plt.subplots(1, 2, figsize=(9, 3.6))
    reliability(ax, probs, labels, ece)
    right = probs.argmax(-1) == labels
    entropy = pred.entropy.cpu()
    axh.hist([entropy[right].numpy(), entropy[~right].numpy()], bins=20,
             label=["correct", "wrong"], density=True)
    axh.set(xlabel="predictive entropy", title=f"accuracy {acc:.3f}")
    axh.legend()
    return _common.save(fig, args, "sdebnn_images.png")


if __name__ == "__main__":
    main()
