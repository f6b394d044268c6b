"""NODE against ANODE at about equal parameter counts (Dupont, Doucet, Teh 2019, section 5).

For each task (2-D annuli, 8x8 digits) a plain neural ODE (augment_dim = 0) and an augmented one
are trained with the paper's solver (dopri5, rtol = atol = 1e-3, direct backpropagation) by Adam;
then one more epoch is run with the adjoint. Printed per model and gradient mode: parameters,
train/test accuracy, mean forward and backward NFE per step (last epoch), wall and CPU time
per epoch (the NODE ratio uses CPU time, which contention for shared cores distorts less), memory:
on CUDA the peak allocated memory of a training step, on CPU the bytes autograd saves for the
backward pass (what the adjoint avoids storing). Time ratios are against the NODE in the same
run and gradient mode; memory ratios against the same model with direct backpropagation.

    python benchmarks/anode.py                       # both tasks, defaults below
    python benchmarks/anode.py --tasks annuli --annuli-epochs 10
    python benchmarks/anode.py --defaults            # the fast default configurations
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
import torch.nn.functional as F

from bayesdepth import data
from bayesdepth.anode import AugmentedNeuralODE, ODESolver, SolveCost


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def matched_hidden(build, target: int, candidates) -> int:
    """The hidden width whose model's parameter count is closest to ``target``."""
    return min(candidates, key=lambda h: abs(num_params(build(h)) - target))


class SavedTensorBytes:
    """Bytes autograd saves for backward during a forward pass (distinct storages counted once)."""

    def __init__(self):
        self.bytes = 0
        self._seen: set = set()

    def pack(self, t: torch.Tensor):
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in self._seen:
            self._seen.add(key)
            self.bytes += key[1]
        return t


