"""The work behind each ``bayesdepth`` subcommand: plain functions with keyword arguments, each
returning a JSON-able summary dict (the parser in :mod:`.cli` only maps flags onto them)."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

import torch

from bayesdepth.inference.checkpoints import CheckpointMismatch

from . import recipes
from .outputs import (
    convergence_fields,
    judge,
    warn,
    write_diagnostics,
    write_json,
    write_plots,
)
from .probes import PROBE_NAMES, at_probes, probe_inputs
from .problems import Problem, load_problem
from .report import chains_page
from .runs import Reporter, output_folder, placement, resolve_device

__all__ = ["demo", "diagnose", "fit", "langevin", "predict", "sample"]


def sample(
    *, data: str = "toy1d", target: str | None = None, task: str = "auto", model: str = "bnn",
    sampler: str = "sgld", chains: int = 4, draws: int = 500, warmup: int = 500, thin: int = 1,
    lr: float | None = None, temperature: float = 1.0, batch_size: int | None = None,
    checkpoint: Path | None = None, checkpoint_every: int = 100, resume: bool = False,
    overwrite: bool = False, extend: bool = False, out: Path = Path("runs/sample"),
    seed: int = 0, device: str | None = None, quiet: bool = False, distributed: bool = False,
) -> dict[str, Any] | None:
    """``bayesdepth sample``: SG-MCMC or SGD chains on a Bayesian network's posterior.

    Without ``lr`` a short pilot picks a stable step size for these data
    (:func:`bayesdepth.inference.find_step_size`). Chains that stop at a non-finite value are
    named and left out of the diagnostics; when all stop the command fails. Convergence is judged
    on the network's output at probe inputs (``summary.csv``, the headline of ``index.html``);
    the weights are an appendix (``summary_appendix.csv``). With ``distributed`` (under
    ``torchrun``) the chains are split across the processes and rank 0 writes the files.
    """
    from bayesdepth import inference as bi

    place, main = placement(device, distributed)
    say = Reporter(quiet or not main)
    if main:
        out = output_folder(out, "--out")
    implicit = checkpoint is None
    if implicit:  # the draws are kept as they come, so a late failure does not lose them
        for flag, given in (("--resume", resume), ("--overwrite", overwrite),
                            ("--extend", extend)):
            if given:
                raise ValueError(f"{flag} needs --checkpoint naming the checkpoint folder")
        checkpoint, resume, extend = out / "checkpoint", True, True
    checkpoint = output_folder(checkpoint, "--checkpoint")
    problem = load_problem(data, target, task, seed).to(place)
    recipes.check_sampler(sampler, temperature)  # before any work
    net, start = recipes.sampling_model(model, problem, seed)
    net = net.to(problem.x.device)
    init = None if start is None else {k: v.expand(chains, *v.shape).clone()
                                       for k, v in start.items()}
    pilot = None
    with warnings.catch_warnings():  # said once, in one line, below
        warnings.filterwarnings("ignore", "torch.func.vmap failed", RuntimeWarning)
        potential = bi.pyro_potential(net.model, problem.x, problem.y,
                                      subsample_size=batch_size)
        if lr is None:
            pilot = bi.find_step_size(
                potential, lambda step: recipes.make_sampler(sampler, step, temperature),
                num_chains=chains, init=init, seed=seed)
            lr = pilot.lr
            say(f"{sampler}: {pilot}")
        run = dict(num_chains=chains, init=init, num_draws=draws, warmup=warmup, thin=thin,
                   seed=seed, progress=not quiet, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every, resume=resume, extend=extend,
                   on_nonfinite="stop_chain", distributed=distributed)
        make = lambda: recipes.make_sampler(sampler, lr, temperature)  # noqa: E731
        try:
            result = bi.sample(potential, make(), overwrite=overwrite, **run)
        except CheckpointMismatch:
            if not implicit:
                raise
            result = bi.sample(potential, make(), overwrite=True, **run)  # another run's cache
    if not main:
        return None
    if not potential.vectorize:
        warn(f"the {model} model cannot be vmapped over chains (torch.func.vmap cannot trace "
             "it); its chains ran one by one")
    healthy = _healthy_chains(result, lr)
    failed = result.failed_chains
    probes = at_probes(net, probe_inputs(problem.x), healthy)
    idata = healthy.to_arviz(extra=probes, derived=False)
    diagnostics = write_diagnostics(idata, out, "posterior", headline=list(probes))
    verdict = diagnostics.verdict
    if not verdict.converged:
        warn(verdict.message())
    page = chains_page(out, f"bayesdepth sample: {sampler} on {problem.name}", verdict,
                       list(probes), notes=[
                           f"{result.num_chains} chains of {sampler}, step size {lr:.3g} "
                           f"({'chosen by a pilot' if pilot else 'given by --lr'}), "
                           f"{warmup} warm-up steps, {draws} draws (thin {thin}), seed {seed}."
                           + (f" Stopped chains: {result.describe_failures()}." if failed else "")
                       ])
    summary = {
        "command": "sample", "sampler": sampler, "data": problem.name, "lr": lr,
        "lr_source": "pilot" if pilot else "--lr",
        "pilot": None if pilot is None else [list(t) for t in pilot.tried],
        "chains": result.num_chains, "draws": result.num_draws, "failures": result.failures,
        "failed_chains": failed, **convergence_fields(verdict),
        "files": {**diagnostics.files, "report": str(page)},
    }
    write_json(out / "run.json", summary)
    say(f"wrote {page} and the files beside it")
    return summary


def _healthy_chains(result, lr: float):
    """The chains that never stopped; one warning line naming the others, or a failure when
    every chain stopped."""
    failed = result.failed_chains
    if len(failed) == result.num_chains:
        raise FloatingPointError(
            f"all {len(failed)} chains stopped at a non-finite value "
            f"({result.describe_failures()}) with step size {lr:.3g}; pass a smaller --lr")
    if failed:
        warn(f"{len(failed)} of {result.num_chains} chains stopped at a non-finite value "
             f"({result.describe_failures()}); the diagnostics use the other "
             f"{result.num_chains - len(failed)}")
    return result.healthy()


def diagnose(
    *, path: Path, var_names: list[str] | None = None, out: Path | None = None,
    quiet: bool = False, json_output: bool = False,
) -> dict[str, Any]:
    """``bayesdepth diagnose``: print the ArviZ summary of a netCDF file, judge convergence (on
    ``var_names``, else on the probe predictions when the file has them) and write its plots."""
    from bayesdepth.inference import diagnostics

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"netCDF file {str(path)!r} does not exist")
    out = output_folder(path.parent / f"{path.stem}_plots" if out is None else out, "--out")
    try:
        idata = diagnostics.load_netcdf(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not an ArviZ netCDF file ({exc})") from None
    if "posterior" not in idata.groups():
        raise ValueError(f"{path} has no posterior group; groups are {', '.join(idata.groups())}")
    missing = sorted(set(var_names or ()) - set(idata.posterior.data_vars))
    if missing:
        raise ValueError(
            f"var-names: {', '.join(missing)} not in the posterior; variables are "
            f"{', '.join(idata.posterior.data_vars)}"
        )
    headline = var_names or [n for n in idata.posterior.data_vars if n in PROBE_NAMES] or None
    table, verdict = judge(idata, var_names=headline)
    if not quiet and not json_output:
        print(table.to_string())
    if not verdict.converged:
        warn(verdict.message())
    table.to_csv(out / "summary.csv")
    files = {"summary": str(out / "summary.csv"),
             **write_plots(idata, table, out, headline, ("trace", "rank", "forest"))}
    Reporter(quiet)(f"wrote {', '.join(sorted(files.values()))}")
    return {"command": "diagnose", "path": str(path), **convergence_fields(verdict),
            "files": files}


# ---------------------------------------------------------------------------------- fitting
def _write_history(path: Path, losses) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "loss"])
        writer.writerows(enumerate(losses, start=1))


def predictive_summary(net, problem: Problem, num_samples: int, out: Path,
                       seed: int) -> tuple[dict, list]:
    """Metrics on the test data (or a band plot for 1-D regression); returns (metrics, figures)."""
    from bayesdepth import metrics
    from bayesdepth.plotting import predictive_band

    pred = net.predict(problem.x_test, num_samples=num_samples, seed=seed)
    if not problem.is_regression:
        return {
            "test_accuracy": metrics.accuracy(pred.probs, problem.y_test),
            "test_nll": metrics.nll(pred.probs, problem.y_test),
            "test_ece": metrics.expected_calibration_error(pred.probs, problem.y_test),
        }, []
    values, figures = {}, []
    if problem.y_test is not None:
        values["test_rmse"] = metrics.rmse(pred.mean, problem.y_test)
    train = net.predict(problem.x, num_samples=num_samples, seed=seed)
    values["train_rmse"] = metrics.rmse(train.mean, problem.y)
    if problem.in_features == 1:
        figures.append(predictive_band(problem.x, problem.y, problem.x_test, pred.mean, pred.sd,
                                       out / "predictive.png"))
    return values, figures


def fit(
    *, data: str = "toy1d", target: str | None = None, task: str = "auto",
    model: str = "sdebnn", estimator: str = "stl", steps: int = 1000, lr: float = 1e-2,
    batch_size: int | None = None, num_samples: int = 64, out: Path = Path("runs/fit"),
    seed: int = 0, device: str | None = None, quiet: bool = False, distributed: bool = False,
) -> dict[str, Any] | None:
    """``bayesdepth fit``: SVI with the chosen estimator; writes the history, the curve, the
    predictions and the fitted model (``model.pt``, for ``bayesdepth predict``).

    With ``distributed`` (under ``torchrun``) every rank fits the same model on its own
    minibatches (``bayesdepth.fit(distributed=True)``); rank 0 writes the files and returns the
    summary, the other ranks return None.
    """
    import bayesdepth as bd
    from bayesdepth.plotting import loss_curve

    if estimator == "kl" and model != "sdebnn":
        raise ValueError("estimator 'kl' (KL-only) applies to weight paths: use --model sdebnn")
    place, main = placement(device, distributed)
    quiet = quiet or not main
    if main:
        out = output_folder(out, "--out")
    problem = load_problem(data, target, task, seed).to(place)
    net = recipes.fit_model(model, problem, seed).to(problem.x.device)
    losses: list[float] = []
    try:
        history = bd.fit(net.model, net.guide, problem.x, problem.y, num_steps=steps, lr=lr,
                         estimator=estimator, batch_size=batch_size, progress=not quiet,
                         seed=seed, distributed=distributed,
                         callback=lambda step, loss: losses.append(loss))
    except FloatingPointError:
        if main:  # what was learnt about the failure is kept
            _write_history(out / "history.csv", losses)
        raise
    if not main:
        return None
    _write_history(out / "history.csv", history.loss)
    model_file = bd.save(net, out / "model.pt", metadata={
        "data": problem.name, "preprocessing": problem.preprocessing.as_dict()})
    figures = [loss_curve(history.loss, out / "elbo.png")]
    values, more = predictive_summary(net, problem, num_samples, out, seed)
    figures += more
    summary = {"command": "fit", "model": model, "data": problem.name, "estimator": estimator,
               "steps": history.steps, "final_loss": history.loss[-1],
               "seconds": history.seconds, **values,
               "files": [str(f) for f in figures] + [str(out / "history.csv"), str(model_file)]}
    write_json(out / "run.json", summary)
    Reporter(quiet)(f"fit {model} on {problem.name}: " + ", ".join(
        f"{k}={v:.4g}" for k, v in values.items()) + f"; wrote {out}")
    return summary


def predict(
    *, model_file: Path, data: Path, out: Path = Path("predictions.csv"), num_samples: int = 64,
    seed: int = 0, device: str | None = None, quiet: bool = False,
) -> dict[str, Any]:
    """``bayesdepth predict``: a model saved by ``fit`` applied to a CSV file, one row per input
    (mean and sd in the target's units, or the class probabilities and the predicted label)."""
    import bayesdepth as bd
    from bayesdepth import metrics

    from .problems import Preprocessing, read_inputs

    model_file = Path(model_file)
    net = bd.load(model_file, device=resolve_device(device))
    pre = Preprocessing.from_dict(bd.serialization.read_metadata(model_file)["preprocessing"])
    out = Path(out)
    output_folder(out.parent, "--out")
    dtype = next(net.parameters()).dtype
    x, y_raw = read_inputs(data, pre, dtype)
    pred = net.predict(x.to(next(net.parameters()).device), num_samples=num_samples, seed=seed)
    summary: dict[str, Any] = {"command": "predict", "rows": x.shape[0], "file": str(out)}
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if pre.is_regression:
            mean = (pred.mean.double().cpu() * pre.y_std + pre.y_mean).tolist()
            sd = (pred.sd.double().cpu() * pre.y_std).tolist()
            writer.writerow(["mean", "sd"])
            writer.writerows(zip(mean, sd))
            if y_raw is not None:
                summary["rmse"] = metrics.rmse(torch.tensor(mean), y_raw)
        else:
            labels = [_label(c) for c in pre.classes]
            probs = pred.probs.double().cpu()
            writer.writerow(["predicted", *(f"prob_{c}" for c in labels)])
            for row in probs.tolist():
                writer.writerow([labels[max(range(len(row)), key=row.__getitem__)], *row])
            if y_raw is not None:
                classes = torch.tensor(pre.classes, dtype=torch.float64)
                hit = classes[probs.argmax(-1)] == y_raw
                summary["accuracy"] = float(hit.double().mean())
    Reporter(quiet)(f"wrote {x.shape[0]} predictions to {out}")
    return summary


def _label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# ---------------------------------------------------------------------------------- theory
def langevin_problem(problem: str, target: str | None, seed: int):
    """Bayesian linear regression (a quadratic loss) with its exact posterior.

    ``"quadratic"``: the embedded generator (d = 5, N = 100); a CSV path: standardised features
    and target, prior N(0, I), noise scale set to the residual sd of least squares.
    """
    from bayesdepth import data

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


def langevin(
    *, problem: str = "quadratic", target: str | None = None, lr: float = 0.05,
    batch_size: int = 5, momentum: float = 0.0, weight_decay: float = 0.0, chains: int = 256,
    steps: int = 3000, out: Path = Path("runs/langevin"), seed: int = 0, quiet: bool = False,
) -> dict[str, Any]:
    """``bayesdepth langevin``: constant SGD's stationary covariance, predicted and measured."""
    from bayesdepth.inference import sgd_vs_prediction

    out = output_folder(out, "--out")
    data = langevin_problem(problem, target, seed)
    result = sgd_vs_prediction(
        data, lr=lr, batch_size=batch_size, momentum=momentum, weight_decay=weight_decay,
        num_chains=chains, num_draws=steps, seed=seed, out=out,
    )
    se = float(result.standard_error.norm() / result.predicted.norm())
    summary = {
        "command": "langevin", "problem": problem, "lr": lr, "batch_size": batch_size,
        "momentum": momentum, "relative_error": result.relative_error,
        "relative_standard_error": se, "kl_to_laplace": result.kl_to_laplace,
        "figure": str(result.figure),
    }
    write_json(out / "run.json", summary)
    Reporter(quiet)(
        f"SGD covariance vs Langevin prediction: relative Frobenius error "
        f"{result.relative_error:.3%} (Monte-Carlo standard error {se:.3%}); KL to the Laplace "
        f"posterior {result.kl_to_laplace:.3g}; wrote {result.figure}")
    return summary


def demo(
    *, quick: bool = False, out: Path = Path("runs/demo"), seed: int = 0,
    device: str | None = None, quiet: bool = False,
) -> dict[str, Any]:
    """``bayesdepth demo``: the main job, end to end on embedded data (see :mod:`.demo`)."""
    from .demo import run_demo

    return run_demo(output_folder(out, "--out"), seed=seed, quick=quick,
                    device=resolve_device(device), quiet=quiet)
