"""ArviZ export, summaries, convergence checks and plots: the only module that imports ArviZ.

Everything ArviZ-specific (``from_dict``, netCDF, ``summary``, R-hat, ESS, ``plot_*``) lives here,
so moving to ArviZ 1.x touches one file. R-hat and ESS are ArviZ's (rank-normalised split R-hat and
bulk/tail ESS of Vehtari et al. 2021); nothing is re-implemented. Plots are written as PNG files
by :func:`bayesdepth.plotting.save_figure`; the matplotlib backend is never changed here (scripts
and tests choose it, e.g. ``MPLBACKEND=Agg``).

**Convergence** (docs/theory.md §5.7): Vehtari, Gelman, Simpson, Carpenter, Bürkner,
"Rank-normalization, folding, and localization: an improved R-hat", Bayesian Analysis 2021,
recommend using a quantity only when its R-hat is at most 1.01 and both its bulk and tail
effective sample sizes are at least 100 per chain. :func:`summary` warns
(:class:`ConvergenceWarning`, naming the quantities) when a quantity misses either;
:func:`convergence` gives the same verdict as data. For neural networks judge the *function*
(predictions at probe inputs): weights are not identifiable (hidden units permute), so their
R-hat stays large even when the predictive has mixed.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import torch

__all__ = [
    "ESS_PER_CHAIN",
    "RHAT_MAX",
    "Convergence",
    "ConvergenceWarning",
    "convergence",
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
#: largest acceptable rank-normalised split R-hat (Vehtari et al. 2021)
RHAT_MAX = 1.01
#: smallest acceptable bulk and tail ESS, per chain (Vehtari et al. 2021)
ESS_PER_CHAIN = 100
_LISTED = 6  # quantities named in a warning


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def to_arviz(
    chains: Any,
    observed_data: dict[str, Any] | None = None,
    include_stats: bool = True,
    *,
    log_likelihood: bool | None = None,
    derived: bool = True,
    posterior_predictive: bool = False,
    prior: int | None = None,
    extra: dict[str, Any] | None = None,
    chunk_size: int = 64,
    seed: int | None = 0,
) -> az.InferenceData:
    """Convert :class:`~bayesdepth.inference.Chains` to ArviZ ``InferenceData``.

    Groups:

    - ``posterior``: every parameter as ``(chain, draw, *shape)`` in constrained space under its
      Pyro site name (or module parameter name); the model's deterministic sites (e.g. the
      network output ``"f"`` at the training inputs) as derived quantities; ``extra``.
    - ``log_likelihood``: ``log p(y_i | theta)`` of every observation of every observed site, per
      chain and draw (``az.loo``, ``az.waic``), computed by the potential in chunks of
      ``chunk_size`` draws on the whole data set.
    - ``posterior_predictive`` (``posterior_predictive=True``, Pyro models): a new draw of every
      observed site at every posterior draw (``az.plot_ppc``).
    - ``prior`` (``prior=S``, Pyro models): ``S`` draws of the latent sites from the prior.
    - ``sample_stats``: the per-draw statistics (potential, grad_norm, lr, temperature, nonfinite,
      and e.g. grad_noise / grad_sq when the sampler reports them).
    - ``observed_data``: the truly observed sites (never deterministic ones), when the potential
      (or ``observed_data=``) gives them.

    Args:
        chains: what :func:`~bayesdepth.inference.sample` returned.
        observed_data: overrides the potential's observed data.
        include_stats: add ``sample_stats``.
        log_likelihood: add the group; None: when the potential can evaluate single
            observations (Pyro and module potentials can), True: required.
        derived: add the deterministic sites to ``posterior`` (they come with the
            log-likelihood pass; their size grows with the data: pass False for large data).
        posterior_predictive: add posterior-predictive draws (needs a Pyro potential).
        prior: the number of prior draws to add (needs a Pyro potential).
        extra: more posterior quantities ``{name: (chains, draws, ...)}``, e.g. predictions at
            probe inputs.
        chunk_size: draws evaluated at once (bounds memory).
        seed: seeds the predictive and prior draws.

    Raises:
        ValueError: when a requested group needs what the potential cannot do.
    """
    posterior = {name: _numpy(v) for name, v in chains.draws.items()}
    kwargs: dict[str, Any] = {}
    potential = getattr(chains, "potential", None)
    if log_likelihood is not False or derived:
        try:
            pointwise = potential.pointwise(chains.draws, chunk_size=chunk_size)
        except (NotImplementedError, AttributeError) as exc:
            if log_likelihood:
                raise ValueError(f"log_likelihood=True: {_cannot(potential, exc)}") from None
        else:
            if log_likelihood is not False and pointwise.log_likelihood:
                kwargs["log_likelihood"] = {
                    k: _numpy(v) for k, v in pointwise.log_likelihood.items()
                }
            if derived:
                posterior.update({k: _numpy(v) for k, v in pointwise.derived.items()})
    if posterior_predictive:
        try:
            draws = potential.posterior_predictive(chains.draws, seed=seed)
        except (NotImplementedError, AttributeError) as exc:
            raise ValueError(f"posterior_predictive=True: {_cannot(potential, exc)}") from None
        kwargs["posterior_predictive"] = {k: _numpy(v) for k, v in draws.items()}
    if prior is not None:
        try:
            draws = potential.prior(prior, seed=seed)
        except (NotImplementedError, AttributeError) as exc:
            raise ValueError(f"prior={prior}: {_cannot(potential, exc)}") from None
        kwargs["prior"] = {k: _numpy(v)[None] for k, v in draws.items()}
    posterior.update({name: _numpy(v) for name, v in (extra or {}).items()})
    kwargs["posterior"] = posterior
    if include_stats and chains.stats:
        kwargs["sample_stats"] = {name: _numpy(v) for name, v in chains.stats.items()}
    observed = observed_data if observed_data is not None else chains.observed_data
    if observed:
        kwargs["observed_data"] = {name: _numpy(v) for name, v in observed.items()}
    return az.from_dict(**kwargs)


def _cannot(potential: Any, exc: BaseException) -> str:
    if potential is None:
        return "these chains do not carry their potential (Chains.potential is None)"
    return str(exc)


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


def summary(
    idata: az.InferenceData, var_names: list[str] | None = None, warn: bool = True, **kwargs: Any
):
    """``arviz.summary``: mean, sd, HDI, MCSE, bulk/tail ESS and R-hat per scalar (a DataFrame).

    With ``warn=True`` a :class:`ConvergenceWarning` names every quantity whose R-hat exceeds
    :data:`RHAT_MAX` or whose bulk or tail ESS is below :data:`ESS_PER_CHAIN` per chain.
    """
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN draws of stopped chains, constants
        table = az.summary(idata, var_names=var_names, **kwargs)
    if warn and {"r_hat", "ess_bulk", "ess_tail"} <= set(table.columns):
        verdict = convergence(table, idata.posterior.sizes["chain"])
        if not verdict.converged:
            warnings.warn(verdict.message(), ConvergenceWarning, stacklevel=2)
    return table


class ConvergenceWarning(UserWarning):
    """Chains whose R-hat or effective sample sizes miss the thresholds of Vehtari et al. 2021."""


@dataclass(frozen=True)
class Convergence:
    """The convergence verdict on the quantities of a summary table.

    Attributes:
        num_chains: chains behind the table.
        max_rhat: the largest R-hat (NaN when undefined).
        min_ess_bulk, min_ess_tail: the smallest bulk and tail ESS.
        flagged: ``(quantity, r_hat, ess_bulk, ess_tail)`` of every quantity that misses a
            threshold (R-hat > 1.01 or undefined, bulk or tail ESS < 100 per chain); a quantity
            with the same value in every draw (sd 0, e.g. a saturated probability) is not.
    """

    num_chains: int
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    flagged: tuple[tuple[str, float, float, float], ...]

    @property
    def converged(self) -> bool:
        """No quantity misses a threshold."""
        return not self.flagged

    @property
    def min_ess(self) -> float:
        """The ESS threshold these chains had to reach (100 per chain)."""
        return ESS_PER_CHAIN * self.num_chains

    def details(self) -> str:
        """Which quantities miss the thresholds and by how much (or that none does)."""
        rule = (f"R-hat <= {RHAT_MAX} and bulk/tail ESS >= {ESS_PER_CHAIN} per chain "
                f"(>= {self.min_ess:.0f} for {self.num_chains} chains; Vehtari et al. 2021)")
        if self.converged:
            return f"every quantity has {rule}"
        listed = ", ".join(
            f"{name} (R-hat {r:.3g}, ESS bulk {b:.0f}, tail {t:.0f})"
            for name, r, b, t in self.flagged[:_LISTED]
        )
        more = len(self.flagged) - _LISTED
        listed += f" and {more} more" if more > 0 else ""
        count = len(self.flagged)
        return f"{count} quantit{'y' if count == 1 else 'ies'} miss {rule}: {listed}"

    def message(self) -> str:
        """One line: converged, or which quantities did not and by how much."""
        return f"{'converged' if self.converged else 'not converged'}: {self.details()}"


def convergence(table_or_idata: Any, num_chains: int | None = None,
                var_names: list[str] | None = None) -> Convergence:
    """The verdict of Vehtari et al. (2021) on every quantity of a summary table.

    Args:
        table_or_idata: a DataFrame from :func:`summary` (then ``num_chains`` is needed), or an
            ``InferenceData`` (summarised here, without a warning).
        num_chains: chains behind the table.
        var_names: variables to judge, for an ``InferenceData``.
    """
    if isinstance(table_or_idata, az.InferenceData):
        num_chains = table_or_idata.posterior.sizes["chain"]
        table = summary(table_or_idata, var_names=var_names, warn=False)
    elif num_chains is None:
        raise ValueError("num_chains is needed with a summary table")
    else:
        table = table_or_idata
    rhat_ = table["r_hat"].to_numpy(dtype=float)
    bulk = table["ess_bulk"].to_numpy(dtype=float)
    tail = table["ess_tail"].to_numpy(dtype=float)
    need = ESS_PER_CHAIN * num_chains
    bad = ~(rhat_ <= RHAT_MAX) | ~(bulk >= need) | ~(tail >= need)  # NaN counts as bad
    if "sd" in table:  # the same value in every draw of every chain: the chains agree
        bad &= ~(table["sd"].to_numpy(dtype=float) == 0)
    flagged = tuple(
        (str(name), float(r), float(b), float(t))
        for name, r, b, t, miss in zip(table.index, rhat_, bulk, tail, bad) if miss
    )

    def extreme(values: np.ndarray, fn) -> float:
        return float(fn(values)) if values.size and not np.isnan(values).all() else float("nan")

    return Convergence(num_chains, extreme(rhat_, np.nanmax), extreme(bulk, np.nanmin),
                       extreme(tail, np.nanmin), flagged)


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
