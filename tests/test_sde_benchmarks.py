"""The SDE-BNN benchmarks run end to end in their small modes (what CI can afford)."""

import json
import math
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[1] / "benchmarks"


def _run(*args, timeout=600):
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=BENCH)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def test_paper_benchmark_smoke_mode_on_generated_images(tmp_path):
    out = _run(BENCH / "sdebnn_paper.py", "--smoke", "--json", tmp_path / "paper.json")
    result = json.loads((tmp_path / "paper.json").read_text())
    assert result["smoke"] and result["device"] == "cpu"
    for name in ("mnist", "cifar10"):
        assert f"{name}: 48 train / 16 test images" in out
        for model in ("sdebnn", "ode-net", "mf-bnn"):
            row = result[name][model]
            assert 0 <= row["accuracy"] <= 1 and 0 <= row["ece"] <= 1
            assert math.isfinite(row["nll"]) and row["seconds_per_epoch"] > 0
        # the three models share one architecture
        assert len({result[name][m]["sde_weights"] for m in ("sdebnn", "ode-net")}) == 1
    counts = _run(BENCH / "sdebnn_paper.py", "--count")
    assert "cifar10" in counts and "675,360" in counts


def test_memory_table_runs_on_the_cpu():
    out = _run(BENCH / "sdebnn.py", "--skip-speed", "--skip-exact", "--skip-digits",
               "--memory-steps", "10")
    line = next(row for row in out.splitlines() if row.strip().startswith("10 "))
    full, checkpointed, _ = map(float, line.split()[1:])
    assert full > 0 and checkpointed > 0


def test_digits_table_over_seeds_reports_each_seed_and_the_mean(tmp_path):
    out = _run(BENCH / "sdebnn.py", "--skip-speed", "--skip-memory", "--skip-exact",
               "--digits-steps", "3", "--digits-seeds", "0", "1", "--digits-samples", "2",
               "--json", tmp_path / "digits.json")
    runs = json.loads((tmp_path / "digits.json").read_text())["digits"]
    assert len(runs) == 2 and all(set(r) == {"sdebnn", "ode-net", "mf-bnn"} for r in runs)
    assert all(r[m]["steps"] == 3 for r in runs for m in r)
    assert "2 posterior samples per prediction" in out and "mean +- sd over 2 seeds" in out
    mean_row = out.split("mean +- sd over 2 seeds")[1].splitlines()[1].split()
    accuracies = [r["sdebnn"]["accuracy"] for r in runs]
    assert mean_row[0] == "sdebnn"
    assert float(mean_row[1]) == round(sum(accuracies) / 2, 4)


def test_input_check_benchmark_prints_both_variants():
    out = _run(BENCH / "input_checks.py", "--data", "digits", "--reps", "2")
    row = next(line for line in out.splitlines() if line.startswith("digits"))
    once, every, ratio = map(float, row.split()[-3:])
    assert once > 0 and every > 0 and abs(ratio - once / every) < 2e-3
