r"""The SGD problem behind every closed form: a quadratic loss, its gradient noise, SGD's settings.

docs/theory.md §0. Near a minimum (and exactly on the quadratic test problem and on linear
regression) constant-rate SGD is described by

- ``A``, the Hessian of the *mean* loss ``L = (1/N) sum_n l_n`` at the optimum (prior folded in);
- ``C``, the per-example gradient covariance in the population normalisation,
  ``C = (1/N) sum_n (grad l_n - grad L)(grad l_n - grad L)^T``;
- the optimiser: learning rate ``eta`` on the mean loss, batch size ``B``, momentum ``beta``
  (``torch.optim.SGD``'s convention), weight decay ``lambda`` (``A~ = A + lambda I``) and an
  optional preconditioner ``H`` (``theta <- theta - eta H g_B``, without momentum);
- how a batch is drawn: iid with replacement, ``Cov g_B = C / B``, or without replacement from
  ``N`` points inside one step, ``Cov g_B = C (N - B) / (B (N - 1))``.

:class:`SGDProblem` holds all of it, validated once at construction, and
:func:`minibatch_noise_factor` is the one definition of the factor in ``Cov g_B = factor * C``
(used by the closed forms, the SDEs of :mod:`.sdes` and the statistics of :mod:`.noise`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from bayesdepth._validation import check_positive, check_positive_int, check_tensor

from ._linalg import check_square, check_symmetric

__all__ = [
    "DegenerateMinimumWarning",
    "RegressionOptimum",
    "SGDProblem",
    "check_momentum",
    "linear_regression_optimum",
    "minibatch_noise_factor",
]

F64 = torch.float64


class DegenerateMinimumWarning(UserWarning):
    """A closed form met a singular ``A + weight_decay I`` (docs/theory.md §13.1).

    It returns the stationary law on the range of the Hessian; along the null space SGD has no
    stationary law but diffuses freely (:func:`.degenerate.null_space_diffusion`).
    Silence it with ``warnings.simplefilter("ignore", DegenerateMinimumWarning)``.
    """


def check_momentum(momentum: Any) -> float:
    """``momentum`` as a float, or raise unless it lies in [0, 1) (``torch.optim.SGD``'s beta)."""
    beta = check_positive("momentum", momentum, allow_zero=True)
    if beta >= 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
    return beta


def minibatch_noise_factor(
    batch_size: int, num_data: int | None = None, replacement: bool = True
) -> float:
    r"""The factor in ``Cov(g_B) = factor * C`` (docs/theory.md §0).

    ``1 / B`` for a batch of ``B`` drawn iid with replacement; ``(N - B) / (B (N - 1))`` for ``B``
    distinct points drawn without replacement from ``N`` (finite-population correction; ``B = N``
    gives 0, the full-batch gradient).

    Args:
        batch_size: ``B`` >= 1.
        num_data: ``N``; required without replacement (then ``2 <= N`` and ``B <= N``).
        replacement: iid batches (True) or batches without replacement (False).

    Raises:
        ValueError: naming the argument, its value and what is allowed.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    if not isinstance(replacement, bool):
        raise TypeError(f"replacement must be True or False, got {replacement!r}")
    if num_data is not None:
        num_data = check_positive_int("num_data", num_data)
    if replacement:
        return 1.0 / batch_size
    if num_data is None:
        raise ValueError(
            "replacement=False needs num_data, the number of points a batch is drawn from "
            "without replacement; got num_data=None"
        )
    if num_data < 2:
        raise ValueError(f"num_data must be >= 2 for batches without replacement, got {num_data}")
    if batch_size > num_data:
        raise ValueError(
            f"batch_size = {batch_size} exceeds num_data = {num_data}: a batch drawn without "
            f"replacement holds at most num_data points"
        )
    return (num_data - batch_size) / (batch_size * (num_data - 1))


def _check_preconditioner(value: Any, dim: int) -> torch.Tensor:
    """A symmetric positive definite (d, d) matrix, or its positive diagonal (d,)."""
    h = check_tensor("preconditioner", value, ndim=(1, 2), floating=True)
    if h.dim() == 2:
        return check_symmetric("preconditioner", check_square("preconditioner", h, dim), pd=True)
    if h.shape[0] != dim or not bool((h > 0).all()):
        low = float(h.min()) if h.numel() else float("nan")
        raise ValueError(
            f"a diagonal preconditioner must have {dim} positive entries, got shape "
            f"{tuple(h.shape)} with minimum {low:.3g}"
        )
    return torch.diag(h.to(F64))


@dataclass(frozen=True, eq=False)
class SGDProblem:
    r"""Constant-rate SGD on a quadratic: Hessian, gradient noise and the optimiser's settings.

    The one argument of every closed form in :mod:`.langevin` and :mod:`.momentum`
    (docs/theory.md §0-§3). Validated once, here; a changed copy comes from :meth:`replace`.

    Attributes:
        hessian: ``A`` (d, d), symmetric: the Hessian of the mean loss at the optimum (without the
            weight decay). ``A + weight_decay I`` must be positive semi-definite for the closed
            forms, which return the law on its range when it is singular (docs/theory.md §13.1).
        noise_cov: ``C`` (d, d), symmetric positive semi-definite: the per-example gradient
            covariance (population normalisation), on the Hessian's device.
        lr: learning rate ``eta`` > 0 on the mean loss.
        batch_size: ``B`` >= 1.
        momentum: ``beta`` in [0, 1) (``torch.optim.SGD``, dampening 0, no Nesterov).
        weight_decay: ``lambda`` >= 0.
        num_data: ``N``, the number of data points (the Laplace posterior is ``(N A)^{-1}``);
            required with ``replacement=False``.
        replacement: batches drawn iid with replacement (default) or without replacement.
        preconditioner: ``H``, symmetric positive definite (d, d) or its positive diagonal (d,);
            only without momentum.

    Results of the closed forms come back in the Hessian's dtype, on its device.

    Example:
        >>> problem = SGDProblem(A, C, lr=0.1, batch_size=10, momentum=0.9)
        >>> S = bi.langevin.stationary_covariance(problem)
    """

    hessian: torch.Tensor
    noise_cov: torch.Tensor
    lr: float
    batch_size: int = 1
    momentum: float = 0.0
    weight_decay: float = 0.0
    num_data: int | None = None
    replacement: bool = True
    preconditioner: torch.Tensor | None = None
    _preconditioner_matrix: torch.Tensor | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        a = check_symmetric("hessian", self.hessian, psd=False)
        check_symmetric("noise_cov", self.noise_cov, size=a.shape[0], psd=True)
        if self.noise_cov.device != self.hessian.device:
            raise ValueError(
                f"noise_cov lives on {self.noise_cov.device} but hessian on "
                f"{self.hessian.device}; put both on one device"
            )
        values = {
            "lr": check_positive("lr", self.lr),
            "batch_size": check_positive_int("batch_size", self.batch_size),
            "momentum": check_momentum(self.momentum),
            "weight_decay": check_positive("weight_decay", self.weight_decay, allow_zero=True),
        }
        minibatch_noise_factor(values["batch_size"], self.num_data, self.replacement)
        if self.num_data is not None:
            values["num_data"] = check_positive_int("num_data", self.num_data)
        if self.preconditioner is not None:
            if values["momentum"] > 0:
                raise ValueError(
                    f"a preconditioner is supported only without momentum (momentum=0), got "
                    f"momentum={self.momentum!r}"
                )
            h = _check_preconditioner(self.preconditioner, a.shape[0])
            values["_preconditioner_matrix"] = h.to(self.hessian.device)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_linear_regression(
        cls,
        data: Any,
        *,
        lr: float,
        batch_size: int = 1,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        replacement: bool = True,
    ) -> SGDProblem:
        r"""The problem of SGD on Bayesian linear regression (docs/theory.md §1.6).

        ``data`` has ``x`` (N, d), ``y`` (N,), ``prior_scale`` and ``noise_scale`` (e.g.
        :func:`bayesdepth.data.linear_regression`). ``A`` and ``C`` are those of the mean loss
        at the minimiser of ``L + weight_decay |w|^2 / 2`` (:func:`linear_regression_optimum`);
        ``num_data = N``.
        """
        optimum = linear_regression_optimum(data, weight_decay)
        return cls(
            optimum.hessian, optimum.noise_cov, lr, batch_size, momentum, weight_decay,
            num_data=data.x.shape[0], replacement=replacement,
        )

    def replace(self, **changes: Any) -> SGDProblem:
        """A validated copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    @property
    def dim(self) -> int:
        """``d``, the number of parameters."""
        return self.hessian.shape[0]

    @property
    def noise_factor(self) -> float:
        """``Cov(g_B) / C``: ``1 / B``, or ``(N - B) / (B (N - 1))`` without replacement."""
        return minibatch_noise_factor(self.batch_size, self.num_data, self.replacement)

    @property
    def regularised_hessian(self) -> torch.Tensor:
        """``A~ = A + weight_decay I`` (float64, symmetrised)."""
        a = self.hessian.to(F64)
        eye = torch.eye(self.dim, dtype=F64, device=a.device)
        return (a + a.T) / 2 + self.weight_decay * eye

    @property
    def minibatch_noise_cov(self) -> torch.Tensor:
        """``Cov(g_B) = noise_factor * C`` (float64)."""
        c = self.noise_cov.to(F64)
        return self.noise_factor * (c + c.T) / 2

    @property
    def preconditioner_matrix(self) -> torch.Tensor | None:
        """``H`` as a (d, d) float64 matrix (a diagonal given as a vector is expanded), or None."""
        return self._preconditioner_matrix

    @property
    def relaxation_time(self) -> float:
        r"""Steps of the slowest mode, ``(1 - beta) / (eta lambda_min(A~))`` (docs/theory.md §7).

        Burn in for at least ten of these before taking draws. Raises if ``A~`` is not positive
        definite (the slowest mode never relaxes).
        """
        low = float(torch.linalg.eigvalsh(self.regularised_hessian)[0])
        if low <= 0:
            raise ValueError(
                f"hessian + weight_decay I must be positive definite for a relaxation time, "
                f"smallest eigenvalue {low:.6g}"
            )
        return (1 - self.momentum) / (self.lr * low)


class RegressionOptimum(NamedTuple):
    """What :func:`linear_regression_optimum` returns (float64, on the data's device)."""

    hessian: torch.Tensor  #: ``A``, the Hessian of the mean loss
    mean: torch.Tensor  #: the minimiser of ``L + weight_decay |w|^2 / 2``
    noise_cov: torch.Tensor  #: ``C`` there (population normalisation)


def linear_regression_optimum(data: Any, weight_decay: float = 0.0) -> RegressionOptimum:
    r"""Hessian, optimum and gradient covariance of the mean loss of Bayesian linear regression.

    ``L(w) = (1/N) sum_n (x_n^T w - y_n)^2 / (2 s^2) + |w|^2 / (2 s_0^2 N)``, so
    ``A = X^T X / (N s^2) + I / (N s_0^2)``; the optimum of ``L + lambda |w|^2 / 2`` is
    ``w_lambda = (A + lambda I)^{-1} X^T y / (N s^2)`` (the posterior mean for ``lambda = 0``);
    ``C`` is the population covariance of ``g_n = x_n (x_n^T w - y_n) / s^2 + w / (N s_0^2)`` at
    ``w_lambda`` (docs/theory.md §1.6).

    Args:
        data: has ``x`` (N, d), ``y`` (N,), ``prior_scale`` ``s_0`` and ``noise_scale`` ``s``.
        weight_decay: ``lambda`` >= 0.
    """
    x = check_tensor("data.x", data.x, ndim=2, floating=True).to(F64)
    y = check_tensor("data.y", data.y, ndim=1, floating=True).to(F64)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"data.y must have {x.shape[0]} entries like data.x, got {y.shape[0]}")
    lam = check_positive("weight_decay", weight_decay, allow_zero=True)
    n, d = x.shape
    s2 = check_positive("data.noise_scale", data.noise_scale) ** 2
    p2 = check_positive("data.prior_scale", data.prior_scale) ** 2
    eye = torch.eye(d, dtype=F64, device=x.device)
    hessian = x.T @ x / (n * s2) + eye / (n * p2)
    mean = torch.linalg.solve(hessian + lam * eye, x.T @ y / (n * s2))
    grads = x * ((x @ mean - y) / s2).unsqueeze(-1) + mean / (n * p2)
    centred = grads - grads.mean(0)
    return RegressionOptimum(hessian, mean, centred.T @ centred / n)
