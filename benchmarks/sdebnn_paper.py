"""The SDE-BNN paper's image benchmarks: MNIST and CIFAR-10 against two same-size baselines.

Xu, Chen, Li, Duvenaud, "Infinitely Deep Bayesian Neural Networks with Stochastic Differential
Equations" (AISTATS 2022), section 6. Three models share one architecture,
:class:`bayesdepth.sde.MultiScaleSDEBNN` (stages of blocks whose field is a time-conditioned
ResNet-style conv net, zero-channel augmentation, space-to-depth between stages, a linear readout):

- **SDE-BNN**: every block's weights follow an OU-prior SDE in depth, trained by SVI with the
  STL estimator (the posterior drift a small bottleneck net, ``w(0)`` a point estimate);
- **ODE-net**: the same network with weights constant in depth (``w(t) = w(0)``), a point
  estimate trained with Adam on the cross-entropy (``model.function(x, model.point_paths())``);
- **MF-BNN**: the same network with weights constant in depth and a mean-field Normal posterior
  over them (prior ``N(0, 1)``, Pyro ``AutoNormal``, STL), i.e. a mean-field BNN of the same size.

Reported: test accuracy, NLL and ECE (10 equal-width bins) of the probabilities averaged over
posterior samples, training time per epoch (CUDA-synchronised on a GPU) and the parameter
counts. Settings (``SETTINGS`` below; the released code's defaults where it has them): Adam with
learning rate 1e-3 (decaying 10x over the run for the Bayesian models), batch 128, K = 20 Euler
steps per block, softplus fields with the time as an extra channel, OU prior ``sigma = 0.1``,
``theta = 1``; MNIST: blocks (2, 2, 2), 1 augmented channel, 32 hidden channels, 10 epochs;
CIFAR-10: blocks (2, 2, 2), 5 augmented channels, 100 hidden channels (675,360 SDE-driven
weights), 100 epochs. The data come from ``bayesdepth.data.mnist`` / ``cifar10`` (torchvision;
downloaded to the cache folder on first use).

    python benchmarks/sdebnn_paper.py --count                      # parameter counts
    python benchmarks/sdebnn_paper.py --data cifar10 --device cuda  # the full run on a GPU
    python benchmarks/sdebnn_paper.py --data cifar10 --device cuda --epochs 1 --models sdebnn
    python benchmarks/sdebnn_paper.py --smoke                      # seconds, CPU, generated data

``--smoke`` runs all three models on generated images of MNIST's and CIFAR-10's shapes (a few
dozen, classes told apart by a brightness pattern) with tiny models, so that CI checks the whole
pipeline without data or a GPU; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, replace

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, pyro_method

import bayesdepth as bd
from bayesdepth.sde import MultiScaleSDEBNN, OUPrior, SDEBNNBlock, StateSolver
from bayesdepth.sde.models import SDEBNNModel


@dataclass(frozen=True)
class Settings:
    """One benchmark configuration (see the module docstring)."""

    preset: str
    epochs: float
    batch: int = 128
    lr: float = 1e-3
    sigma: float = 0.1
    steps: int = 20
    samples: int = 16
    num_train: int | None = None
    num_test: int | None = None
    hidden: int | None = None


SETTINGS = {
    "mnist": Settings("mnist", epochs=10),
    "cifar10": Settings("cifar10", epochs=100),
}
SMOKE = {
    "mnist": Settings("mnist", epochs=2, batch=16, steps=2, samples=2, num_train=48,
                      num_test=16, hidden=4),
    "cifar10": Settings("cifar10", epochs=2, batch=16, steps=2, samples=2, num_train=48,
                        num_test=16, hidden=4),
}


# ------------------------------------------------------------------------------------ data
def generated(name: str, n_train: int, n_test: int, seed: int = 0) -> bd.data.ClassificationData:
    """Images of the data set's shape whose class sets the brightness of one of 10 stripes."""
    shape = (1, 28, 28) if name == "mnist" else (3, 32, 32)
    g = torch.Generator().manual_seed(seed)
    parts = []
    for n in (n_train, n_test):
        y = torch.randint(0, 10, (n,), generator=g)
        x = 0.5 * torch.randn(n, *shape, generator=g)
        rows = shape[1] // 10
        for c in range(10):
            x[y == c, :, c * rows:(c + 1) * rows] += 1.5
        parts.append((x, y))
    (x_tr, y_tr), (x_te, y_te) = parts
    return bd.data.ClassificationData(x_tr, y_tr, x_te, y_te, 10)


