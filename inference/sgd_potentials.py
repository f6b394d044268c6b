r"""Potentials in the mean-loss convention of the SGD theory (docs/theory.md §0).

SGD-type samplers apply their learning rate to whatever gradient the potential has, so these
potentials are the *mean* loss ``L = U / N`` (not the ``U`` that SG-MCMC samplers target):

- :class:`QuadraticPotential`: ``L = theta^T A theta / 2`` with Gaussian gradient noise of
  covariance ``Cov g_B = phi C`` (the quadratic test problem of an :class:`~.problem.SGDProblem`);
- :class:`LinearRegressionPotential`: the mean loss of Bayesian linear regression on minibatches
  drawn with or without replacement, fresh for every chain and every gradient call;
- :class:`LeastSquaresPotential`: ``(1/B) sum_b (f(theta, x_b) - y_b)^2 / (2 s^2)`` for any model
  ``f`` (a Gaussian likelihood), e.g. the zero-loss manifolds of :mod:`.label_noise`;
- :class:`StableNoisePotential`: any loss with symmetric alpha-stable gradient noise (Simsekli
  et al. 2019; the escape experiments of docs/theory.md §13.4).

The two Gaussian-likelihood potentials take ``label_noise=sigma``: every gradient call draws fresh
targets ``y_b + sigma eps_b``, ``eps ~ N(0, 1)`` per chain and example (label-noise SGD, Li, Wang,
Arora 2022; docs/theory.md §13.2).

All of them give :func:`bayesdepth.inference.sample` chains whose laws are the closed forms of
:mod:`.langevin`, :mod:`.momentum`, :mod:`.regression` and :mod:`.label_noise`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from bayesdepth._validation import check_positive, check_positive_int, check_tensor

from ._linalg import sqrt_psd
from .heavy_tails import sample_symmetric_stable
from .potentials import Potential, subsample_indices
from .problem import SGDProblem

__all__ = [
    "LabelBatch",
    "LeastSquaresPotential",
    "LinearRegressionPotential",
    "MinibatchRegression",
    "QuadraticPotential",
    "StableNoisePotential",
]

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


class LabelBatch(NamedTuple):
    """A minibatch of a regression potential: rows per chain and the label noise added to them."""

    indices: torch.Tensor | None  #: (chains, B) row indices, or None for the full data
    label_noise: torch.Tensor | None  #: (chains, B) added to the targets, or None


class MinibatchRegression(Potential):
    """Data, minibatches (one per chain and call, with or without replacement) and label noise
    shared by the regression potentials of the mean loss; subclasses add ``__call__`` and
    :meth:`~bayesdepth.inference.potentials.Potential.init`."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int | None,
        replacement: bool,
        label_noise: float,
    ) -> None:
        self.x = check_tensor("x", x, floating=True).to(F64)
        self.y = check_tensor("y", y, ndim=1, floating=True).to(F64)
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"x and y must have the same number of rows, got {self.x.shape[0]} and "
                f"{self.y.shape[0]}"
            )
        self.num_data = self.x.shape[0]
        self.batch_size = None if batch_size is None else check_positive_int("batch_size",
                                                                             batch_size)
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement must be True or False, got {replacement!r}")
        self.replacement = replacement
        if not replacement and self.batch_size is not None and self.batch_size > self.num_data:
            raise ValueError(
                f"batch_size = {batch_size} exceeds the {self.num_data} data points "
                "(batches without replacement)"
            )
        self.label_noise = check_positive("label_noise", label_noise, allow_zero=True)
        self.observed_data = {"y": self.y}

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: torch.device | str) -> MinibatchRegression:
        new = copy.copy(self)
        new.x, new.y = self.x.to(device), self.y.to(device)
        new.observed_data = {"y": new.y}
        return new

    def sample_batch(self, num_chains: int, generator: torch.Generator | None) -> LabelBatch:
        """Row indices (chains, B) (None for full batches), then label noise (chains, B)."""
        idx = None
        if self.batch_size is not None:
            shape = (num_chains, self.batch_size)
            if self.replacement:
                idx = torch.randint(self.num_data, shape, generator=generator, device=self.device)
            else:
                idx = subsample_indices(self.num_data, self.batch_size, num_chains, generator,
                                        self.device)
        noise = None
        if self.label_noise:
            width = self.num_data if idx is None else idx.shape[1]
            noise = self.label_noise * torch.randn(
                num_chains, width, generator=generator, dtype=F64, device=self.device
            )
        return LabelBatch(idx, noise)

    def _data(self, num_chains: int, batch: LabelBatch | None):
        """``x_b`` (chains, B, ...) and the (noisy) targets ``y_b`` (chains, B)."""
        if batch is None or batch.indices is None:
            xb = self.x.expand(num_chains, *self.x.shape)
            yb = self.y.expand(num_chains, -1)
        else:
            xb, yb = self.x[batch.indices], self.y[batch.indices]
        if batch is not None and batch.label_noise is not None:
            yb = yb + batch.label_noise
        return xb, yb