def run_epoch(model, x, y, opt, batch_size, gen):
    """One epoch of minibatch Adam.

    Returns (wall seconds, mean fwd NFE, mean bwd NFE, memory MiB, CPU seconds of this process).
    """
    n = x.shape[0]
    perm = torch.randperm(n, generator=gen).to(x.device)
    fwd, bwd, mem = [], [], 0.0
    cuda = x.device.type == "cuda"
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(0, n, batch_size):
        idx = perm[i: i + batch_size]
        cost = SolveCost()
        saved = SavedTensorBytes()
        if cuda:
            torch.cuda.reset_peak_memory_stats(x.device)
            base = torch.cuda.memory_allocated(x.device)
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
            loss = F.cross_entropy(model(x[idx], cost=cost), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        used = (torch.cuda.max_memory_allocated(x.device) - base) if cuda else saved.bytes
        mem = max(mem, used / 2**20)
        fwd.append(cost.forward_nfe)
        bwd.append(cost.backward_nfe)
    if cuda:
        torch.cuda.synchronize(x.device)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return seconds, sum(fwd) / len(fwd), sum(bwd) / len(bwd), mem, cpu


@torch.no_grad()
def accuracy(model, x, y, batch_size=512):
    hits = 0
    for i in range(0, x.shape[0], batch_size):
        hits += (model(x[i: i + batch_size]).argmax(-1) == y[i: i + batch_size]).sum().item()
    return hits / x.shape[0]


@dataclasses.dataclass
class Row:
    task: str
    model: str
    params: int
    mode: str
    train_acc: float
    test_acc: float
    fwd_nfe: float
    bwd_nfe: float
    sec_epoch: float
    mem_mib: float
    cpu_epoch: float


def bench_model(task, name, build, x, y, x_test, y_test, epochs, batch_size, lr, seed):
    torch.manual_seed(seed)
    model = build(ODESolver()).to(x.device)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    stats = [run_epoch(model, x, y, opt, batch_size, gen) for _ in range(epochs)]
    last = stats[-1]
    rows = [Row(task, name, num_params(model), "direct", accuracy(model, x, y),
                accuracy(model, x_test, y_test), last[1], last[2],
                sum(s[0] for s in stats) / len(stats), max(s[3] for s in stats),
                sum(s[4] for s in stats) / len(stats))]
    # one more epoch through the adjoint, from the trained weights
    model.solver = ODESolver(adjoint=True)
    sec, fwd, bwd, mem, cpu = run_epoch(model, x, y, opt, batch_size, gen)
    rows.append(Row(task, name, rows[0].params, "adjoint", accuracy(model, x, y),
                    accuracy(model, x_test, y_test), fwd, bwd, sec, mem, cpu))
    return rows


def annuli_rows(args, device):
    x, y = data.annuli(num_points=args.annuli_points, seed=args.seed)
    xt, yt = data.annuli(num_points=args.annuli_points, seed=args.seed + 1)
    x, y, xt, yt = x.to(device), y.to(device), xt.to(device), yt.to(device)
    node_hidden = args.annuli_hidden

    def node(solver, h=node_hidden):
        return AugmentedNeuralODE(2, 2, augment_dim=0, hidden=h, solver=solver)

    def anode(solver, h=None):
        return AugmentedNeuralODE(2, 2, augment_dim=1, hidden=h, solver=solver)

    target = num_params(node(None))
    h = matched_hidden(lambda h: anode(None, h), target, range(4, 4 * node_hidden))
    rows = []
    for name, build in (("NODE", node), ("ANODE p=1", lambda s: anode(s, h))):
        rows += bench_model("annuli", name, build, x, y, xt, yt, args.annuli_epochs,
                            args.batch_size, args.lr, args.seed)
    return rows


def digits_rows(args, device):
    d = data.digits(flatten=False, seed=args.seed)
    x, y, xt, yt = (t.to(device) for t in (d.x_train, d.y_train, d.x_test, d.y_test))
    p = args.digits_augment

    def node(solver, h=args.digits_hidden):
        return AugmentedNeuralODE((1, 8, 8), 10, augment_dim=0, hidden=h, solver=solver)

    def anode(solver, h):
        return AugmentedNeuralODE((1, 8, 8), 10, augment_dim=p, hidden=h, solver=solver)

    target = num_params(node(None))
    h = matched_hidden(lambda h: anode(None, h), target, range(1, 4 * args.digits_hidden))
    rows = []
    for name, build in (("NODE", node), (f"ANODE p={p}", lambda s: anode(s, h))):
        rows += bench_model("digits", name, build, x, y, xt, yt, args.digits_epochs,
                            args.batch_size, args.lr, args.seed)
    return rows


def default_configs(args):
    """Train the fast default configurations (for a CLI) and print one line per configuration."""
    import pyro

    from bayesdepth import Gaussian, STLTrace_ELBO
    from bayesdepth.anode import BayesianAugmentedNODE, train_anode

    sets = {
        "annuli": data.annuli(num_points=1000, seed=args.seed),
        "moons": data.two_moons(num_points=500, seed=args.seed),
    }
    reg = data.toy_regression_1d(seed=args.seed)
    dig = data.digits(flatten=False, seed=args.seed)
    print(f"{'data':7} {'kind':9} {'metric':>14} {'seconds':>8}")
    for name, (x, y) in sets.items():
        torch.manual_seed(args.seed)
        model = AugmentedNeuralODE(2, 2, augment_dim=1, hidden=32)
        h = train_anode(model, x, y, steps=200, batch_size=128, lr=1e-2, seed=args.seed)
        print(f"{name:7} {'anode':9} {'train acc':>9} {accuracy(model, x, y):.3f} "
              f"{h.seconds:8.1f}")
        pyro.clear_param_store()
        pyro.set_rng_seed(args.seed)
        torch.manual_seed(args.seed)
        bnn = BayesianAugmentedNODE(AugmentedNeuralODE(2, 2, augment_dim=1, hidden=32))
        svi = pyro.infer.SVI(bnn.model, bnn.guide, pyro.optim.Adam({"lr": 1e-2}), STLTrace_ELBO())
        start = time.perf_counter()
        for _ in range(300):
            svi.step(x, y, subsample_size=128)
        acc = (bnn.predict(x, num_samples=16).labels == y).float().mean().item()
        print(f"{name:7} {'bayesian':9} {'train acc':>9} {acc:.3f} "
              f"{time.perf_counter() - start:8.1f}")
    torch.manual_seed(args.seed)
    model = AugmentedNeuralODE(1, 1, augment_dim=1, hidden=32)
    h = train_anode(model, reg.x, reg.y, loss="mse", steps=200, lr=1e-2, seed=args.seed)
    with torch.no_grad():
        rmse = torch.sqrt(torch.mean((model(reg.x).squeeze(-1) - reg.y) ** 2)).item()
    print(f"{'toy1d':7} {'anode':9} {'train rmse':>10} {rmse:.3f} {h.seconds:8.1f}")
    # Bayesian, warm-started: the guide's means start at the network just trained
    pyro.clear_param_store()
    pyro.set_rng_seed(args.seed)
    bnn = BayesianAugmentedNODE(model, likelihood=Gaussian(0.1))
    svi = pyro.infer.SVI(bnn.model, bnn.guide, pyro.optim.Adam({"lr": 1e-2}), STLTrace_ELBO())
    start = time.perf_counter()
    for _ in range(300):
        svi.step(reg.x, reg.y, subsample_size=20)
    pred = bnn.predict(reg.x, num_samples=32, seed=args.seed)
    rmse = torch.sqrt(torch.mean((pred.mean - reg.y) ** 2)).item()
    print(f"{'toy1d':7} {'bayesian':9} {'train rmse':>10} {rmse:.3f} "
          f"{time.perf_counter() - start + h.seconds:8.1f}")
    torch.manual_seed(args.seed)
    model = AugmentedNeuralODE((1, 8, 8), 10, augment_dim=5, hidden=25)
    h = train_anode(model, dig.x_train, dig.y_train, steps=44, batch_size=128, lr=1e-2,
                    seed=args.seed)
    print(f"{'digits':7} {'anode':9} {'test acc':>9} "
          f"{accuracy(model, dig.x_test, dig.y_test):.3f}  {h.seconds:8.1f}")


def print_table(rows):
    head = (f"{'task':7} {'model':11} {'params':>6} {'grad':7} {'train':>6} {'test':>6} "
            f"{'fwdNFE':>6} {'bwdNFE':>6} {'s/epoch':>7} {'cpu s':>6} {'x NODE':>6} "
            f"{'memMiB':>7} {'x direct':>8}")
    print(head)
    print("-" * len(head))
    base = {(r.task, r.mode): r for r in rows if r.model == "NODE"}
    direct = {(r.task, r.model): r for r in rows if r.mode == "direct"}
    for r in rows:
        b = base[(r.task, r.mode)]
        m = direct[(r.task, r.model)].mem_mib
        print(f"{r.task:7} {r.model:11} {r.params:6d} {r.mode:7} {r.train_acc:6.3f} "
              f"{r.test_acc:6.3f} {r.fwd_nfe:6.1f} {r.bwd_nfe:6.1f} {r.sec_epoch:7.2f} "
              f"{r.cpu_epoch:6.2f} {r.cpu_epoch / b.cpu_epoch:6.2f} {r.mem_mib:7.2f} "
              f"{r.mem_mib / m:8.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["annuli", "digits"],
                        choices=["annuli", "digits"])
    parser.add_argument("--annuli-points", type=int, default=1000)
    parser.add_argument("--annuli-hidden", type=int, default=32, help="NODE's MLP width")
    parser.add_argument("--annuli-epochs", type=int, default=20)
    parser.add_argument("--digits-hidden", type=int, default=32, help="NODE's conv channels")
    parser.add_argument("--digits-augment", type=int, default=5, help="ANODE's extra channels")
    parser.add_argument("--digits-epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--defaults", action="store_true",
                        help="instead: time the fast default configurations (docs/anode.md)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.defaults:
        default_configs(args)
        return []
    device = torch.device(args.device)
    rows = []
    if "annuli" in args.tasks:
        rows += annuli_rows(args, device)
    if "digits" in args.tasks:
        rows += digits_rows(args, device)
    print(f"device {device}; dopri5 rtol=atol=1e-3; memory: "
          f"{'peak CUDA allocation' if device.type == 'cuda' else 'autograd saved tensors'}")
    print_table(rows)
    return rows


if __name__ == "__main__":
    main()
