"""Worker for tests/test_distributed.py: SGLD chains split across processes.

``python sample_worker.py OUT DRAWS [CHECKPOINT]``: 5 chains on Bayesian linear regression with
per-chain minibatches; rank 0 writes the gathered chains to ``OUT/chains.pt``.
"""

import os
import sys

import torch
from bayesdepth.inference import SGLD, sample

sys.path.insert(0, os.path.dirname(__file__))
from fit_worker import model, problem

torch.set_num_threads(1)


def potential():
    from bayesdepth.inference import pyro_potential

    x, y = problem()
    return pyro_potential(model, x, y, subsample_size=10)


def run(draws: int, checkpoint=None, distributed=False, **kw):
    return sample(potential(), SGLD(lr=1e-4), num_chains=5, num_draws=draws, warmup=10,
                  seed=7, checkpoint=checkpoint, checkpoint_every=5, distributed=distributed,
                  **kw)


if __name__ == "__main__":
    out, draws = sys.argv[1], int(sys.argv[2])
    checkpoint = sys.argv[3] if len(sys.argv) > 3 else None
    chains = run(draws, checkpoint, distributed=True, extend=checkpoint is not None)
    if int(os.environ["RANK"]) == 0:
        torch.save({"draws": chains.draws, "stats": chains.stats, "chains": chains.num_chains},
                   os.path.join(out, "chains.pt"))
