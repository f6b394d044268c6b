"""Figures are written as PNGs; no module of bayesdepth.inference switches the backend."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from bayesdepth.inference import plots

INFERENCE = Path(__file__).parents[1] / "inference"


def test_figures_are_written(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    lags = np.arange(1, 50)
    p1 = plots.plot_msd(lags, lags**0.5, tmp_path / "msd.png", predicted=lags**0.5)
    p2 = plots.plot_svag_gap([1, 2, 4, 8], [0.4, 0.2, 0.1, 0.05], tmp_path / "svag.png",
                             simulated=[0.41, 0.19, 0.1, 0.06], errors=[0.01] * 4)
    p3 = plots.plot_noise_to_signal(np.arange(10), np.linspace(1, 0.1, 10),
                                    tmp_path / "sub" / "gn.png")
    draws = torch.randn(4, 100, 3, dtype=torch.float64)
    p4 = plots.plot_covariance_ellipses(draws, torch.eye(3, dtype=torch.float64),
                                        tmp_path / "e.png", dims=(0, 2),
                                        others={"posterior": 2 * torch.eye(3)})
    for p in (p1, p2, p3, p4):
        assert p.exists() and p.stat().st_size > 5000
        assert p.read_bytes()[:4] == b"\x89PNG"
    assert plt.get_fignums() == before  # every figure was closed


def test_no_backend_switch_and_lazy_pyplot():
    offenders = [p.name for p in INFERENCE.rglob("*.py") if "matplotlib.use(" in p.read_text()]
    assert offenders == []
    code = ("import sys, bayesdepth.inference as bi; "
            "print('matplotlib.pyplot' in sys.modules, 'arviz' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
