"""ArviZ export, summaries and plots: the only module of the package that imports ArviZ.

Everything ArviZ-specific (``from_dict``, netCDF, ``summary``, R-hat, ESS, ``plot_*``) lives here,
so moving to ArviZ 1.x touches one file. R-hat and ESS are ArviZ's (rank-normalised split R-hat and
bulk/tail ESS of Vehtari et al. 2021); nothing is re-implemented. Plots are written as PNG files
by :func:`bayesdepth.plotting.save_figure`; the matplotlib backend is never changed here (scripts
and tests choose it, e.g. ``MPLBACKEND=Agg``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import torch

__all__ = [
    "ess",
    "load_netcdf",
    "plot_forest",
    "plot_pair",
    "plot_rank",
    "plot_trace",
    "rhat",
    "save_netcdf",
    "summary",
    "to_arviz",
]

_MAX_PAIR_DIMS = 6


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def to_arviz(
    chains: Any,
    observed_data: dict[str, Any] | None = None,
    include_stats: bool = True,
) -> az.InferenceData:
    """Convert :class:`~bayesdepth.inference.runner.Chains` to ArviZ ``InferenceData``.

    Groups: ``posterior`` with every parameter as ``(chain, draw, *shape)`` in constrained space
    under its Pyro site name (or module parameter name); ``sample_stats`` with the per-draw
    statistics (potential, grad_norm, lr, temperature, nonfinite, and e.g. grad_noise / grad_sq
    when the sampler reports them); ``observed_data`` when the potential (or ``observed_data=``)
    gives it.
    """
    posterior = {name: _numpy(v) for name, v in chains.draws.items()}
    kwargs: dict[str, Any] = {"posterior": posterior}
    if include_stats and chains.stats:
        kwargs["sample_stats"] = {name: _numpy(v) for name, v in chains.stats.items()}
    observed = observed_data if observed_data is not None else chains.observed_data
    if observed:
        kwargs["observed_data"] = {name: _numpy(v) for name, v in observed.items()}
    return az.from_dict(**kwargs)


def save_netcdf(idata: az.InferenceData, path: str | os.PathLike) -> Path:
    """Write ``idata`` to a netCDF file (parent folders are created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    idata.to_netcdf(str(path))
    return path


def load_netcdf(path: str | os.PathLike) -> az.InferenceData:
    """Read an ``InferenceData`` written by :func:`save_netcdf` (fully loaded into memory)."""
    idata = az.from_netcdf(str(path))
    for group in idata.groups():
        getattr(idata, group).load()
    return idata


def summary(idata: az.InferenceData, var_names: list[str] | None = None, **kwargs: Any):
    """``arviz.summary``: mean, sd, HDI, MCSE, bulk/tail ESS and R-hat per scalar (a DataFrame)."""
    return az.summary(idata, var_names=var_names, **kwargs)


def rhat(idata: az.InferenceData, var_names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Rank-normalised split R-hat per parameter (``arviz.rhat``), as numpy arrays."""
    ds = az.rhat(idata, var_names=var_names)
    return {name: np.asarray(ds[name].values) for name in ds.data_vars}


def ess(
    idata: az.InferenceData, var_names: list[str] | None = None, method: str = "bulk"
) -> dict[str, np.ndarray]:
    """Effective sample size per parameter (``arviz.ess``), as numpy arrays."""
    ds = az.ess(idata, var_names=var_names, method=method)
    return {name: np.asarray(ds[name].values) for name in ds.data_vars}


def _save(axes: Any, path: str | os.PathLike) -> Path:
    """Save the figure that holds ``axes`` (what an ArviZ plot returns) as PNG and close it."""
    from bayesdepth.plotting import save_figure

    first = np.ravel(np.asarray(axes, dtype=object))[0]
    with warnings.catch_warnings():
        # ArviZ lays out its own grids (the pair plot's marginals): tight_layout cannot improve it
        warnings.filterwarnings("ignore", "This figure includes Axes that are not compatible")
        return save_figure(first.get_figure(), path)


def plot_trace(idata: az.InferenceData, path: str | os.PathLike, var_names=None, **kw) -> Path:
    """Trace plot (``arviz.plot_trace``) written to ``path`` as PNG."""
    return _save(az.plot_trace(idata, var_names=var_names, compact=True, **kw), path)


def plot_rank(idata: az.InferenceData, path: str | os.PathLike, var_names=None, **kw) -> Path:
    """Rank plot (``arviz.plot_rank``) written to ``path`` as PNG."""
    return _save(az.plot_rank(idata, var_names=var_names, **kw), path)


def plot_forest(idata: az.InferenceData, path: str | os.PathLike, var_names=None, **kw) -> Path:
    """Forest plot with R-hat and ESS columns (``arviz.plot_forest``) written as PNG."""
    axes = az.plot_forest(idata, var_names=var_names, r_hat=True, ess=True, combined=False, **kw)
    return _save(axes, path)


def plot_pair(idata: az.InferenceData, path: str | os.PathLike, var_names=None, **kw) -> Path:
    """Pair plot (``arviz.plot_pair``) of at most 6 scalar dimensions, written as PNG.

    Raises:
        ValueError: if the selected variables have more than 6 scalar dimensions in all; pick
            fewer with ``var_names`` (or ``coords``).
    """
    post = idata.posterior
    names = list(var_names) if var_names is not None else list(post.data_vars)
    coords = kw.get("coords") or {}
    dims = 0
    for name in names:
        da = post[name]
        sel = {k: v for k, v in coords.items() if k in da.dims}
        dims += int(np.prod(da.sel(sel).shape[2:], dtype=int))
    if dims > _MAX_PAIR_DIMS:
        raise ValueError(
            f"plot_pair draws at most {_MAX_PAIR_DIMS} dimensions, the variables {names} have "
            f"{dims}; choose fewer with var_names= or coords="
        )
    axes = az.plot_pair(idata, var_names=names, kind="scatter", marginals=True, **kw)
    return _save(axes, path)