class LinearRegressionPotential(MinibatchRegression):
    r"""Mean minibatch loss of Bayesian linear regression, one batch per chain and call.

    ``L_B(w) = (1/B) sum_{b in batch} (x_b^T w - y_b)^2 / (2 s^2) + |w|^2 / (2 s_0^2 N)``: an
    unbiased estimate of the mean loss ``L`` of :func:`~.problem.linear_regression_optimum`,
    whose gradient is the minibatch gradient of docs/theory.md §1.6. Parameters are a
    ``(chains, d)`` float64 tensor; pass ``init=`` to :func:`~bayesdepth.inference.sample`.

    Args:
        data: has ``x`` (N, d), ``y`` (N,), ``prior_scale``, ``noise_scale``.
        batch_size: ``B``.
        replacement: indices iid with replacement (default) or ``B`` distinct ones per batch.
        label_noise: ``sigma`` >= 0: fresh targets ``y_b + sigma eps`` at every call
            (docs/theory.md §13.2).
    """

    def __init__(
        self, data: Any, batch_size: int, replacement: bool = True, label_noise: float = 0.0
    ) -> None:
        super().__init__(data.x, data.y, check_positive_int("batch_size", batch_size),
                         bool(replacement), label_noise)
        self.noise_var = float(data.noise_scale) ** 2
        self.prior_var = float(data.prior_scale) ** 2

    def __call__(self, params: torch.Tensor, batch: Any = None) -> tuple[torch.Tensor, Any]:
        xb, yb = self._data(params.shape[0], batch)
        residual = torch.einsum("kbd,kd->kb", xb, params) - yb
        fit = 0.5 * (residual**2).mean(-1) / self.noise_var
        prior = 0.5 * (params**2).sum(-1) / (self.num_data * self.prior_var)
        return fit + prior, None


