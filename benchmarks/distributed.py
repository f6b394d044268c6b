"""SVI and chains over processes: time per step and throughput with 1 and 2 ranks (torchrun).

Run as ``python benchmarks/distributed.py``: the script starts itself under ``torchrun`` once
per process count (gloo on 127.0.0.1, or NCCL with ``--device cuda``) and measures, in the same
run,

- data-parallel SVI: every rank fits a ``BayesianMLP`` on scikit-learn's digits with
  ``--batch-size`` rows per rank and step (median time per step, rows per second);
- chains across ranks: ``--chains`` SGLD chains of the same network (a module potential,
  minibatches of ``--batch-size``) split across the ranks (time per step of all chains).

Ratios are against one process. Peak memory is the largest resident set (CPU) or CUDA's
``max_memory_allocated`` of any rank.

    python benchmarks/distributed.py                       # 1 vs 2 processes on the CPU
    python benchmarks/distributed.py --device cuda --nproc 1 4 --batch-size 1024 --chains 1024
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def _peak(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def chains_worker(args, group, device) -> dict:
    import bayesdepth as bd
    from bayesdepth import inference as bi

    d = bd.data.digits()
    net = torch.nn.Sequential(torch.nn.Linear(64, args.hidden), torch.nn.Tanh(),
                              torch.nn.Linear(args.hidden, 10))

    def log_lik(logits, y):
        return torch.distributions.Categorical(logits=logits).log_prob(y)

    potential = bi.module_potential(net, log_lik, d.x_train.to(device), d.y_train.to(device),
                                    batch_size=args.batch_size)
    run = dict(num_chains=args.chains, num_draws=args.steps, seed=0, distributed=True,
               device=device)
    bi.sample(potential, bi.SGLD(1e-4), **{**run, "num_draws": 5})  # warm up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    bi.sample(potential, bi.SGLD(1e-4), **run)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"seconds": (time.perf_counter() - start) / args.steps, "peak_mb": _peak(device)}


def worker(args) -> None:
    import bayesdepth as bd

    torch.set_num_threads(1)
    group = bd.distributed.process_group(device=args.device)
    device = group.device if args.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if args.kind == "chains":
        result = chains_worker(args, group, device)
        Path(args.result, f"rank{group.rank}.json").write_text(json.dumps(result))
        return
    d = bd.data.digits()
    x, y = d.x_train.to(device), d.y_train.to(device)
    if args.batch_size > x.shape[0]:  # large batches: tile the data
        reps = -(-args.batch_size // x.shape[0])
        x, y = x.repeat(reps, 1), y.repeat(reps)
    model = bd.BayesianMLP(64, 10, hidden=(args.hidden,), likelihood=bd.Categorical(),
                           seed=0).to(device)
    times: list[float] = []

    def tick(step, loss):
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())

    bd.fit(model.model, model.guide, x, y, num_steps=args.steps, batch_size=args.batch_size,
           seed=0, progress=False, distributed=True, callback=tick)
    per_step = statistics.median(b - a for a, b in itertools.pairwise(times[5:]))
    Path(args.result, f"rank{group.rank}.json").write_text(
        json.dumps({"seconds": per_step, "peak_mb": _peak(device)}))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=128, help="rows per rank and step")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--chains", type=int, default=64, help="chains split across the ranks")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--kind", choices=("svi", "chains"), default="svi", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    for kind in ("svi", "chains"):
        rows = [(n, *_launch(args, kind, n)) for n in args.nproc]
        base = rows[0]
        if kind == "svi":
            print(f"data-parallel SVI, BayesianMLP 64-{args.hidden}-10 on digits, "
                  f"{args.batch_size} rows per rank and step, device {args.device}")
            print(f"{'ranks':>5} {'ms/step':>9} {'rows/s':>9} {'step x':>7} {'rows/s x':>9} "
                  f"{'peak MB':>8}")
            for n, seconds, peak in rows:
                rate = n * args.batch_size / seconds
                print(f"{n:>5} {1e3 * seconds:>9.2f} {rate:>9.0f} {seconds / base[1]:>7.2f} "
                      f"{rate * base[1] / args.batch_size:>9.2f} {peak:>8.0f}")
        else:
            print(f"\n{args.chains} SGLD chains (module potential, same network, batch "
                  f"{args.batch_size}) split across the ranks, device {args.device}")
            print(f"{'ranks':>5} {'ms/step':>9} {'step x':>7} {'peak MB':>8}")
            for n, seconds, peak in rows:
                print(f"{n:>5} {1e3 * seconds:>9.2f} {seconds / base[1]:>7.2f} {peak:>8.0f}")


def _launch(args, kind: str, n: int) -> tuple[float, float]:
    """Run the ``kind`` worker on ``n`` processes; (slowest rank's seconds per step, peak MB)."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}",
               "--master_addr=127.0.0.1", f"--master_port={_port()}", __file__, "--worker",
               "--kind", kind, "--result", out, "--steps", str(args.steps), "--batch-size",
               str(args.batch_size), "--hidden", str(args.hidden), "--chains", str(args.chains),
               "--device", args.device]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        if run.returncode:
            raise SystemExit(run.stderr[-3000:])
        ranks = [json.loads(f.read_text()) for f in sorted(Path(out).glob("rank*.json"))]
    return max(r["seconds"] for r in ranks), max(r["peak_mb"] for r in ranks)


if __name__ == "__main__":
    main()
