"""Cost of checking the whole data set at every minibatch SVI step, against checking it once.

``bayesdepth.fit(..., batch_size=b)`` hands the model all ``n`` rows at every step (Pyro's
``plate(subsample_size=b)`` picks the minibatch inside). The model checks its inputs for NaN and
infinite values; ``check_rows_once`` skips that check for the very tensor that passed it before,
unmodified since (its version counter). This script times one SVI step (STL, batch 128) of an
SDE-BNN classifier (linear encoder to 32 features, MLP field, K = 10) on random inputs the size of
the digits, MNIST and CIFAR-10 training sets, with the check done once (the library) and at every
step (the baseline, ``check_rows``), interleaved, medians of repetitions.

    python benchmarks/input_checks.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import pyro
import torch
from pyro.infer import SVI

from bayesdepth import _validation, protocol
from bayesdepth.elbo import STLTrace_ELBO
from bayesdepth.sde import SDEBNNClassifier

SIZES = {"digits": (1347, 64), "mnist": (60000, 784), "cifar10": (50000, 3072)}


def _step(n: int, features: int, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=gen).to(device)
    y = torch.randint(0, 10, (n,), generator=gen).to(device)
    pyro.set_rng_seed(0)
    m = SDEBNNClassifier(features, 10, width=32, steps=10, seed=0).to(device)
    svi = SVI(m.model, m.guide, pyro.optim.Adam({"lr": 1e-3}), STLTrace_ELBO())
    return lambda: svi.step(x, y, subsample_size=128)


def _timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 1e3 * (time.perf_counter() - start)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device(args.device)
    every_step = mock.patch.object(protocol, "check_rows_once", _validation.check_rows)
    print(f"one SVI step (batch 128), device {device}")
    print(f"{'data':<8} {'n x features':>14} {'check once ms':>14} {'every step ms':>14} "
          f"{'ratio':>6}")
    out = {}
    for name in args.data:
        n, features = SIZES[name]
        step = _step(n, features, device)
        step()  # warm-up; the first step checks the data in both variants
        once, every = [], []
        for rep in range(args.reps):  # alternating order
            for variant in (("once", "every") if rep % 2 == 0 else ("every", "once")):
                if variant == "once":
                    once.append(_timed(step, device))
                else:
                    with every_step:
                        every.append(_timed(step, device))
        out[name] = {"once_ms": statistics.median(once), "every_ms": statistics.median(every)}
        r = out[name]
        print(f"{name:<8} {f'{n} x {features}':>14} {r['once_ms']:>14.2f} {r['every_ms']:>14.2f} "
              f"{r['once_ms'] / r['every_ms']:>6.3f}", flush=True)
    return out


if __name__ == "__main__":
    main()
