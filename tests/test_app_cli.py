"""The command line: help, errors as one line with exit status 2, config files, each subcommand."""

import json
import subprocess
import sys

import arviz as az
import pytest

from bayesdepth.app.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SUBCOMMANDS = ["demo", "fit", "predict", "sample", "diagnose", "langevin"]


def run_cli(*argv):
    """The console script in a fresh process: (exit status, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "bayesdepth.app", *argv],
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def assert_png(path):
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC, path


def test_every_flag_is_an_argument_of_its_command():
    """The option table and the command functions agree, so no flag is silently dropped."""
    import inspect

    from bayesdepth.app import cli, commands

    assert sorted(cli.COMMANDS) == sorted(SUBCOMMANDS)
    for name, (_, options) in cli.COMMANDS.items():
        flags = {o.dest for o in options} - {"config", "threads", "json"}
        if name == "diagnose":
            flags.add("json_output")
        params = set(inspect.signature(getattr(commands, name)).parameters)
        assert flags == params, name


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help(command, capsys):
    assert main([command, "--help"]) == 0
    assert "usage: bayesdepth " + command in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["fit", "--model", "resnet"], "invalid choice: 'resnet'"),
        (["fit", "--data", "imagenet"], "data must be one of toy1d, annuli, moons, digits"),
        (["fit", "--steps", "0", "--quiet"], "steps"),
        (["sample", "--chains", "0", "--quiet"], "num_chains"),
        (["diagnose", "missing.nc"], "does not exist"),
        (["fit", "--config", "missing.toml"], "does not exist"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(argv, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(("text", "needle"), [
    ("a,label\n1,3\n2,3\n4,3\n", "single class (3)"),
    ("a,label\n1,3\n", "need at least 2 data rows"),
])
def test_csv_targets_that_cannot_be_learned(text, needle, tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text(text)
    assert main(["fit", "--model", "bnn", "--data", str(path), "--target", "label", "--quiet",
                 "--out", str(tmp_path / "o")]) == 2
    assert needle in capsys.readouterr().err


def test_csv_errors_name_row_and_column(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,y\n1,2,3\n4,,6\n")
    assert main(["fit", "--data", str(bad), "--target", "y", "--quiet"]) == 2
    assert "missing value in row 3, column 'b'" in capsys.readouterr().err
    assert main(["fit", "--data", str(bad), "--target", "z", "--quiet"]) == 2
    assert "column(s) 'z' not found" in capsys.readouterr().err
    assert bad.read_text() == "a,b,y\n1,2,3\n4,,6\n"


def test_config_file_sets_defaults_and_rejects_unknown_keys(tmp_path, capsys):
    from bayesdepth.app.cli import parse_args

    config = tmp_path / "run.toml"
    config.write_text('seed = 7\n[fit]\nmodel = "bnn"\nsteps = 12\n')
    args = parse_args(["fit", "--config", str(config), "--steps", "5"])
    assert (args.model, args.steps, args.seed) == ("bnn", 5, 7)
    config.write_text("[fit]\nwidth = 3\n")
    assert main(["fit", "--config", str(config)]) == 2
    assert "unknown option(s) width" in capsys.readouterr().err
    # config values meet the flags' choices and types
    config.write_text('[fit]\nmodel = "bogus"\n')
    assert main(["fit", "--config", str(config)]) == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
    config.write_text('[sample]\nchains = "many"\n')
    assert main(["sample", "--config", str(config)]) == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err


def strict_loads(text):
    """JSON that must be strict: NaN and Infinity are errors."""
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_sample_then_diagnose(tmp_path):
    out = tmp_path / "chains"
    code, stdout, stderr = run_cli(
        "sample", "--model", "bnn", "--data", "toy1d", "--chains", "2", "--draws", "20",
        "--warmup", "20", "--out", str(out), "--quiet", "--json",
    )
    assert code == 0, stderr
    summary = strict_loads(stdout)
    assert summary["chains"] == 2 and summary["draws"] == 20
    assert summary["lr_source"] == "pilot" and summary["converged"] is False
    assert "bayesdepth: warning: not converged" in stderr  # 20 draws: far from 100 per chain
    idata = az.from_netcdf(out / "posterior.nc")
    assert idata.posterior.sizes["chain"] == 2 and idata.posterior.sizes["draw"] == 20
    assert {"log_likelihood", "observed_data"} <= set(idata.groups())
    assert list(idata.observed_data.data_vars) == ["y"]
    headline = (out / "summary.csv").read_text().splitlines()
    assert headline[0].startswith(",mean,sd") and headline[1].startswith("f_probe[0]")
    assert "layers.0.weight" in (out / "summary_appendix.csv").read_text()
    page = (out / "index.html").read_text()
    assert "banner bad" in page and "NOT converged" in page
    assert_png(out / "trace.png")
    assert_png(out / "rank.png")

    code, stdout, stderr = run_cli("diagnose", str(out / "posterior.nc"), "--out",
                                   str(tmp_path / "diag"))
    assert code == 0, stderr
    assert "r_hat" in stdout and "f_probe[0]" in stdout
    assert "bayesdepth: warning: not converged" in stderr
    for name in ("trace.png", "rank.png", "forest.png"):
        assert_png(tmp_path / "diag" / name)


def _regression_csv(path, rows=300):
    """An ordinary regression table: 300 rows, 2 features, a target in its own units."""
    import math
    import random

    rng = random.Random(0)
    lines = ["rooms,area,price"]
    for _ in range(rows):
        rooms, area = rng.uniform(0, 10), rng.gauss(50, 10)
        price = 1000 + 80 * rooms + 3 * area + 5 * math.sin(rooms) * area + rng.gauss(0, 40)
        lines.append(f"{rooms:.3f},{area:.2f},{price:.2f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sample_works_by_default_on_an_ordinary_csv(tmp_path, capsys):
    """The command of issue 12 with default settings: a stable step size from the pilot, no
    chain lost, finite R-hat on the function-space probes, strict JSON."""
    data = _regression_csv(tmp_path / "reg.csv")
    out = tmp_path / "run"
    code = main(["sample", "--data", str(data), "--target", "price", "--chains", "4",
                 "--draws", "300", "--warmup", "1000", "--out", str(out), "--quiet", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = strict_loads(captured.out)
    assert summary["lr_source"] == "pilot" and summary["failed_chains"] == []
    assert summary["pilot"][-1][1] == "stable"
    assert summary["max_rhat"] is not None and summary["max_rhat"] < 10
    table = (out / "summary.csv").read_text().splitlines()
    assert len(table) == 6 and all(row.startswith("f_probe") for row in table[1:])
    strict_loads((out / "run.json").read_text())


def _poisoned_sgld(lr):
    """An SGLD that turns chain 1 to NaN at step 3 (a chain that diverges)."""
    from bayesdepth.inference import SGLD

    class Poisoned(SGLD):
        def step(self, state, grad_fn, generator=None):
            new, info = super().step(state, grad_fn, generator)
            if state.step == 3:
                params = {k: v.clone() for k, v in new.params.items()}
                params[next(iter(params))][1] = float("nan")
                new = new.replace(params=params)
            return new, info

    return Poisoned(lr)


def test_sample_names_the_chains_that_failed(tmp_path, capsys, monkeypatch):
    from bayesdepth.app import recipes

    monkeypatch.setattr(recipes, "make_sampler",
                        lambda name, lr, temperature=1.0: _poisoned_sgld(lr))
    out = tmp_path / "run"
    code = main(["sample", "--chains", "4", "--draws", "10", "--warmup", "5", "--lr", "1e-4",
                 "--out", str(out), "--quiet", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert ("1 of 4 chains stopped at a non-finite value (chain 1 at step 3); the diagnostics "
            "use the other 3") in captured.err
    summary = strict_loads(captured.out)
    assert summary["failed_chains"] == [1] and summary["failures"] == [[1, 3]]
    assert az.from_netcdf(out / "posterior.nc").posterior.sizes["chain"] == 3


def test_sample_fails_in_one_line_when_every_chain_fails(tmp_path, capsys):
    code = main(["sample", "--chains", "3", "--draws", "5", "--warmup", "0", "--lr", "1e6",
                 "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert err.startswith("bayesdepth: failed: all 3 chains stopped at a non-finite value")
    assert "--lr" in err and len(err.splitlines()) == 1


def test_sample_with_minibatches_on_the_bayesian_mlp(tmp_path, capsys):
    """--batch-size on the package's own model (once an IndexError from its deterministic f)."""
    out = tmp_path / "run"
    code = main(["sample", "--batch-size", "16", "--chains", "2", "--draws", "10", "--warmup",
                 "5", "--lr", "1e-4", "--out", str(out), "--quiet", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    idata = az.from_netcdf(out / "posterior.nc")
    assert list(idata.observed_data.data_vars) == ["y"]
    assert idata.log_likelihood["y"].shape[:2] == (2, 10)


def test_sample_checkpoint_and_resume(tmp_path):
    """Six draws with checkpoints, then --resume to twelve: the same as twelve in one go."""
    common = ["sample", "--chains", "2", "--warmup", "5", "--lr", "1e-4", "--quiet"]
    ckpt = tmp_path / "ckpt"
    code, _, stderr = run_cli(*common, "--draws", "12", "--out", str(tmp_path / "whole"))
    assert code == 0, stderr
    code, _, stderr = run_cli(*common, "--draws", "6", "--out", str(tmp_path / "part"),
                              "--checkpoint", str(ckpt), "--checkpoint-every", "3")
    assert code == 0, stderr
    assert any(ckpt.iterdir())
    code, _, stderr = run_cli(*common, "--draws", "12", "--out", str(tmp_path / "resumed"),
                              "--checkpoint", str(ckpt), "--resume")
    assert code == 2 and "pass extend=True" in stderr  # a finished 6-draw run is not extended
    code, _, stderr = run_cli(*common, "--draws", "12", "--out", str(tmp_path / "resumed"),
                              "--checkpoint", str(ckpt), "--resume", "--extend")
    assert code == 0, stderr
    whole = az.from_netcdf(tmp_path / "whole" / "posterior.nc").posterior
    resumed = az.from_netcdf(tmp_path / "resumed" / "posterior.nc").posterior
    assert resumed.sizes["draw"] == 12
    for name in whole.data_vars:
        assert (whole[name].values == resumed[name].values).all(), name
    # the checkpoint belongs to its run: other data, another seed or fewer draws are refused
    for change, needle in ((["--data", "moons"], "potential"), (["--seed", "1"], "randomness"),
                           (["--draws", "5"], "holds 12 draws")):
        args = [*common, "--draws", "12", "--checkpoint", str(ckpt), "--resume", "--out",
                str(tmp_path / "other"), *change]
        code, _, stderr = run_cli(*args)
        assert code == 2 and needle in stderr and "Traceback" not in stderr, stderr
    code, _, stderr = run_cli(*common, "--draws", "4", "--checkpoint", str(ckpt), "--overwrite",
                              "--out", str(tmp_path / "fresh"))
    assert code == 0, stderr  # --overwrite starts afresh


@pytest.mark.parametrize(
    ("model", "data", "extra"),
    [("bnn", "toy1d", []), ("sdebnn", "toy1d", ["--estimator", "kl"]),
     ("anode", "moons", ["--batch-size", "64"])],
)
def test_fit_writes_history_and_figures(model, data, extra, tmp_path):
    out = tmp_path / model
    code, stdout, stderr = run_cli("fit", "--model", model, "--data", data, "--steps", "5",
                                   "--num-samples", "4", "--out", str(out), "--quiet", "--json",
                                   *extra)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["steps"] == 5 and summary["model"] == model
    assert (out / "history.csv").read_text().startswith("step,loss")
    assert (out / "model.pt").is_file()
    assert_png(out / "elbo.png")
    if data == "toy1d":
        assert_png(out / "predictive.png")
    else:
        assert 0.0 <= summary["test_accuracy"] <= 1.0


def test_fit_reads_a_csv_file_and_predict_applies_the_saved_model(tmp_path):
    rows = ["a,b,label"] + [f"{i % 7},{(i * 3) % 5},{2 * int(i % 7 > 3) + 5}" for i in range(40)]
    path = tmp_path / "table.csv"
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "o"
    code, stdout, stderr = run_cli("fit", "--model", "bnn", "--data", str(path), "--target",
                                   "label", "--steps", "200", "--out", str(out), "--quiet",
                                   "--json")
    assert code == 0, stderr
    assert "test_accuracy" in json.loads(stdout)
    new = tmp_path / "new.csv"  # columns in another order, no label column
    new.write_text("b,a\n0,0\n4,6\n2,1\n")
    preds = tmp_path / "preds.csv"
    assert main(["predict", "--model-file", str(out / "model.pt"), "--data", str(new),
                 "--out", str(preds), "--quiet"]) == 0
    lines = preds.read_text().splitlines()
    assert lines[0] == "predicted,prob_5,prob_7" and len(lines) == 4
    labels = [line.split(",")[0] for line in lines[1:]]
    assert labels == ["5", "7", "5"]  # the label rule: a > 3
    probs = [list(map(float, line.split(",")[1:])) for line in lines[1:]]
    assert all(abs(sum(p) - 1) < 1e-6 for p in probs)


def test_predict_regression_in_the_target_units(tmp_path):
    rows = ["x,price"] + [f"{i / 10},{100 + 3 * i / 10}" for i in range(60)]
    path = tmp_path / "reg.csv"
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "fit"
    assert main(["fit", "--model", "bnn", "--data", str(path), "--target", "price",
                 "--steps", "300", "--out", str(out), "--quiet"]) == 0
    preds = tmp_path / "p.csv"
    assert main(["predict", "--model-file", str(out / "model.pt"), "--data", str(path),
                 "--out", str(preds), "--quiet", "--json"]) == 0
    lines = preds.read_text().splitlines()
    assert lines[0] == "mean,sd" and len(lines) == 61
    mean = [float(line.split(",")[0]) for line in lines[1:]]
    assert abs(mean[0] - 100) < 2 and abs(mean[-1] - 117.7) < 2


def test_predict_errors_are_one_line(tmp_path, capsys):
    assert main(["predict", "--model-file", str(tmp_path / "none.pt"), "--data", "x.csv"]) == 2
    assert "model file" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    assert main(["predict", "--model-file", str(garbage), "--data", "x.csv"]) == 2
    assert "not a bayesdepth model file" in capsys.readouterr().err


def test_langevin(tmp_path):
    code, stdout, stderr = run_cli("langevin", "--chains", "16", "--steps", "200", "--out",
                                   str(tmp_path), "--quiet", "--json")
    assert code == 0, stderr
    summary = strict_loads(stdout)
    assert summary["relative_error"] < 0.5
    assert_png(tmp_path / "sgd_covariance.png")


def test_demo_quick_writes_report(tmp_path):
    code, stdout, stderr = run_cli("demo", "--quick", "--out", str(tmp_path), "--quiet",
                                   "--json")
    assert code == 0, stderr
    summary = strict_loads(stdout)
    assert summary["quick"] is True
    page = (tmp_path / "index.html").read_text()
    # 20 draws cannot converge, and the report says so plainly, first thing on the page
    assert summary["sgld_converged"] is False
    assert page.index("The 4 SGLD chains have NOT converged") < page.index("<img")
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(pngs) >= 6
    for name in pngs:
        assert_png(tmp_path / name)
        assert f"src='{name}'" in page
    idata = az.from_netcdf(tmp_path / "sgld_posterior.nc")
    assert idata.posterior.sizes["chain"] == 4
    header = (tmp_path / "summary.csv").read_text().splitlines()[0]
    for column in ("mean", "sd", "hdi_3%", "ess_bulk", "r_hat"):
        assert column in header


def test_diverging_training_is_one_line_with_exit_1(tmp_path, capsys):
    code = main(["fit", "--model", "bnn", "--steps", "50", "--lr", "1e6", "--quiet",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert "training diverged at step" in err and "smaller lr" in err
    assert len(err.splitlines()) == 1
    assert (tmp_path / "history.csv").read_text().startswith("step,loss")  # kept for diagnosis


def test_sample_keeps_its_draws_as_they_come_and_reuses_them(tmp_path):
    out = tmp_path / "run"
    args = ["sample", "--chains", "2", "--draws", "8", "--warmup", "4", "--lr", "1e-4",
            "--quiet", "--json", "--out", str(out)]
    first = run_cli(*args)
    assert first[0] == 0, first[2]
    assert any((out / "checkpoint").iterdir())
    again = run_cli(*args)  # the same run: its draws come back from out/checkpoint
    assert again[0] == 0, again[2]
    assert (az.from_netcdf(out / "posterior.nc").posterior.sizes["draw"]) == 8
    other = run_cli(*args[:-2], "--seed", "3", "--out", str(out))  # another run replaces it
    assert other[0] == 0, other[2]
