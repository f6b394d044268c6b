"""The work behind each ``bayesdepth`` subcommand; each returns a JSON-able summary dict."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import torch

__all__ = ["demo", "diagnose", "fit", "langevin", "sample"]

#: default step sizes on the potential U = -log p(theta, data) (sum over the data)
DEFAULT_LR = {"sgld": 1e-4, "sghmc": 1e-4, "psgld": 1e-3, "sgd": 1e-4, "svag": 1e-4}


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, flush=True)


def _device(args: argparse.Namespace) -> torch.device | None:
    if args.device is None:
        return None
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {args.device!r} requested but CUDA is not available here")
    return device


def make_sampler(name: str, lr: float | None, temperature: float = 1.0):
    """A sampler object by command-line name, with a default step size."""
    from . import inference as bi

    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "sgld":
        return bi.SGLD(lr=lr, temperature=temperature)
    if name == "sghmc":
        return bi.SGHMC(lr=lr, temperature=temperature)
    if name == "psgld":
        return bi.PSGLD(lr=lr, temperature=temperature)
    if name == "sgd":
        return bi.SGD(lr=lr)
    if name == "svag":
        return bi.SVAG(lr=lr, l=4)
    raise ValueError(f"sampler must be one of {', '.join(DEFAULT_LR)}, got {name!r}")


def bayesian_network(model: str, problem, hidden: int = 16):
    """The Bayesian network used by ``sample`` (an MLP or a Bayesian ANODE)."""
    out = 1 if problem.is_regression else problem.num_classes
    likelihood = "gaussian" if problem.is_regression else "categorical"
    if model == "bnn":
        from .bnn import BayesianMLP

        return BayesianMLP(problem.in_features, out, hidden=(hidden,), likelihood=likelihood)
    from .anode import BayesianAugmentedNODE

    return BayesianAugmentedNODE(problem.in_features, out, likelihood=likelihood)


def run_chains(args: argparse.Namespace, problem, out: Path, model: str = "bnn"):
    """Run ``args.chains`` chains of the chosen sampler; write posterior.nc, summary and plots."""
    from . import inference as bi
    from .inference import diagnostics

    device = _device(args)
    problem = problem.to(device)
    net = bayesian_network(model, problem).to(problem.x.device)
    potential = bi.pyro_potential(net.model, problem.x, problem.y,
                                  subsample_size=args.batch_size)
    sampler = make_sampler(args.sampler, args.lr, args.temperature)
    chains = bi.sample(
        potential, sampler, num_chains=args.chains, num_draws=args.draws, warmup=args.warmup,
        thin=args.thin, seed=args.seed, progress=not args.quiet, checkpoint=args.checkpoint,
        resume=args.resume, on_nonfinite="stop_chain",
    )
    idata = chains.to_arviz()
    files = write_diagnostics(idata, out, "posterior")
    return net, chains, idata, files


def write_diagnostics(idata, out: Path, stem: str, var_names=None) -> dict[str, str]:
    """netCDF, summary CSV and trace/rank PNGs of ``idata`` into ``out``."""
    from .inference import diagnostics

    out.mkdir(parents=True, exist_ok=True)
    files = {"netcdf": str(diagnostics.save_netcdf(idata, out / f"{stem}.nc"))}
    table = diagnostics.summary(idata, var_names=var_names)
    table.to_csv(out / "summary.csv")
    files["summary"] = str(out / "summary.csv")
    names = var_names or _small_variables(idata)
    files["trace"] = str(diagnostics.plot_trace(idata, out / "trace.png", var_names=names))
    files["rank"] = str(diagnostics.plot_rank(idata, out / "rank.png", var_names=names))
    return files


def _small_variables(idata, limit: int = 4) -> list[str]:
    """Up to ``limit`` posterior variables, smallest first, so plots stay readable."""
    post = idata.posterior
    names = sorted(post.data_vars, key=lambda n: post[n].size)
    return names[:limit]


def _rhat_max(idata) -> float:
    from .inference import diagnostics

    values = [float(v.max()) for v in diagnostics.rhat(idata).values() if v.size]
    return max(values) if values else float("nan")


def sample(args: argparse.Namespace) -> dict[str, Any]:
    """``bayesdepth sample``: SG-MCMC chains on a Bayesian network's posterior."""
    from .problems import load_problem

    problem = load_problem(args.data, args.target, args.task, args.seed)
    out = Path(args.out)
    _, chains, idata, files = run_chains(args, problem, out, model=args.model)
    summary = {
        "command": "sample", "sampler": args.sampler, "chains": chains.num_chains,
        "draws": chains.num_draws, "failures": chains.failures, "max_rhat": _rhat_max(idata),
        "files": files,
    }
    (out / "run.json").write_text(json.dumps(summary, indent=2, default=str))
    _say(args, f"wrote {', '.join(sorted(files.values()))}")
    return summary


def diagnose(args: argparse.Namespace) -> dict[str, Any]:
    """``bayesdepth diagnose``: print the ArviZ summary of a netCDF file and write its plots."""
    from .inference import diagnostics

    path = Path(args.path)
    if not path.is_file():
        raise FileNotFoundError(f"netCDF file {str(path)!r} does not exist")
    try:
        idata = diagnostics.load_netcdf(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not an ArviZ netCDF file ({exc})") from None
    if "posterior" not in idata.groups():
        raise ValueError(f"{path} has no posterior group; groups are {', '.join(idata.groups())}")
    missing = sorted(set(args.var_names or ()) - set(idata.posterior.data_vars))
    if missing:
        raise ValueError(
            f"var-names: {', '.join(missing)} not in the posterior; variables are "
            f"{', '.join(idata.posterior.data_vars)}"
        )
    out = Path(args.out) if str(args.out) not in ("", ".") else path.parent / f"{path.stem}_plots"
    table = diagnostics.summary(idata, var_names=args.var_names)
    if not args.quiet and not args.json:
        print(table.to_string())
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "summary.csv")
    names = args.var_names or _small_variables(idata)
    files = {
        "summary": str(out / "summary.csv"),
        "trace": str(diagnostics.plot_trace(idata, out / "trace.png", var_names=names)),
        "rank": str(diagnostics.plot_rank(idata, out / "rank.png", var_names=names)),
        "forest": str(diagnostics.plot_forest(idata, out / "forest.png", var_names=names)),
    }
    _say(args, f"wrote {', '.join(sorted(files.values()))}")
    return {"command": "diagnose", "path": str(path), "max_rhat": _rhat_max(idata),
            "files": files}


def _write_history(path: Path, losses) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "loss"])
        writer.writerows(enumerate(losses, start=1))


def fit(args: argparse.Namespace) -> dict[str, Any]:  # filled in below
    raise NotImplementedError


def langevin(args: argparse.Namespace) -> dict[str, Any]:
    raise NotImplementedError


def demo(args: argparse.Namespace) -> dict[str, Any]:
    raise NotImplementedError
