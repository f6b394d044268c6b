r"""Potentials in the mean-loss convention of the SGD theory (docs/theory.md §0).

SGD-type samplers apply their learning rate to whatever gradient the potential has, so these
potentials are the *mean* loss ``L = U / N`` (not the ``U`` that SG-MCMC samplers target):

- :class:`QuadraticPotential`: ``L = theta^T A theta / 2`` with Gaussian gradient noise of
  covariance ``Cov g_B = phi C`` (the quadratic test problem of an :class:`~.problem.SGDProblem`);
- :class:`LinearRegressionPotential`: the mean loss of Bayesian linear regression on minibatches
  drawn with or without replacement, fresh for every chain and every gradient call.

Both give :func:`bayesdepth.inference.sample` chains whose stationary laws are the closed forms of
:mod:`.langevin`, :mod:`.momentum` and :mod:`.regression`.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from bayesdepth._validation import check_positive_int

from ._linalg import sqrt_psd
from .potentials import Potential, subsample_indices
from .problem import SGDProblem

__all__ = ["LinearRegressionPotential", "QuadraticPotential"]

F64 = torch.float64


class QuadraticPotential(Potential):
    r"""``U(theta; z) = theta^T A theta / 2 - theta^T R z``, ``R = (phi C)^{1/2}``, ``z ~ N(0, I)``.

    Every gradient call draws a fresh ``z`` per chain, so the gradient ``A theta - R z`` has the
    mean ``A theta`` and the covariance ``phi C`` of a minibatch gradient of ``problem`` (any noise
    with these two moments has the same stationary covariance under SGD). Parameters are a
    ``(chains, d)`` float64 tensor; chains start at the optimum 0. The weight decay is the
    sampler's (``SGD(weight_decay=...)``), not part of the potential.
    """

    def __init__(self, problem: SGDProblem) -> None:
        if not isinstance(problem, SGDProblem):
            raise TypeError(f"problem must be an SGDProblem, got {type(problem).__name__}")
        a = problem.hessian.to(F64)
        self.hessian = (a + a.T) / 2
        self.root = sqrt_psd(problem.minibatch_noise_cov)

    @property
    def device(self) -> torch.device:
        return self.hessian.device

    def to(self, device: torch.device | str) -> QuadraticPotential:
        new = copy.copy(self)
        new.hessian, new.root = self.hessian.to(device), self.root.to(device)
        return new

    def sample_batch(self, num_chains: int, generator: torch.Generator | None) -> torch.Tensor:
        """Standard normal ``z`` of shape (chains, d)."""
        shape = (num_chains, self.hessian.shape[0])
        return torch.randn(shape, generator=generator, dtype=F64, device=self.device)

    def init(self, num_chains: int, generator: torch.Generator | None) -> torch.Tensor:
        """Every chain at the optimum 0."""
        return torch.zeros(num_chains, self.hessian.shape[0], dtype=F64, device=self.device)

    def __call__(self, params: torch.Tensor, batch: Any = None) -> tuple[torch.Tensor, Any]:
        value = 0.5 * ((params @ self.hessian) * params).sum(-1)
        if batch is not None:
            value = value - (params * (batch @ self.root)).sum(-1)
        return value, None


class LinearRegressionPotential(Potential):
    r"""Mean minibatch loss of Bayesian linear regression, one batch per chain and call.

    ``L_B(w) = (1/B) sum_{b in batch} (x_b^T w - y_b)^2 / (2 s^2) + |w|^2 / (2 s_0^2 N)``: an
    unbiased estimate of the mean loss ``L`` of :func:`~.problem.linear_regression_optimum`,
    whose gradient is the minibatch gradient of docs/theory.md §1.6. Parameters are a
    ``(chains, d)`` float64 tensor; pass ``init=`` to :func:`~bayesdepth.inference.sample`.

    Args:
        data: has ``x`` (N, d), ``y`` (N,), ``prior_scale``, ``noise_scale``.
        batch_size: ``B``.
        replacement: indices iid with replacement (default) or ``B`` distinct ones per batch.
    """

    def __init__(self, data: Any, batch_size: int, replacement: bool = True) -> None:
        self.x = data.x.to(F64)
        self.y = data.y.to(F64)
        self.num_data = self.x.shape[0]
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.replacement = bool(replacement)
        if not self.replacement and self.batch_size > self.num_data:
            raise ValueError(
                f"batch_size = {batch_size} exceeds the {self.num_data} data points "
                "(batches without replacement)"
            )
        self.noise_var = float(data.noise_scale) ** 2
        self.prior_var = float(data.prior_scale) ** 2
        self.observed_data = {"y": self.y}

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: torch.device | str) -> LinearRegressionPotential:
        new = copy.copy(self)
        new.x, new.y = self.x.to(device), self.y.to(device)
        new.observed_data = {"y": new.y}
        return new

    def sample_batch(self, num_chains: int, generator: torch.Generator | None) -> torch.Tensor:
        """Row indices of shape (chains, B)."""
        shape = (num_chains, self.batch_size)
        if self.replacement:
            return torch.randint(self.num_data, shape, generator=generator, device=self.device)
        return subsample_indices(self.num_data, self.batch_size, num_chains, generator,
                                 self.device)

    def __call__(self, params: torch.Tensor, batch: Any = None) -> tuple[torch.Tensor, Any]:
        if batch is None:
            xb, yb = self.x.expand(params.shape[0], -1, -1), self.y.expand(params.shape[0], -1)
        else:
            xb, yb = self.x[batch], self.y[batch]
        residual = torch.einsum("kbd,kd->kb", xb, params) - yb
        fit = 0.5 * (residual**2).mean(-1) / self.noise_var
        prior = 0.5 * (params**2).sum(-1) / (self.num_data * self.prior_var)
        return fit + prior, None
