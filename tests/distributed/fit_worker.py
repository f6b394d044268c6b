"""Worker for tests/test_distributed.py: data-parallel SVI on Bayesian linear regression.

``python fit_worker.py OUT MODE``; MODE ``step`` takes one plain-SGD step, ``run`` fits 1500
steps, ``die`` makes rank 1 exit abruptly at step 5. Rank r writes ``OUT/rank<r>.pt``.
"""

import os
import sys

import pyro
import pyro.distributions as dist
import torch
from pyro.infer.autoguide import AutoNormal

import bayesdepth as bd

torch.set_num_threads(1)
F64 = torch.float64


def problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g, dtype=F64)
    y = x @ torch.tensor([1.0, -2.0, 0.5], dtype=F64) + 0.5 * torch.randn(200, generator=g,
                                                                        dtype=F64)
    return x, y


def model(x, y=None, subsample_size=None):
    w = pyro.sample("w", dist.Normal(torch.zeros(3, dtype=F64), 1.0).to_event(1))
    with pyro.plate("data", x.shape[0], subsample_size=subsample_size) as idx:
        pyro.sample("y", dist.Normal(x[idx] @ w, 0.5), obs=None if y is None else y[idx])


def main(out: str, mode: str) -> None:
    x, y = problem()
    guide = AutoNormal(model, init_scale=0.1)
    rank = int(os.environ["RANK"])
    callback = None
    if mode == "die":
        def callback(step, loss):
            if step == 5 and rank == 1:
                os._exit(1)  # no clean shutdown: the other rank must not hang
    steps, optimizer = (1, pyro.optim.SGD({"lr": 1e-3})) if mode == "step" else (1500, None)
    history = bd.fit(model, guide, x, y, num_steps=steps, batch_size=10, lr=2e-2,
                     final_lr_fraction=0.02, seed=3, optimizer=optimizer, progress=False,
                     distributed=True, callback=callback)
    params = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    torch.save({"params": params, "loss": history.loss}, os.path.join(out, f"rank{rank}.pt"))


if __name__ == "__main__":
    main(*sys.argv[1:])
