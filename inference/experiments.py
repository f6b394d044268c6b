r"""SGD chains against the Langevin predictions: linear regression and the quadratic problem.

Both drivers run ``torch.optim.SGD``'s update (:class:`~.samplers.SGD`) on K chains with the
runner :func:`~.runner.sample` on a potential of :mod:`.sgd_potentials`, and compare the chains'
pooled covariance (with its between-chain standard error) with the exact discrete stationary
covariance (docs/theory.md §1-§2), the KL of that law to the Laplace posterior, and optionally a
covariance-ellipse figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bayesdepth._validation import check_positive_int

from .langevin import kl_to_laplace, stationary_covariance
from .plots import plot_covariance_ellipses
from .potentials import Potential
from .problem import SGDProblem
from .regression import linear_regression_moments
from .runner import sample
from .samplers import SGD
from .sgd_potentials import LinearRegressionPotential, QuadraticPotential
from .statistics import chain_covariance, relative_frobenius_error

__all__ = ["SGDComparison", "quadratic_vs_prediction", "sgd_vs_prediction"]

F64 = torch.float64


@dataclass
class SGDComparison:
    """Result of :func:`sgd_vs_prediction` and :func:`quadratic_vs_prediction` (float64, CPU)."""

    mean: torch.Tensor  #: stationary mean (the posterior mean without weight decay)
    predicted: torch.Tensor  #: predicted stationary covariance
    empirical: torch.Tensor  #: pooled covariance of the chains
    standard_error: torch.Tensor  #: its Monte-Carlo standard error
    posterior: torch.Tensor | None  #: posterior covariance (N A)^{-1} (None without N)
    relative_error: float  #: relative Frobenius error, empirical vs predicted
    kl_to_laplace: float | None  #: KL of N(mean, predicted) to the Laplace posterior
    draws: torch.Tensor  #: (chains, draws, d)
    figure: Path | None = None


def _sgd_chains(
    potential: Potential,
    problem: SGDProblem,
    init: torch.Tensor | None,
    num_chains: int,
    num_draws: int,
    warmup: int | None,
    seed: int,
) -> torch.Tensor:
    """Draws (chains, draws, d) of ``torch.optim.SGD``'s update with the problem's settings.

    ``warmup`` defaults to ten relaxation times, ``10 (1 - beta) / (lr lambda_min)``
    (docs/theory.md §7).
    """
    if warmup is None:
        warmup = int(10 * problem.relaxation_time) + 1
    sampler = SGD(problem.lr, momentum=problem.momentum, weight_decay=problem.weight_decay)
    chains = sample(potential, sampler, num_chains=num_chains, num_draws=num_draws,
                    warmup=warmup, init=init, seed=seed)
    return chains.draws["theta"].to(F64)


def _compare(
    draws: torch.Tensor,
    problem: SGDProblem,
    mean: torch.Tensor,
    predicted: torch.Tensor,
    out: str | Path | None,
    title: str,
) -> SGDComparison:
    mean, predicted = mean.to(F64).cpu(), predicted.to(F64).cpu()
    empirical, se = chain_covariance(draws, mean=mean)
    posterior = kl = None
    if problem.num_data is not None:
        posterior = torch.linalg.inv(problem.num_data * problem.hessian.to(F64)).cpu()
        kl = kl_to_laplace(predicted.to(problem.hessian), problem)
    result = SGDComparison(
        mean=mean, predicted=predicted, empirical=empirical, standard_error=se,
        posterior=posterior, relative_error=relative_frobenius_error(empirical, predicted),
        kl_to_laplace=kl, draws=draws,
    )
    if out is not None:
        others = {} if posterior is None else {"posterior (N A)^-1": posterior}
        result.figure = plot_covariance_ellipses(
            draws, predicted, Path(out) / "sgd_covariance.png", mean=mean, others=others,
            title=title,
        )
    return result


def sgd_vs_prediction(
    data: Any = None,
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
    ``bayesdepth.data.linear_regression()``). Chains use :class:`bayesdepth.inference.SGD`
    (exactly ``torch.optim.SGD``) on the mean loss with iid batches
    (:class:`~.sgd_potentials.LinearRegressionPotential`), started at the stationary mean; the
    prediction is :func:`~.regression.linear_regression_moments` (exact, with momentum and weight
    decay; docs/theory.md §1.6). ``warmup`` defaults to ten relaxation times. With ``out`` a
    covariance-ellipse figure ``out/sgd_covariance.png`` is written.
    """
    from bayesdepth.data import linear_regression

    data = linear_regression() if data is None else data
    problem = SGDProblem.from_linear_regression(
        data, lr=lr, batch_size=batch_size, momentum=momentum, weight_decay=weight_decay
    )
    moments = linear_regression_moments(data, problem)
    init = moments.mean.expand(check_positive_int("num_chains", num_chains), -1).clone()
    draws = _sgd_chains(LinearRegressionPotential(data, problem.batch_size), problem, init,
                        num_chains, num_draws, warmup, seed)
    return _compare(draws, problem, moments.mean, moments.covariance, out,
                    f"constant SGD, lr={lr}, B={batch_size}, momentum={momentum}")


def quadratic_vs_prediction(
    problem: SGDProblem,
    *,
    num_chains: int = 64,
    num_draws: int = 1000,
    warmup: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
) -> SGDComparison:
    r"""Run SGD on the quadratic ``L = theta^T A theta / 2`` and compare with the exact law.

    The minibatch gradient is ``A theta - (phi C)^{1/2} z`` with standard normal ``z``
    (:class:`~.sgd_potentials.QuadraticPotential`; any noise with covariance ``phi C`` has the same
    second moments), updated by :class:`bayesdepth.inference.SGD` (``torch.optim.SGD``'s rule,
    the problem's momentum and weight decay included) from the optimum 0. The prediction is
    :func:`~.langevin.stationary_covariance` (exact discrete law; docs/theory.md §1.2, §2.1).
    With ``problem.num_data`` the KL to the Laplace posterior ``(N A)^{-1}`` is reported too;
    with ``out`` the ellipse figure ``out/sgd_covariance.png`` (first two coordinates) is
    written. The problem must have no preconditioner (``torch.optim.SGD`` has none).
    """
    if not isinstance(problem, SGDProblem):
        raise TypeError(f"problem must be an SGDProblem, got {type(problem).__name__}")
    if problem.preconditioner is not None:
        raise ValueError(
            "quadratic_vs_prediction runs torch.optim.SGD, which has no preconditioner; got a "
            "problem with preconditioner set"
        )
    predicted = stationary_covariance(problem)
    draws = _sgd_chains(QuadraticPotential(problem), problem, None, num_chains, num_draws,
                        warmup, seed)
    zero = torch.zeros(problem.dim, dtype=F64)
    return _compare(draws, problem, zero, predicted, out,
                    f"SGD on a quadratic, lr={problem.lr}, B={problem.batch_size}, "
                    f"momentum={problem.momentum}")