class LeastSquaresPotential(MinibatchRegression):
    r"""``L_B(theta) = (1/B) sum_b (f(theta, x_b) - y_b)^2 / (2 s^2)`` for any model ``f``.

    The mean loss of a Gaussian likelihood with noise scale ``s`` (no prior), evaluated for K
    chains with ``torch.func.vmap``; its zero set ``{f(theta, x_n) = y_n}`` is the manifold of
    :mod:`.label_noise`. With ``label_noise = sigma`` every call draws fresh targets
    ``y_b + sigma eps_b`` per chain and example (docs/theory.md §13.2), so SGD is label-noise
    SGD: ``theta <- theta - (eta / (B s^2)) sum_b (f_b - y_b - sigma eps_b) grad f_b``.

    Args:
        model: ``f(theta, x) -> (B,)`` predictions for one chain's parameters ``theta`` (d,) at
            inputs ``x`` (B, ...); written for a single chain (it is vmapped).
        x: inputs (N, ...).
        y: targets (N,).
        batch_size: ``B`` (None: the full data every call).
        noise_scale: ``s`` > 0.
        label_noise: ``sigma`` >= 0.
        replacement: minibatch rows iid with replacement (default) or ``B`` distinct ones.
        init: a start (d,) for every chain (default: none; pass ``init=`` to ``sample``).
    """

    def __init__(
        self,
        model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int | None = None,
        *,
        noise_scale: float = 1.0,
        label_noise: float = 0.0,
        replacement: bool = True,
        init: torch.Tensor | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable f(theta, x), got {type(model).__name__}")
        super().__init__(x, y, batch_size, replacement, label_noise)
        self.model = model
        self.noise_var = check_positive("noise_scale", noise_scale) ** 2
        self.start = None if init is None else check_tensor("init", init, ndim=1,
                                                            floating=True).to(F64)

    def init(self, num_chains: int, generator: torch.Generator | None) -> torch.Tensor:
        """Every chain at ``init``."""
        if self.start is None:
            return super().init(num_chains, generator)
        return self.start.to(self.device).expand(num_chains, -1).clone()

    def __call__(self, params: torch.Tensor, batch: Any = None) -> tuple[torch.Tensor, Any]:
        xb, yb = self._data(params.shape[0], batch)
        pred = torch.func.vmap(self.model)(params, xb)
        residual = pred - yb
        return 0.5 * (residual**2).mean(-1) / self.noise_var, {"residual": residual.detach()}


class StableNoisePotential(Potential):
    r"""``U(theta; z) = L(theta) - scale theta^T z`` with ``z`` iid symmetric alpha-stable.

    Every gradient call draws a fresh ``z`` (chains, d) (Chambers–Mallows–Stuck,
    :func:`.heavy_tails.sample_symmetric_stable`), so the gradient is ``grad L - scale z``: heavy-
    tailed gradient noise of tail index ``alpha`` (alpha = 1: Cauchy; alpha = 2: Gaussian of
    variance ``2 scale^2``), as in Simsekli et al. (2019) and Zhou et al. (2020)
    (docs/theory.md §13.4). Parameters are a ``(chains, d)`` float64 tensor.

    Args:
        loss: ``L`` mapping (chains, d) to (chains,) (vectorised over chains).
        dim: ``d``.
        alpha: tail index in (0, 2].
        scale: noise scale > 0.
        init: a start (d,) for every chain (default: the origin).
    """

    def __init__(
        self,
        loss: Callable[[torch.Tensor], torch.Tensor],
        dim: int,
        alpha: float,
        scale: float = 1.0,
        init: torch.Tensor | None = None,
    ) -> None:
        if not callable(loss):
            raise TypeError(f"loss must be callable, got {type(loss).__name__}")
        self.loss = loss
        self.dim = check_positive_int("dim", dim)
        alpha = check_positive("alpha", alpha)
        if alpha > 2:
            raise ValueError(f"alpha must lie in (0, 2], got {alpha!r}")
        self.alpha, self.scale = alpha, check_positive("scale", scale)
        start = torch.zeros(self.dim, dtype=F64) if init is None else init
        self.start = check_tensor("init", start, ndim=1, floating=True).to(F64)
        if self.start.shape[0] != self.dim:
            raise ValueError(f"init must have {self.dim} entries, got {self.start.shape[0]}")

    @property
    def device(self) -> torch.device:
        return self.start.device

    def to(self, device: torch.device | str) -> StableNoisePotential:
        new = copy.copy(self)
        new.start = self.start.to(device)
        return new

    def sample_batch(self, num_chains: int, generator: torch.Generator | None) -> torch.Tensor:
        """Symmetric alpha-stable ``z`` of shape (chains, d)."""
        return sample_symmetric_stable(self.alpha, (num_chains, self.dim), generator=generator,
                                       dtype=F64, device=self.device)

    def init(self, num_chains: int, generator: torch.Generator | None) -> torch.Tensor:
        """Every chain at ``init``."""
        return self.start.expand(num_chains, -1).clone()

    def __call__(self, params: torch.Tensor, batch: Any = None) -> tuple[torch.Tensor, Any]:
        value = self.loss(params)
        if batch is not None:
            value = value - self.scale * (params * batch).sum(-1)
        return value, None
