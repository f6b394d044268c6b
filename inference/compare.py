r"""Compare SGD chains with the Langevin predictions: errors, KL, diffusion exponent, figures.

Draws are arrays of shape (chains, draws, d) (torch tensors or numpy arrays), a dict of such
arrays (flattened and concatenated in order), or the :class:`~bayesdepth.inference.Chains` that
the SG-MCMC runner returns. Standard errors come from the spread *between*
independent chains, so they are valid whatever the autocorrelation inside a chain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bayesdepth._validation import check_positive, check_positive_int

from .langevin import kl_to_laplace, stationary_covariance

__all__ = [
    "SGDComparison",
    "chain_covariance",
    "diffusion_exponent",
    "empirical_msd",
    "linear_regression_moments",
    "plot_covariance_ellipses",
    "plot_msd",
    "plot_noise_to_signal",
    "plot_svag_gap",
    "quadratic_vs_prediction",
    "relative_frobenius_error",
    "sgd_vs_prediction",
]


def _draws(draws) -> torch.Tensor:
    """(chains, draws, d) float64 from a tensor, an array, a dict of such or a ``Chains``."""
    if hasattr(draws, "draws") and isinstance(draws.draws, dict):
        draws = draws.draws
    if isinstance(draws, dict):
        parts = [torch.as_tensor(v) for v in draws.values()]
        draws = torch.cat([p.reshape(p.shape[0], p.shape[1], -1) for p in parts], -1)
    x = torch.as_tensor(np.asarray(draws) if not isinstance(draws, torch.Tensor) else draws)
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3:
        raise ValueError(f"draws must have shape (chains, draws, d), got {tuple(x.shape)}")
    return x.to(torch.float64)


def chain_covariance(draws, mean: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled covariance of (chains, draws, d) draws and its Monte-Carlo standard error.

    Every chain's second moment about the pooled (or given) mean is one independent estimate; the
    result is their average and the standard error their standard deviation / sqrt(chains)
    (NaN for a single chain).
    """
    x = _draws(draws)
    m = x.mean((0, 1)) if mean is None else torch.as_tensor(mean, dtype=x.dtype)
    xc = x - m
    per = torch.einsum("ktd,kte->kde", xc, xc) / x.shape[1]
    k = x.shape[0]
    se = per.std(0) / math.sqrt(k) if k > 1 else torch.full_like(per[0], math.nan)
    return per.mean(0), se


def relative_frobenius_error(estimate, reference) -> float:
    """``||estimate - reference||_F / ||reference||_F``."""
    e = torch.as_tensor(estimate, dtype=torch.float64)
    r = torch.as_tensor(reference, dtype=torch.float64)
    if e.shape != r.shape:
        raise ValueError(f"shapes differ: {tuple(e.shape)} vs {tuple(r.shape)}")
    return float(torch.linalg.norm(e - r) / torch.linalg.norm(r))


def empirical_msd(draws, lags: Sequence[int]) -> torch.Tensor:
    """``E|theta_{t+tau} - theta_t|^2`` averaged over chains and start times, for each lag."""
    x = _draws(draws)
    out = []
    for tau in lags:
        tau = int(tau)
        if not 0 <= tau < x.shape[1]:
            raise ValueError(f"lag {tau} must lie in [0, {x.shape[1]})")
        out.append(((x[:, tau:] - x[:, : x.shape[1] - tau]) ** 2).sum(-1).mean())
    return torch.stack(out)


def diffusion_exponent(lags, msd, window: tuple[float, float] | None = None) -> float:
    r"""Least-squares slope of ``log MSD`` against ``log tau`` (inside ``window`` if given).

    ``MSD ∝ tau^gamma``: ``gamma = 1`` is ordinary diffusion, ``gamma < 1`` sub-diffusion
    (Kunin et al. 2021 report anomalous diffusion of SGD past convergence).
    """
    t = np.asarray(torch.as_tensor(lags, dtype=torch.float64))
    m = np.asarray(torch.as_tensor(msd, dtype=torch.float64))
    keep = (t > 0) & (m > 0)
    if window is not None:
        keep &= (t >= window[0]) & (t <= window[1])
    if keep.sum() < 2:
        raise ValueError("need at least two positive lags (inside the window) to fit an exponent")
    return float(np.polyfit(np.log(t[keep]), np.log(m[keep]), 1)[0])


