"""What a run writes when it is done: strict JSON summaries and ArviZ diagnostics with a verdict."""

from __future__ import annotations

import itertools
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Diagnostics",
    "convergence_fields",
    "judge",
    "small_variables",
    "strict_json",
    "warn",
    "write_diagnostics",
    "write_json",
    "write_plots",
]


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


def warn(message: str) -> None:
    """One line on stderr, also under ``--quiet`` (warnings are not progress messages)."""
    print(f"bayesdepth: warning: {message}", file=sys.stderr, flush=True)


@dataclass
class Diagnostics:
    """What :func:`write_diagnostics` wrote (``files``: ``{kind: path}``) and the ``verdict``
    (:class:`~bayesdepth.inference.diagnostics.Convergence`) on the headline quantities."""

    verdict: Any
    files: dict[str, str] = field(default_factory=dict)


def judge(idata, var_names: list[str] | None = None):
    """The ArviZ summary of ``var_names`` and its convergence verdict, without a Python warning
    (the command line prints its own line)."""
    from bayesdepth.inference import diagnostics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", diagnostics.ConvergenceWarning)
        table = diagnostics.summary(idata, var_names=var_names)
    return table, diagnostics.convergence(table, idata.posterior.sizes["chain"])


def convergence_fields(verdict) -> dict[str, Any]:
    """The JSON fields of a convergence verdict (NaN becomes null when written)."""
    return {"converged": verdict.converged, "max_rhat": verdict.max_rhat,
            "min_ess_bulk": verdict.min_ess_bulk, "min_ess_tail": verdict.min_ess_tail,
            "convergence": verdict.message()}


def write_diagnostics(idata, out: Path, stem: str, headline: list[str] | None = None
                      ) -> Diagnostics:
    """netCDF, summaries and trace/rank PNGs of ``idata`` into ``out``.

    ``headline`` names the quantities convergence is judged on (for neural networks the
    function at probe inputs): ``summary.csv`` holds them, ``summary_appendix.csv`` the rest of
    the posterior (weights); the plots show the headline (or the smallest variables).
    """
    from bayesdepth.inference import diagnostics

    table, verdict = judge(idata, headline)
    files = {"netcdf": str(diagnostics.save_netcdf(idata, out / f"{stem}.nc"))}
    table.to_csv(out / "summary.csv")
    files["summary"] = str(out / "summary.csv")
    rest = [n for n in idata.posterior.data_vars if headline and n not in headline]
    if rest:
        appendix, _ = judge(idata, rest)
        appendix.to_csv(out / "summary_appendix.csv")
        files["summary_appendix"] = str(out / "summary_appendix.csv")
    files.update(write_plots(idata, table, out, headline))
    return Diagnostics(verdict, files)


def write_plots(idata, table, out: Path, names: list[str] | None = None,
                kinds: tuple[str, ...] = ("trace", "rank")) -> dict[str, str]:
    """Trace and rank PNGs (and ``"forest"`` if asked) of the quantities that need looking at.

    At most :data:`PLOTTED` scalar quantities of ``names`` (default: the smallest variables),
    the largest R-hat first, each its own panel; quantities without spread in some chain (a
    probability saturated at 1) are left out, since ArviZ cannot draw their density. Of a large
    variable (an SDE weight path) only the first :data:`SCANNED` entries are looked at.
    """
    import arviz as az

    from bayesdepth.inference import diagnostics

    posterior = idata.posterior
    quantities = {}
    for name in names or small_variables(idata):
        values = posterior[name].values
        for index in itertools.islice(np.ndindex(values.shape[2:]), SCANNED):
            label = f"{name}[{', '.join(map(str, index))}]" if index else name
            series = values[(slice(None), slice(None), *index)].astype(np.float64)
            if np.isfinite(series).all() and (np.ptp(series, axis=1) > 0).all():
                quantities[label] = series
    rhat_of = table["r_hat"].to_dict() if "r_hat" in table else {}
    order = sorted(quantities, key=lambda k: -np.nan_to_num(rhat_of.get(k, 0.0), nan=np.inf))
    if not order:
        return {}
    subset = az.from_dict(posterior={k: quantities[k] for k in order[:PLOTTED]})
    plot = {"trace": diagnostics.plot_trace, "rank": diagnostics.plot_rank,
            "forest": diagnostics.plot_forest}
    return {kind: str(plot[kind](subset, out / f"{kind}.png")) for kind in kinds}


#: scalar quantities drawn in one plot
PLOTTED = 6
#: entries of one variable considered for plotting
SCANNED = 512


def small_variables(idata, limit: int = 4) -> list[str]:
    """Up to ``limit`` posterior variables, smallest first, so plots stay readable."""
    post = idata.posterior
    return sorted(post.data_vars, key=lambda n: post[n].size)[:limit]
