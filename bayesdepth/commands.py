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


def bayesian_network(model: str, problem, hidden: int = 16, seed: int = 0):
    """The Bayesian network used by ``sample`` (an MLP or a Bayesian ANODE)."""
    out = 1 if problem.is_regression else problem.num_classes
    likelihood = "gaussian" if problem.is_regression else "categorical"
    if model == "bnn":
        from .bnn import BayesianMLP

        return BayesianMLP(problem.in_features, out, hidden=(hidden,), likelihood=likelihood)
    from .anode import ODESolver

    # A fixed-step solver: chains visit weights where an adaptive solver's steps would collapse.
    return variational_model("anode", problem, seed, solver=ODESolver("rk4", step_size=0.25))


def run_chains(args: argparse.Namespace, problem, out: Path, model: str = "bnn"):
    """Run ``args.chains`` chains of the chosen sampler; write posterior.nc, summary and plots."""
    from . import inference as bi

    device = _device(args)
    problem = problem.to(device)
    net = bayesian_network(model, problem, seed=args.seed).to(problem.x.device)
    potential = bi.pyro_potential(net.model, problem.x, problem.y,
                                  subsample_size=args.batch_size)
    sampler = make_sampler(args.sampler, args.lr, args.temperature)
    init = None
    if model == "anode":  # start every chain at the maximum-likelihood network
        init = {f"net.{name}": p.detach().expand(args.chains, *p.shape).clone()
                for name, p in net.arch.named_parameters()}
    chains = bi.sample(
        potential, sampler, num_chains=args.chains, init=init, num_draws=args.draws,
        warmup=args.warmup, thin=args.thin, seed=args.seed, progress=not args.quiet,
        checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
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


def variational_model(model: str, problem, seed: int = 0, steps: int = 10, solver=None):
    """A model object with ``model``, ``guide`` and ``predict`` for ``fit`` and ``sample``.

    The Bayesian ANODE's guide starts at a network first trained by maximum likelihood
    (200 Adam steps), which is much faster than starting SVI from a random network.
    """
    out = 1 if problem.is_regression else problem.num_classes
    likelihood = "gaussian" if problem.is_regression else "categorical"
    if model == "sdebnn":
        from .sde import SDEBNNClassifier, SDEBNNRegressor

        if problem.is_regression:
            return SDEBNNRegressor(problem.in_features, width=16, steps=steps, noise=0.1)
        return SDEBNNClassifier(problem.in_features, problem.num_classes, width=16, steps=steps)
    if model == "anode":
        from .anode import AugmentedNeuralODE, BayesianAugmentedNODE, train_anode

        net = AugmentedNeuralODE(problem.in_features, out, augment_dim=1, hidden=32,
                                 solver=solver)
        net = net.to(device=problem.x.device, dtype=problem.x.dtype)
        loss = "mse" if problem.is_regression else "cross_entropy"
        train_anode(net, problem.x, problem.y, loss=loss, steps=200,
                    batch_size=min(128, len(problem.x)), seed=seed)
        return BayesianAugmentedNODE(net, likelihood=likelihood, noise_scale=0.1)
    from .bnn import BayesianMLP

    return BayesianMLP(problem.in_features, out, hidden=(32,), likelihood=likelihood)


def predictive_summary(net, problem, num_samples: int, out: Path) -> tuple[dict, list]:
    """Metrics on the test data (or a band plot for 1-D regression); returns (metrics, figures)."""
    from . import metrics
    from .plotting import predictive_band

    pred = net.predict(problem.x_test, num_samples=num_samples)
    figures = []
    if not problem.is_regression:
        probs = pred
        values = {
            "test_accuracy": metrics.accuracy(probs, problem.y_test),
            "test_nll": metrics.nll(probs, problem.y_test),
            "test_ece": metrics.expected_calibration_error(probs, problem.y_test),
        }
        return values, figures
    values = {}
    if problem.y_test is not None:
        values["test_rmse"] = metrics.rmse(pred.mean, problem.y_test)
    train = net.predict(problem.x, num_samples=num_samples)
    values["train_rmse"] = metrics.rmse(train.mean, problem.y)
    if problem.in_features == 1:
        figures.append(predictive_band(problem.x, problem.y, problem.x_test, pred.mean, pred.sd,
                                       out / "predictive.png"))
    return values, figures


def fit(args: argparse.Namespace) -> dict[str, Any]:
    """``bayesdepth fit``: SVI with the chosen estimator; writes history, curve and predictions."""
    import pyro

    from .plotting import loss_curve
    from .problems import load_problem
    from .training import fit as run_svi

    if args.estimator == "kl" and args.model != "sdebnn":
        raise ValueError("estimator 'kl' (KL-only) applies to weight paths: use --model sdebnn")
    problem = load_problem(args.data, args.target, args.task, args.seed).to(_device(args))
    pyro.clear_param_store()
    pyro.set_rng_seed(args.seed)
    net = variational_model(args.model, problem, args.seed).to(problem.x.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    history = run_svi(net.model, net.guide, problem.x, problem.y, num_steps=args.steps,
                      lr=args.lr, estimator=args.estimator, batch_size=args.batch_size,
                      progress=not args.quiet, seed=args.seed)
    _write_history(out / "history.csv", history.loss)
    figures = [loss_curve(history.loss, out / "elbo.png")]
    values, more = predictive_summary(net, problem, args.num_samples, out)
    figures += more
    summary = {"command": "fit", "model": args.model, "data": problem.name,
               "estimator": args.estimator, "steps": history.steps,
               "final_loss": history.loss[-1], "seconds": history.seconds, **values,
               "files": [str(f) for f in figures] + [str(out / "history.csv")]}
    (out / "run.json").write_text(json.dumps(summary, indent=2, default=str))
    _say(args, f"fit {args.model} on {problem.name}: " + ", ".join(
        f"{k}={v:.4g}" for k, v in values.items()) + f"; wrote {out}")
    return summary


def langevin_problem(problem: str, target: str | None, seed: int):
    """Bayesian linear regression (a quadratic loss) with its exact posterior.

    ``"quadratic"``: the embedded generator (d = 5, N = 100); a CSV path: standardised features
    and target, prior N(0, I), noise scale set to the residual sd of least squares.
    """
    from . import data
    from .tabular import read_csv

    if problem == "quadratic":
        return data.linear_regression(num_points=100, dim=5, seed=seed)
    if not problem.lower().endswith(".csv"):
        raise ValueError(f"problem must be 'quadratic' or a path to a CSV file, got {problem!r}")
    if target is None:
        raise ValueError(f"target: a CSV file ({problem}) needs --target naming the label column")
    table = read_csv(problem, target=target, dtype=torch.float64)
    x = (table.x - table.x.mean(0)) / table.x.std(0).clamp_min(1e-12)
    y = (table.y - table.y.mean()) / table.y.std().clamp_min(1e-12)
    if len(y) <= x.shape[1] + 1:
        raise ValueError(f"{problem}: need more rows ({len(y)}) than features + 1 ({x.shape[1]})")
    residual = y - x @ torch.linalg.lstsq(x, y.unsqueeze(-1)).solution.squeeze(-1)
    noise = float(residual.std().clamp_min(1e-3))
    return data.conjugate_linear_regression(x, y, prior_scale=1.0, noise_scale=noise)


def langevin(args: argparse.Namespace) -> dict[str, Any]:
    """``bayesdepth langevin``: constant SGD's stationary covariance, predicted and measured."""
    from .inference.compare import sgd_vs_prediction

    problem = langevin_problem(args.problem, args.target, args.seed)
    out = Path(args.out)
    result = sgd_vs_prediction(
        problem, lr=args.lr, batch_size=args.batch_size, momentum=args.momentum,
        weight_decay=args.weight_decay, num_chains=args.chains, num_draws=args.steps,
        seed=args.seed, out=out,
    )
    se = float(result.standard_error.norm() / result.predicted.norm())
    summary = {
        "command": "langevin", "problem": args.problem, "lr": args.lr,
        "batch_size": args.batch_size, "momentum": args.momentum,
        "relative_error": result.relative_error, "relative_standard_error": se,
        "kl_to_laplace": result.kl_to_laplace, "figure": str(result.figure),
    }
    (out / "run.json").write_text(json.dumps(summary, indent=2, default=str))
    _say(args, f"SGD covariance vs Langevin prediction: relative Frobenius error "
               f"{result.relative_error:.3%} (Monte-Carlo standard error {se:.3%}); "
               f"KL to the Laplace posterior {result.kl_to_laplace:.3g}; wrote {result.figure}")
    return summary


def demo(args: argparse.Namespace) -> dict[str, Any]:
    """``bayesdepth demo``: the main job, end to end on embedded data (see :mod:`.demo`)."""
    from .demo import run_demo

    return run_demo(Path(args.out), seed=args.seed, quick=args.quick, device=_device(args),
                    quiet=args.quiet)