# ------------------------------------------------------------------ linear regression
def _regression_parts(x, y, prior_scale, noise_scale, weight_decay=0.0):
    """Hessian of the mean loss, the minimiser of ``L + weight_decay |w|^2 / 2`` and C there."""
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    n, d = x.shape
    s2, p2 = noise_scale**2, prior_scale**2
    eye = torch.eye(d, dtype=x.dtype)
    hessian = x.T @ x / (n * s2) + eye / (n * p2)
    mean = torch.linalg.solve(hessian + weight_decay * eye, x.T @ y / (n * s2))
    grads = x * ((x @ mean - y) / s2).unsqueeze(-1) + mean / (n * p2)
    g = grads - grads.mean(0)
    return x, y, n, d, hessian, mean, g.T @ g / n


def linear_regression_moments(
    x,
    y,
    prior_scale: float,
    noise_scale: float,
    lr: float,
    batch_size: int = 1,
    momentum: float = 0.0,
    discrete: bool = True,
    weight_decay: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Exact stationary mean and covariance of constant SGD on Bayesian linear regression.

    Loss ``L = (1/N) sum_n [(x_n^T w - y_n)^2 / (2 s^2)] + |w|^2 / (2 s_0^2 N)`` (prior folded
    in), batches iid with replacement, ``torch.optim.SGD`` with momentum ``beta``. SGD is linear
    with *multiplicative* noise, so the second moment closes exactly. In phase space
    ``z = (w - w*, v)``:
    ``P = M_z P M_z^T + G [C_* + (1/N) sum_n K_n P_ww K_n] G^T / B`` with ``K_n = x_n x_n^T / s^2
    - X^T X / (N s^2)``, ``C_*`` the gradient covariance at the optimum, ``M_z``, ``G`` as in
    :mod:`.momentum`; the mean is exactly the posterior mean. Solved as a (2d)^2 linear system
    (small d). ``weight_decay`` (torch's, on top of the prior) replaces ``A`` by ``A + lambda I`` in
    ``M_z`` and moves the mean to the minimiser of ``L + lambda |w|^2 / 2``. Raises
    ``ValueError`` when the second moment has no stationary value (spectral radius of the
    second-moment operator >= 1). For ``beta = 0``:
    ``S = M S M^T + (eta^2 / B)[C_* + (1/N) sum_n K_n S K_n]``.

    ``discrete=False`` (momentum 0 only) gives the SDE with the same state-dependent noise,
    ``dX = -A X dt + sqrt(eta Sigma_B(X)) dW``:
    ``A S + S A = (eta/B)[C_* + (1/N) sum_n K_n S K_n]``.

    Returns:
        ``(mean, S_exact, S_additive, hessian)``: ``S_additive`` ignores the multiplicative part
        (the generic :func:`stationary_covariance` with ``C = C_*``).
    """
    lr = check_positive("lr", lr)
    batch_size = check_positive_int("batch_size", batch_size)
    beta = check_positive("momentum", momentum, allow_zero=True)
    lam = check_positive("weight_decay", weight_decay, allow_zero=True)
    x, y, n, d, a, mean, c = _regression_parts(x, y, prior_scale, noise_scale, lam)
    s_add = stationary_covariance(a, c, lr, batch_size, momentum=beta, discrete=discrete,
                                  weight_decay=lam)
    eye = torch.eye(d, dtype=x.dtype)
    if not discrete:
        if beta or lam:
            raise ValueError("discrete=False is implemented for momentum = weight_decay = 0 only")
        k = torch.einsum("ni,nj->nij", x, x) / noise_scale**2 - (x.T @ x / (n * noise_scale**2))
        kop = torch.einsum("nij,nkl->ikjl", k, k).reshape(d * d, d * d) / n
        lyap = torch.kron(a, eye) + torch.kron(eye, a) - lr / batch_size * kop
        s = torch.linalg.solve(lyap, lr / batch_size * c.reshape(-1)).reshape(d, d)
        if float(torch.linalg.eigvalsh((s + s.T) / 2)[0]) <= 0:
            raise ValueError(f"no stationary second moment for the SDE at lr = {lr:.6g}")
        return mean, (s + s.T) / 2, s_add, a
    at = a + lam * eye
    mz = torch.cat(
        [torch.cat([eye - lr * at, -lr * beta * eye], 1), torch.cat([at, beta * eye], 1)], 0
    )
    g = torch.cat([-lr * eye, eye], 0)
    k = torch.einsum("ni,nj->nij", x, x) / noise_scale**2 - (x.T @ x / (n * noise_scale**2))
    kop = torch.einsum("nij,nkl->ikjl", k, k).reshape(d * d, d * d) / n
    sel = torch.zeros(d * d, 4 * d * d, dtype=x.dtype)  # vec(P) -> vec(P_ww), row-major
    rows = torch.arange(d * d)
    sel[rows, (rows // d) * (2 * d) + rows % d] = 1.0
    gg = torch.kron(g, g)
    op = torch.kron(mz, mz) + gg @ kop @ sel / batch_size
    rhs = gg @ c.reshape(-1) / batch_size
    rho = float(torch.linalg.eigvals(op).abs().max())
    if rho >= 1:
        raise ValueError(
            f"no stationary second moment: lr = {lr:.6g} makes SGD mean-square unstable on this "
            f"regression (spectral radius of the second-moment operator {rho:.6g} >= 1; the "
            f"multiplicative noise lowers the bound below lr * lambda_max < 2)"
        )
    p = torch.linalg.solve(torch.eye(4 * d * d, dtype=x.dtype) - op, rhs).reshape(2 * d, 2 * d)
    s = p[:d, :d]
    return mean, (s + s.T) / 2, s_add, a


@dataclass
class SGDComparison:
    """Result of :func:`sgd_vs_prediction` (all tensors float64)."""

    mean: torch.Tensor  #: stationary mean (the posterior mean without weight decay)
    predicted: torch.Tensor  #: predicted stationary covariance
    empirical: torch.Tensor  #: pooled covariance of the chains
    standard_error: torch.Tensor  #: its Monte-Carlo standard error
    posterior: torch.Tensor | None  #: posterior covariance (N A)^{-1} (None without N)
    relative_error: float  #: relative Frobenius error, empirical vs predicted
    kl_to_laplace: float | None  #: KL of N(mean, predicted) to the Laplace posterior
    draws: torch.Tensor  #: (chains, draws, d)
    figure: Path | None = None


def sgd_vs_prediction(
    data=None,
    *,
    lr: float = 0.05,
    batch_size: int = 5,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    num_chains: int = 64,
    num_draws: int = 1000,
    warmup: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
) -> SGDComparison:
    r"""Run constant-rate SGD as a sampler on Bayesian linear regression and compare.

    ``data`` is a :class:`bayesdepth.data.LinearRegressionData` (default
    ``bayesdepth.data.linear_regression()``). Chains use :class:`bayesdepth.inference.samplers.SGD`
    (exactly ``torch.optim.SGD``) on the mean loss with iid batches; the prediction is
    :func:`linear_regression_moments` (exact, with momentum and weight decay). With ``out`` a
    covariance-ellipse figure ``out/sgd_covariance.png`` is written.
    """
    from bayesdepth.data import linear_regression

    from .samplers import SGD

    data = linear_regression() if data is None else data
    num_chains = check_positive_int("num_chains", num_chains)
    num_draws = check_positive_int("num_draws", num_draws)
    x, y, n, d, a, _, _ = _regression_parts(data.x, data.y, data.prior_scale, data.noise_scale)
    mean, pred, _, _ = linear_regression_moments(
        x, y, data.prior_scale, data.noise_scale, lr, batch_size, momentum,
        weight_decay=weight_decay,
    )
    lam = float(torch.linalg.eigvalsh(a)[0]) + weight_decay
    relax = (1 - momentum) / (lr * lam)
    warmup = int(10 * relax) + 1 if warmup is None else warmup
    gen = torch.Generator().manual_seed(seed)
    s2, p2 = data.noise_scale**2, data.prior_scale**2

    def grad_fn(params, generator):
        idx = torch.randint(n, (params.shape[0], batch_size), generator=generator)
        xb, yb = x[idx], y[idx]
        r = (torch.einsum("kbd,kd->kb", xb, params) - yb) / s2
        g = torch.einsum("kbd,kb->kd", xb, r) / batch_size + params / (n * p2)
        pot = 0.5 * (r * r * s2).mean(-1)
        return g, pot

    sampler = SGD(lr, momentum=momentum, weight_decay=weight_decay)
    state = sampler.init(mean.expand(num_chains, d).clone())
    draws = torch.empty(num_chains, num_draws, d, dtype=torch.float64)
    for k in range(warmup + num_draws):
        state, _ = sampler.step(state, grad_fn, gen)
        if k >= warmup:
            draws[:, k - warmup] = state.params
    emp, se = chain_covariance(draws, mean=mean)
    result = SGDComparison(
        mean=mean, predicted=pred, empirical=emp, standard_error=se,
        posterior=torch.linalg.inv(n * a), relative_error=relative_frobenius_error(emp, pred),
        kl_to_laplace=kl_to_laplace(pred, a, n), draws=draws,
    )
    if out is not None:
        result.figure = plot_covariance_ellipses(
            draws, pred, Path(out) / "sgd_covariance.png", mean=mean,
            others={"posterior (N A)^-1": result.posterior},
            title=f"constant SGD, lr={lr}, B={batch_size}, momentum={momentum}",
        )
    return result


def quadratic_vs_prediction(
    hessian: torch.Tensor,
    noise_cov: torch.Tensor,
    *,
    lr: float,
    batch_size: int = 1,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    num_data: int | None = None,
    num_chains: int = 64,
    num_draws: int = 1000,
    warmup: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
) -> SGDComparison:
    r"""Run SGD on the quadratic ``L = theta^T A theta / 2`` and compare with the exact law.

    The minibatch gradient is ``A theta - C^{1/2} z / sqrt(B)`` with standard normal ``z`` (any
    noise with covariance ``C / B`` has the same second moments), updated by
    :class:`bayesdepth.inference.samplers.SGD` (``torch.optim.SGD``'s rule, momentum and weight
    decay included). The prediction is :func:`stationary_covariance` (exact discrete law). With
    ``num_data`` the KL to the Laplace posterior ``(N A)^{-1}`` is reported too; with ``out`` the
    ellipse figure ``out/sgd_covariance.png`` (first two coordinates) is written.
    """
    from .samplers import SGD

    num_chains = check_positive_int("num_chains", num_chains)
    num_draws = check_positive_int("num_draws", num_draws)
    pred = stationary_covariance(hessian, noise_cov, lr, batch_size, momentum=momentum,
                                 weight_decay=weight_decay).to(torch.float64)
    a = hessian.to(torch.float64)
    d = a.shape[0]
    w, u = torch.linalg.eigh(noise_cov.to(torch.float64))
    root = (u * w.clamp_min(0).sqrt()) @ u.T / math.sqrt(batch_size)
    lam = float(torch.linalg.eigvalsh(a)[0]) + weight_decay
    warmup = int(10 * (1 - momentum) / (lr * lam)) + 1 if warmup is None else warmup
    gen = torch.Generator(device=a.device).manual_seed(seed)

    def grad_fn(params, generator):
        z = torch.randn(params.shape, generator=generator, dtype=params.dtype,
                        device=params.device)
        return params @ a - z @ root, 0.5 * ((params @ a) * params).sum(-1)

    sampler = SGD(lr, momentum=momentum, weight_decay=weight_decay)
    state = sampler.init(torch.zeros(num_chains, d, dtype=torch.float64, device=a.device))
    draws = torch.empty(num_chains, num_draws, d, dtype=torch.float64)
    for k in range(warmup + num_draws):
        state, _ = sampler.step(state, grad_fn, gen)
        if k >= warmup:
            draws[:, k - warmup] = state.params.cpu()
    zero = torch.zeros(d, dtype=torch.float64)
    emp, se = chain_covariance(draws, mean=zero)
    pred = pred.cpu()
    posterior = kl = None
    if num_data is not None:
        posterior = torch.linalg.inv(num_data * a.cpu())
        kl = kl_to_laplace(pred, a.cpu(), num_data)
    result = SGDComparison(
        mean=zero, predicted=pred, empirical=emp, standard_error=se, posterior=posterior,
        relative_error=relative_frobenius_error(emp, pred), kl_to_laplace=kl, draws=draws,
    )
    if out is not None:
        others = {} if posterior is None else {"posterior (N A)^-1": posterior}
        result.figure = plot_covariance_ellipses(
            draws, pred, Path(out) / "sgd_covariance.png", mean=zero, others=others,
            title=f"SGD on a quadratic, lr={lr}, B={batch_size}, momentum={momentum}",
        )
    return result


# ------------------------------------------------------------------ figures
def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _ellipse(ax, cov2, centre, **kw):
    from matplotlib.patches import Ellipse

    w, v = np.linalg.eigh(np.asarray(cov2))
    angle = math.degrees(math.atan2(v[1, 1], v[0, 1]))
    ax.add_patch(Ellipse(centre, 4 * math.sqrt(w[1]), 4 * math.sqrt(w[0]), angle=angle,
                         fill=False, **kw))


def plot_covariance_ellipses(
    draws,
    predicted,
    path: str | Path,
    *,
    dims: tuple[int, int] = (0, 1),
    mean=None,
    others: dict | None = None,
    title: str = "",
) -> Path:
    """Scatter of draws with 2-sigma ellipses: empirical (SGD) against predicted covariance."""
    plt = _plt()
    x = _draws(draws)
    i, j = dims
    emp, _ = chain_covariance(x, mean=mean)
    centre = x.mean((0, 1)) if mean is None else torch.as_tensor(mean, dtype=torch.float64)
    idx = [i, j]
    fig, ax = plt.subplots(figsize=(5, 5))
    pts = x[:, :, idx].reshape(-1, 2)
    pts = pts[torch.linspace(0, pts.shape[0] - 1, min(4000, pts.shape[0])).long()]
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.3, color="grey", label="SGD iterates")
    c2 = centre[idx].numpy()
    _ellipse(ax, emp[idx][:, idx], c2, color="C0", lw=2, label="SGD covariance (2 sd)")
    pred = torch.as_tensor(predicted, dtype=torch.float64)
    _ellipse(ax, pred[idx][:, idx], c2, color="C3", lw=2, ls="--", label="predicted")
    for k, (name, cov) in enumerate((others or {}).items()):
        cov = torch.as_tensor(cov, dtype=torch.float64)
        _ellipse(ax, cov[idx][:, idx], c2, color=f"C{k + 1}", lw=1.5, ls=":", label=name)
    ax.set_xlabel(f"theta[{i}]")
    ax.set_ylabel(f"theta[{j}]")
    ax.set_title(title or "SGD stationary covariance")
    ax.legend(fontsize=8)
    ax.autoscale_view()
    return _save(fig, path)


def plot_msd(lags, msd, path: str | Path, *, predicted=None, window=None, title="") -> Path:
    """MSD against lag on log-log axes with the fitted diffusion exponent."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    t = np.asarray(torch.as_tensor(lags, dtype=torch.float64))
    m = np.asarray(torch.as_tensor(msd, dtype=torch.float64))
    gamma = diffusion_exponent(t, m, window)
    ax.loglog(t, m, "o", label=f"MSD (fitted exponent {gamma:.2f})")
    if predicted is not None:
        ax.loglog(t, np.asarray(torch.as_tensor(predicted)), "-", label="closed form")
    ax.set_xlabel("lag tau (steps)")
    ax.set_ylabel("E|theta(t+tau) - theta(t)|^2")
    ax.set_title(title or "mean squared displacement")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_svag_gap(
    ls, gaps, path: str | Path, *, simulated=None, errors=None, title: str = ""
) -> Path:
    """SVAG's distance to the SDE against l on log-log axes, with a 1/l reference line.

    ``gaps`` is the closed-form gap; ``simulated`` (with optional ``errors``, standard errors)
    the gap measured on SVAG chains at the same ``ls``.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    ls = np.asarray(ls, dtype=float)
    gaps = np.asarray(gaps, dtype=float)
    ax.loglog(ls, gaps, "o-", label="gap to SDE (closed form)")
    if simulated is not None:
        ax.errorbar(ls, np.asarray(simulated, dtype=float), yerr=errors, fmt="s", capsize=3,
                    label="gap to SDE (SVAG chains)")
    ax.loglog(ls, gaps[0] * ls[0] / ls, "k:", label="1/l")
    ax.set_xlabel("amplification l")
    ax.set_ylabel("relative covariance gap")
    ax.set_title(title or "SVAG converges to the SDE")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_noise_to_signal(steps, ratio, path: str | Path, *, title: str = "") -> Path:
    """``G/N`` along a run (log y axis)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.semilogy(np.asarray(steps), np.asarray(torch.as_tensor(ratio)), "-")
    ax.set_xlabel("step")
    ax.set_ylabel("G / N")
    ax.set_title(title or "noise-to-signal ratio along training")
    return _save(fig, path)


def _save(fig, path) -> Path:
    from bayesdepth.plotting import save_figure  # matplotlib is imported only when plotting

    return save_figure(fig, path)
