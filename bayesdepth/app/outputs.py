"""What a run writes when it is done: strict JSON summaries and ArviZ diagnostics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["max_rhat", "small_variables", "strict_json", "write_diagnostics", "write_json"]


def strict_json(summary: dict[str, Any]) -> str:
    """``summary`` as strict JSON text: NaN and infinities become null."""
    return json.dumps(_finite(summary), indent=2, sort_keys=True, default=str, allow_nan=False)


def write_json(path: Path, summary: dict[str, Any]) -> Path:
    """Write ``summary`` to ``path`` as strict JSON."""
    path.write_text(strict_json(summary))
    return path


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_diagnostics(idata, out: Path, stem: str, var_names=None) -> dict[str, str]:
    """netCDF, summary CSV and trace/rank PNGs of ``idata`` into ``out``."""
    from bayesdepth.inference import diagnostics

    files = {"netcdf": str(diagnostics.save_netcdf(idata, out / f"{stem}.nc"))}
    diagnostics.summary(idata, var_names=var_names).to_csv(out / "summary.csv")
    files["summary"] = str(out / "summary.csv")
    names = var_names or small_variables(idata)
    files["trace"] = str(diagnostics.plot_trace(idata, out / "trace.png", var_names=names))
    files["rank"] = str(diagnostics.plot_rank(idata, out / "rank.png", var_names=names))
    return files


def small_variables(idata, limit: int = 4) -> list[str]:
    """Up to ``limit`` posterior variables, smallest first, so plots stay readable."""
    post = idata.posterior
    return sorted(post.data_vars, key=lambda n: post[n].size)[:limit]


def max_rhat(idata) -> float:
    """The largest R-hat of any posterior quantity (NaN when there is none)."""
    from bayesdepth.inference import diagnostics

    values = [float(v.max()) for v in diagnostics.rhat(idata).values() if v.size]
    return max(values) if values else float("nan")