def load(name: str, s: Settings, smoke: bool, seed: int) -> bd.data.ClassificationData:
    if smoke:
        return generated(name, s.num_train, s.num_test, seed)
    loader = bd.data.mnist if name == "mnist" else bd.data.cifar10
    return loader(num_train=s.num_train, num_test=s.num_test, seed=seed)


# ------------------------------------------------------------------------------ models
def build(s: Settings, seed: int, solver: StateSolver | None = None) -> MultiScaleSDEBNN:
    overrides = {"steps": s.steps, "prior": OUPrior(sigma=s.sigma), "seed": seed}
    if s.hidden is not None:
        overrides["hidden"] = s.hidden
    if solver is not None:
        overrides["block_kwargs"] = {"solver": solver}
    return MultiScaleSDEBNN.preset(s.preset, **overrides)


class MeanFieldODENet(PyroModule):
    """The architecture of an SDE-BNN model with weights constant in depth and a mean-field
    Normal posterior over them: ``w_b ~ N(0, prior_scale^2 I)`` per block, ``w(t) = w_b``;
    the encoder/readout and the fields' other parameters are point estimates."""

    def __init__(self, arch: SDEBNNModel, prior_scale: float = 1.0):
        super().__init__()
        self.arch = arch
        self.prior_scale = prior_scale
        loc = {f"w{i}": b.point_path()[0].detach() for i, b in enumerate(arch.blocks)}
        self.guide = AutoNormal(poutine.block(self.model, hide=["y"]), init_scale=1e-2,
                                init_loc_fn=lambda site: loc[site["name"]].to(site["value"]))

    def weights(self) -> list[torch.Tensor]:
        return [pyro.sample(f"w{i}", dist.Normal(torch.zeros_like(b.w0), self.prior_scale)
                            .to_event(1)) for i, b in enumerate(self.arch.blocks)]

    @staticmethod
    def constant(block: SDEBNNBlock, w: torch.Tensor) -> torch.Tensor:
        return w.unsqueeze(-2).expand(*w.shape[:-1], block.grid.numel(), w.shape[-1])

    @pyro_method
    def model(self, x, y=None, subsample_size=None):
        paths = [self.constant(b, w) for b, w in zip(self.arch.blocks, self.weights())]
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size) as idx:
            logits = self.arch.function(x[idx], paths)
            pyro.deterministic("probs", logits.softmax(-1))
            return pyro.sample("y", dist.Categorical(logits=logits),
                               obs=None if y is None else y[idx])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fit_ode_net(arch: SDEBNNModel, x, y, steps: int, batch: int, lr: float,
                final_lr_fraction: float = 0.1, weight_decay: float = 1e-4,
                max_seconds: float | None = None, seed: int = 0):
    """Adam (weight decay 1e-4, the learning rate decaying geometrically to ``lr *
    final_lr_fraction`` like ``bayesdepth.fit``'s) on the cross-entropy of
    ``arch.function(x, arch.point_paths())`` (the posterior drift is unused); returns (steps
    taken, seconds)."""
    params = [p for n, p in arch.named_parameters() if ".posterior." not in n]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    decay = torch.optim.lr_scheduler.ExponentialLR(opt, final_lr_fraction ** (1 / steps))
    g = torch.Generator(device=x.device).manual_seed(seed)
    start, done = time.perf_counter(), 0
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (batch,), device=x.device, generator=g)
        loss = torch.nn.functional.cross_entropy(arch.function(x[idx], arch.point_paths()),
                                                 y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
        done += 1
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
    _sync(x.device)
    return done, time.perf_counter() - start


@torch.no_grad()
def predict_probs(name: str, model, x: torch.Tensor, samples: int, seed: int,
                  rows: int = 500) -> torch.Tensor:
    """Averaged class probabilities in row chunks (bounded memory)."""
    out = []
    for start in range(0, x.shape[0], rows):
        part = x[start:start + rows]
        if name == "sdebnn":
            out.append(model.predict(part, num_samples=samples, seed=seed + start).probs)
        elif name == "ode-net":
            out.append(model.function(part, model.point_paths()).softmax(-1))
        else:
            with bd.seeding.seeded(seed + start, part.device):
                draws = pyro.infer.Predictive(model.model, guide=model.guide,
                                              num_samples=samples, return_sites=["probs"])
                out.append(draws(part)["probs"].mean(0))
    return torch.cat(out).cpu()


def scores(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    return {"accuracy": bd.metrics.accuracy(probs, labels), "nll": bd.metrics.nll(probs, labels),
            "ece": bd.metrics.expected_calibration_error(probs, labels, num_bins=10)}


def run(name: str, s: Settings, models: list[str], device: torch.device, smoke: bool,
        seed: int = 0, max_seconds: float | None = None, solver: StateSolver | None = None
        ) -> dict:
    d = load(name, s, smoke, seed)
    x, y = d.x_train.to(device), d.y_train.to(device)
    per_epoch = math.ceil(x.shape[0] / s.batch)
    steps = max(1, round(s.epochs * per_epoch))
    results = {"settings": asdict(s), "train": x.shape[0], "test": d.x_test.shape[0],
               "steps": steps}
    for which in models:
        pyro.clear_param_store()
        sde = build(s, seed, solver).to(device)
        _sync(device)
        if which == "sdebnn":
            model = sde
            hist = bd.fit(model.model, model.guide, x, y, num_steps=steps, batch_size=s.batch,
                          lr=s.lr, final_lr_fraction=0.1, max_seconds=max_seconds,
                          progress=not smoke, seed=seed)
            _sync(device)
            taken, seconds = hist.steps, hist.seconds
        elif which == "ode-net":
            model = sde
            taken, seconds = fit_ode_net(model, x, y, steps, s.batch, s.lr,
                                         max_seconds=max_seconds, seed=seed)
        else:
            model = MeanFieldODENet(sde).to(device)
            hist = bd.fit(model.model, model.guide, x, y, num_steps=steps, batch_size=s.batch,
                          lr=s.lr, final_lr_fraction=0.1, max_seconds=max_seconds,
                          progress=not smoke, seed=seed)
            taken, seconds = hist.steps, hist.seconds
        probs = predict_probs(which, model, d.x_test.to(device), s.samples, seed)
        results[which] = {**scores(probs, d.y_test), "steps": taken, "seconds": seconds,
                          "seconds_per_epoch": seconds / (taken / per_epoch),
                          **sde.parameter_counts()}
        if device.type == "cuda":
            results[which]["peak_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
            torch.cuda.reset_peak_memory_stats(device)
    return results


def print_table(name: str, res: dict) -> None:
    s = res["settings"]
    print(f"\n{name}: {res['train']} train / {res['test']} test images, {s['epochs']} epochs "
          f"({res['steps']} steps of {s['batch']}), lr {s['lr']}, K = {s['steps']}, "
          f"sigma {s['sigma']}, {s['samples']} predictive samples")
    print(f"{'model':<9} {'acc':>6} {'NLL':>7} {'ECE':>7} {'s/epoch':>9} {'SDE weights':>12}")
    for which in ("sdebnn", "ode-net", "mf-bnn"):
        if which in res:
            r = res[which]
            print(f"{which:<9} {r['accuracy']:>6.4f} {r['nll']:>7.4f} {r['ece']:>7.4f} "
                  f"{r['seconds_per_epoch']:>9.2f} {r['sde_weights']:>12,}")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", choices=("mnist", "cifar10"),
                   default=["mnist", "cifar10"])
    p.add_argument("--models", nargs="+", choices=("sdebnn", "ode-net", "mf-bnn"),
                   default=["sdebnn", "ode-net", "mf-bnn"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--epochs", type=float, help="override the epochs of the settings")
    p.add_argument("--num-train", type=int, help="use a random subset of the training images")
    p.add_argument("--max-seconds", type=float, help="stop each model's training after this")
    p.add_argument("--checkpoint-every", type=int, help="gradient checkpointing of the blocks")
    p.add_argument("--compile", action="store_true", help="torch.compile the hidden-state loop")
    p.add_argument("--smoke", action="store_true", help="tiny CPU run on generated images")
    p.add_argument("--count", action="store_true", help="print the parameter counts and exit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.count:
        from bayesdepth.sde.multiscale import count_table

        print(count_table())
        return {}
    device = torch.device("cpu" if args.smoke else args.device)
    if not args.smoke:
        torch.backends.cudnn.benchmark = True
    torch.set_num_threads(1 if args.smoke else torch.get_num_threads())
    solver = None
    if args.checkpoint_every or args.compile:
        solver = StateSolver(checkpoint_every=args.checkpoint_every, compile=args.compile)
    out = {"device": str(device), "smoke": args.smoke}
    for name in args.data:
        s = (SMOKE if args.smoke else SETTINGS)[name]
        if args.epochs is not None:
            s = replace(s, epochs=args.epochs)
        if args.num_train is not None:
            s = replace(s, num_train=args.num_train)
        out[name] = run(name, s, args.models, device, args.smoke, args.seed, args.max_seconds,
                        solver)
        print_table(name, out[name])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
