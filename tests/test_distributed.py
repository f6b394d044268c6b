"""torch.distributed (torchrun, gloo, loopback only). Data-parallel SVI: one distributed step is
the single-process step on the concatenated rows, parameters stay identical on every rank, a
short run recovers the conjugate posterior, a rank that dies stops the others. Chains across
processes: the gathered draws are those of a single-process run with the same seed, bit for bit,
and per-rank checkpoints resume."""

import sys
import time
from pathlib import Path

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer.autoguide import AutoNormal

import bayesdepth as bd
from bayesdepth.distributed import rank_generator

HERE = Path(__file__).parent / "distributed"
sys.path.insert(0, str(HERE))
from fit_worker import model, problem  # noqa: E402
from launch import torchrun  # noqa: E402
from sample_worker import run as run_chains  # noqa: E402


def _ranks(out: Path, n: int = 2) -> list[dict]:
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(n)]


def test_one_step_on_two_ranks_is_the_step_on_the_concatenated_rows(tmp_path):
    run = torchrun(HERE / "fit_worker.py", str(tmp_path), "step")
    assert run.returncode == 0, run.stderr[-3000:]
    first, second = _ranks(tmp_path)
    for name, value in first["params"].items():  # every rank applied the same update
        assert torch.equal(value, second["params"][name]), name
    # the single-process step with the same latent draw on the R * B rows the ranks drew
    rows = torch.cat([torch.randperm(200, generator=rank_generator(3, r))[:10] for r in (0, 1)])
    x, y = problem()
    guide = AutoNormal(model, init_scale=0.1)
    bd.fit(poutine.condition(model, data={"data": rows}),
           poutine.condition(guide, data={"data": rows}), x, y, num_steps=1, batch_size=20,
           optimizer=pyro.optim.SGD({"lr": 1e-3}), seed=3, progress=False)
    for name, value in pyro.get_param_store().items():
        torch.testing.assert_close(first["params"][name], value.detach(), rtol=1e-12,
                                   atol=1e-12)
    assert first["params"]["AutoNormal.locs.w"].abs().sum() > 0  # the step moved something


@pytest.mark.slow
def test_a_distributed_fit_recovers_the_conjugate_posterior(tmp_path):
    run = torchrun(HERE / "fit_worker.py", str(tmp_path), "run")
    assert run.returncode == 0, run.stderr[-3000:]
    first, second = _ranks(tmp_path)
    assert first["loss"] == second["loss"]
    x, y = problem()
    posterior = bd.data.conjugate_linear_regression(x, y, prior_scale=1.0, noise_scale=0.5)
    sd = posterior.posterior_cov.diagonal().sqrt()
    expected_scale = posterior.posterior_precision.diagonal().rsqrt()  # mean-field optimum
    guide = AutoNormal(model, init_scale=0.1)  # the same fit in one process, batch 2 x 10
    bd.fit(model, guide, x, y, num_steps=1500, batch_size=20, lr=2e-2, final_lr_fraction=0.02,
           seed=3, progress=False)
    single = {k: v.detach() for k, v in pyro.get_param_store().items()}
    for params in (first["params"], single):
        loc, scale = params["AutoNormal.locs.w"], params["AutoNormal.scales.w"]
        assert ((loc - posterior.posterior_mean).abs() / sd).max() < 0.3
        assert ((scale - expected_scale).abs() / expected_scale).max() < 0.25


def test_a_rank_that_dies_stops_the_others_quickly(tmp_path):
    start = time.perf_counter()
    # torchrun looks at its workers every 5 s here rather than 0.1 s, so that it does not stop the
    # survivor before the survivor has found out by itself (a race that a loaded machine can lose)
    run = torchrun(HERE / "fit_worker.py", str(tmp_path), "die", timeout=90, monitor_interval=5.0)
    elapsed = time.perf_counter() - start
    assert run.returncode != 0
    assert elapsed < 60, elapsed
    assert "RankFailure: rank 0 of 2" in run.stderr  # the survivor says what happened
    assert not (tmp_path / "rank0.pt").exists()  # no rank pretends it finished


def test_the_command_line_fits_on_two_ranks_and_rank_0_writes(tmp_path):
    out = tmp_path / "fit"
    run = torchrun("-m", "bayesdepth.app", "fit", "--distributed", "--model", "bnn", "--data",
                   "moons", "--steps", "20", "--batch-size", "32", "--out", str(out), "--quiet",
                   "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count('"command": "fit"') == 1  # one summary, from rank 0
    assert (out / "model.pt").is_file() and (out / "history.csv").is_file()


def _gathered(out):
    return torch.load(out / "chains.pt", weights_only=True)


def test_chains_split_across_two_ranks_are_the_single_process_chains(tmp_path):
    run = torchrun(HERE / "sample_worker.py", str(tmp_path), "30")
    assert run.returncode == 0, run.stderr[-3000:]
    got = _gathered(tmp_path)
    single = run_chains(30)
    assert got["chains"] == 5  # 3 chains on rank 0, 2 on rank 1, gathered in order
    for name, value in single.draws.items():
        assert torch.equal(got["draws"][name], value), name
    for name, value in single.stats.items():
        assert torch.equal(got["stats"][name], value), name


def test_per_rank_checkpoints_resume_the_distributed_run(tmp_path):
    ckpt = tmp_path / "ckpt"
    first = torchrun(HERE / "sample_worker.py", str(tmp_path), "15", str(ckpt))
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "checkpoint-rank0-of-2.pt", "checkpoint-rank1-of-2.pt"]
    second = torchrun(HERE / "sample_worker.py", str(tmp_path), "30", str(ckpt))
    assert second.returncode == 0, second.stderr[-3000:]
    got = _gathered(tmp_path)
    assert torch.equal(got["draws"]["w"], run_chains(30).draws["w"])


def test_the_command_line_samples_on_two_ranks(tmp_path):
    import arviz as az

    out = tmp_path / "chains"
    run = torchrun("-m", "bayesdepth.app", "sample", "--distributed", "--chains", "3", "--draws",
                   "10", "--warmup", "5", "--lr", "1e-4", "--out", str(out), "--quiet",
                   "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count('"command": "sample"') == 1
    assert az.from_netcdf(out / "posterior.nc").posterior.sizes["chain"] == 3


def test_distributed_needs_torchrun_and_a_minibatch(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    x, y = problem()
    with pytest.raises(ValueError, match="needs batch_size"):
        bd.fit(model, AutoNormal(model), x, y, distributed=True, progress=False)
    with pytest.raises(RuntimeError, match="start the processes with torchrun"):
        bd.fit(model, AutoNormal(model), x, y, batch_size=5, distributed=True, progress=False)
