"""``bayesdepth demo``: one seeded run through the whole package on embedded data.

1. Fit an SDE-BNN to the 1-D regression with the sticking-the-landing ELBO.
2. Run 4 SGLD chains on a Bayesian MLP for the same data; ArviZ netCDF, summary, trace and rank,
   and whether the chains converged (on the function at probe inputs), said in a banner.
3. Run constant-rate SGD as a sampler on Bayesian linear regression and compare its covariance
   with the exact Langevin (discrete Lyapunov) prediction.
4. Write ``index.html`` showing every figure with one line of explanation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

import bayesdepth as bd
from bayesdepth import data
from bayesdepth.plotting import loss_curve, predictive_band

from .outputs import convergence_fields, write_diagnostics, write_json
from .probes import at_probes
from .report import convergence_banner, write_index

__all__ = ["run_demo"]


def _log(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, flush=True)


def fit_sdebnn(toy, out: Path, steps: int, seed: int, quiet: bool) -> tuple[dict, list]:
    """Step 1: SDE-BNN regression by STL SVI; returns metrics and (figure, caption) pairs."""
    from bayesdepth import metrics

    model = bd.SDEBNNRegressor.toy(seed=seed).to(toy.x.device)
    settings = {**bd.SDEBNNRegressor.TOY_FIT, "num_steps": steps}
    settings["anneal_steps"] = min(settings["anneal_steps"], steps // 4)
    history = bd.fit(model.model, model.guide, toy.x, toy.y, estimator="stl",
                     progress=not quiet, seed=seed, **settings)
    pred = model.predict(toy.x_test, num_samples=64, seed=seed)
    train = model.predict(toy.x, num_samples=64, seed=seed)
    grid = toy.x_test.squeeze(-1) * 4 + 4
    gap = (grid > 2) & (grid < 6)
    values = {
        "sdebnn_train_rmse": metrics.rmse(train.mean, toy.y),
        "sdebnn_gap_sd_over_data_sd": float(pred.sd[gap].mean() / train.sd.mean()),
        "sdebnn_final_loss": history.loss[-1],
    }
    loss_curve(history.loss, out / "sdebnn_elbo.png")
    predictive_band(toy.x, toy.y, toy.x_test, pred.mean, pred.sd, out / "sdebnn_predictive.png",
                    title="SDE-BNN (STL ELBO): predictive mean ± 2 sd")
    figures = [
        ("sdebnn_predictive.png", "SDE-BNN posterior predictive on the 1-D regression: the band "
         "widens in the gap between the two clusters, where there is no data."),
        ("sdebnn_elbo.png", "Negative ELBO during STL training of the SDE-BNN."),
    ]
    return values, figures


def sgld_chains(toy, out: Path, draws: int, warmup: int, seed: int, quiet: bool):
    """Step 2: 4 SGLD chains on a Bayesian MLP; ArviZ files, the predictive band from the draws
    and the convergence verdict on the function at five probe inputs."""
    from bayesdepth import inference as bi

    net = bd.BayesianMLP(1, hidden=(16,), likelihood=bd.Gaussian(0.1), seed=seed)
    net = net.to(toy.x.device)
    potential = bi.pyro_potential(net.model, toy.x, toy.y)
    chains = bi.sample(potential, bi.SGLD(lr=5e-5), num_chains=4, num_draws=draws,
                       warmup=warmup, thin=2, seed=seed, progress=not quiet,
                       on_nonfinite="stop_chain").healthy()
    pred = net.predict(toy.x_test, posterior_samples=chains)
    # Weights are not identifiable (hidden units can be permuted), so convergence is judged on
    # the function: f at five inputs, one per region of the data and of the gap.
    probe = torch.linspace(-1.5, 1.0, 5, dtype=toy.x.dtype, device=toy.x.device).unsqueeze(-1)
    idata = chains.to_arviz(extra=at_probes(net, probe, chains), derived=False)
    diagnostics = write_diagnostics(idata, out, "sgld_posterior", headline=["f_probe"])
    verdict = diagnostics.verdict
    predictive_band(toy.x, toy.y, toy.x_test, pred.mean, pred.sd, out / "sgld_predictive.png",
                    title="Bayesian MLP, 4 SGLD chains: predictive mean ± 2 sd")
    agree = ("they are flat enough: the chains agree" if verdict.converged else
             "they are not flat: the chains have not converged (see the banner above)")
    figures = [
        ("sgld_predictive.png", "Posterior predictive of a Bayesian MLP from 4 SGLD chains "
         f"({draws} draws each after {warmup} warm-up steps)."),
        ("trace.png", "ArviZ trace plots of f_probe, the network's output at the probe inputs "
         "x = -1.5, -0.875, -0.25, 0.375, 1 (normalised), one line per chain (the quantities "
         "with the largest R-hat)."),
        ("rank.png", "ArviZ rank plots of the same quantities: flat histograms mean the chains "
         f"agree; here {agree}. Individual weights are not identifiable (hidden units can be "
         "permuted), so their R-hat is not a useful convergence check."),
    ]
    values = {"sgld_failures": chains.failures, **{f"sgld_{k}": v for k, v in
                                                   convergence_fields(verdict).items()},
              "files": diagnostics.files}
    return values, figures, verdict


def sgd_as_sampler(out: Path, draws: int, seed: int) -> tuple[dict, list]:
    """Step 3: constant SGD on Bayesian linear regression against the Langevin prediction."""
    from bayesdepth.inference import sgd_vs_prediction

    problem = data.linear_regression(num_points=100, dim=5, seed=seed)
    result = sgd_vs_prediction(problem, lr=0.05, batch_size=5, num_chains=64, num_draws=draws,
                               seed=seed, out=out)
    values = {"sgd_cov_relative_error": result.relative_error,
              "sgd_kl_to_laplace": result.kl_to_laplace}
    figures = [(
        "sgd_covariance.png",
        "Constant-rate SGD (lr 0.05, batch 5) as a sampler: its iterates' covariance (blue) "
        f"against the exact Langevin prediction (red, dashed; relative error "
        f"{result.relative_error:.1%}) and the true posterior (dotted).",
    )]
    return values, figures


def run_demo(
    out: Path,
    seed: int = 0,
    quick: bool = False,
    device: torch.device | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run the demo into ``out`` and return its summary (also written to ``out/summary.json``)."""
    start = time.perf_counter()
    toy = data.toy_regression_1d(seed=seed)
    if device is not None:
        toy = data.RegressionData(toy.x.to(device), toy.y.to(device), toy.x_test.to(device))
    settings = (dict(svi_steps=20, draws=20, warmup=20, sgd_draws=100) if quick
                else dict(svi_steps=2000, draws=500, warmup=3000, sgd_draws=2000))
    _log(quiet, "1/3 SDE-BNN on the 1-D regression (STL ELBO)")
    values, figures = fit_sdebnn(toy, out, settings["svi_steps"], seed, quiet)
    _log(quiet, "2/3 SGLD chains on a Bayesian MLP")
    sgld, more, verdict = sgld_chains(toy, out, settings["draws"], settings["warmup"], seed,
                                      quiet)
    figures += more
    _log(quiet, "3/3 SGD as a sampler against its Langevin prediction")
    sgd, more = sgd_as_sampler(out, settings["sgd_draws"], seed)
    figures += more
    summary = {"command": "demo", "out": str(out), "seed": seed, "quick": quick, **values,
               **sgd, **sgld}
    summary["seconds"] = time.perf_counter() - start
    write_json(out / "summary.json", summary)
    notes = [
        f"Seed {seed}; {'quick settings' if quick else 'full settings'}; "
        f"{summary['seconds']:.0f} s. Re-run with `bayesdepth demo --seed {seed}` for the same "
        "numbers.",
        f"SDE-BNN train RMSE {values['sdebnn_train_rmse']:.3f}; its predictive sd in the gap is "
        f"{values['sdebnn_gap_sd_over_data_sd']:.1f}x that on the data.",
        "The SGLD posterior (weights, the probe outputs f_probe and the pointwise "
        "log-likelihood for arviz.loo) is in sgld_posterior.nc; open it with "
        "arviz.from_netcdf or `bayesdepth diagnose`.",
    ]
    page = write_index(out, "bayesdepth demo", figures, notes,
                       tables=[("ArviZ summary of f_probe from the SGLD chains", "summary.csv")],
                       banners=[convergence_banner(verdict, ["f_probe"], "4 SGLD chains")])
    _log(quiet, f"wrote {page} (open it in a browser) and the files beside it")
    return summary
