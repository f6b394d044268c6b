"""Embedded data sets: seeded generators (and scikit-learn's digits) that need no download.

Every function takes ``seed`` and ``dtype`` (float32 by default) and returns tensors on the CPU;
move them with ``.to(device)``. Bad arguments raise ``ValueError`` naming the argument.

- :func:`toy_regression_1d`: the SDE-BNN paper's 1-D regression (Xu et al. 2022).
- :func:`anode_1d_map` and :func:`annuli`: the augmented-neural-ODE tasks (Dupont et al. 2019).
- :func:`two_moons`.
- :func:`digits`: scikit-learn's bundled 8x8 digits, fixed stratified split, standardised.
- :func:`linear_regression`: Bayesian linear regression with its exact conjugate posterior.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch.utils.data import TensorDataset

from .._validation import check_dtype, check_positive, check_positive_int, check_tensor

__all__ = [
    "ClassificationData",
    "LinearRegressionData",
    "RegressionData",
    "annuli",
    "anode_1d_map",
    "conjugate_linear_regression",
    "digits",
    "linear_regression",
    "toy_regression_1d",
    "two_moons",
]


@dataclass(frozen=True)
class RegressionData:
    """Inputs ``x`` (n, d), targets ``y`` (n,), and a test grid ``x_test`` (m, d)."""

    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor

    @property
    def dataset(self) -> TensorDataset:
        return TensorDataset(self.x, self.y)


@dataclass(frozen=True)
class ClassificationData:
    """Train/test inputs and integer labels; ``num_classes`` classes."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def train_dataset(self) -> TensorDataset:
        return TensorDataset(self.x_train, self.y_train)

    @property
    def test_dataset(self) -> TensorDataset:
        return TensorDataset(self.x_test, self.y_test)


@dataclass(frozen=True)
class LinearRegressionData:
    """Data ``y = X w + N(0, noise_scale^2)`` with prior ``w ~ N(0, prior_scale^2 I)``.

    ``posterior_mean`` and ``posterior_cov`` are the exact conjugate posterior:
    ``P = I / s0^2 + X^T X / s^2``, ``cov = P^{-1}``, ``mean = P^{-1} X^T y / s^2``.
    """

    x: torch.Tensor
    y: torch.Tensor
    true_weights: torch.Tensor | None
    prior_scale: float
    noise_scale: float
    posterior_mean: torch.Tensor
    posterior_cov: torch.Tensor

    @property
    def posterior_precision(self) -> torch.Tensor:
        return torch.linalg.inv(self.posterior_cov)

    @property
    def dataset(self) -> TensorDataset:
        return TensorDataset(self.x, self.y)


def _generator(seed: int) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def toy_regression_1d(
    num_points: int = 40,
    noise_scale: float = 0.1,
    num_test: int = 200,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> RegressionData:
    """The 1-D regression of the SDE-BNN paper: two clusters with a gap between them.

    Half the points lie on ``linspace(0, 2)``, half on ``linspace(6, 8)``;
    ``y = cos(x) + N(0, noise_scale^2)``. Inputs are normalised as ``(x - 4) / 4``; the test grid
    covers ``x`` in [-2, 8] (normalised the same way), so the gap (2, 6) and the region left of the
    data show the predictive uncertainty. Returns :class:`RegressionData` with ``x`` of shape
    (num_points, 1), ``y`` of shape (num_points,) and ``x_test`` of shape (num_test, 1).
    """
    num_points = check_positive_int("num_points", num_points, minimum=2)
    if num_points % 2:
        raise ValueError(f"num_points must be even (two equal clusters), got {num_points}")
    noise_scale = check_positive("noise_scale", noise_scale, allow_zero=True)
    num_test = check_positive_int("num_test", num_test, minimum=2)
    check_dtype("dtype", dtype)
    g = _generator(seed)
    half = num_points // 2
    f64 = torch.float64
    raw = torch.cat([torch.linspace(0, 2, half, dtype=f64), torch.linspace(6, 8, half, dtype=f64)])
    y = raw.cos() + noise_scale * torch.randn(num_points, generator=g, dtype=torch.float64)
    grid = torch.linspace(-2, 8, num_test, dtype=torch.float64)
    return RegressionData(
        x=((raw - 4) / 4).unsqueeze(-1).to(dtype),
        y=y.to(dtype),
        x_test=((grid - 4) / 4).unsqueeze(-1).to(dtype),
    )


def anode_1d_map(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The map ``g(-1) = 1, g(1) = -1`` that no neural ODE on the line can represent.

    Returns ``x`` of shape (2, 1) = [[-1], [1]] and ``y`` of shape (2, 1) = [[1], [-1]].
    """
    check_dtype("dtype", dtype)
    x = torch.tensor([[-1.0], [1.0]], dtype=dtype)
    return x, -x


def _uniform_in_shell(
    n: int, dim: int, r_min: float, r_max: float, g: torch.Generator
) -> torch.Tensor:
    """Points uniform in the shell r_min <= |x| <= r_max of R^dim."""
    direction = torch.randn(n, dim, generator=g, dtype=torch.float64)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    u = torch.rand(n, 1, generator=g, dtype=torch.float64)
    radius = (r_min**dim + u * (r_max**dim - r_min**dim)) ** (1.0 / dim)
    return direction * radius


def annuli(
    num_points: int = 1000,
    dim: int = 2,
    inner_radius: float = 0.5,
    shell: tuple[float, float] = (1.0, 1.5),
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concentric annuli in ``dim`` dimensions (Dupont et al. 2019, "g_d").

    Half the points are uniform in the ball ``|x| <= inner_radius`` (label 1), half uniform in the
    shell ``shell[0] <= |x| <= shell[1]`` (label 0). Returns ``x`` (num_points, dim) and integer
    labels ``y`` (num_points,), shuffled.
    """
    num_points = check_positive_int("num_points", num_points, minimum=2)
    dim = check_positive_int("dim", dim)
    inner_radius = check_positive("inner_radius", inner_radius)
    if len(shell) != 2 or not inner_radius < shell[0] < shell[1]:
        raise ValueError(
            f"shell must be (r_min, r_max) with inner_radius < r_min < r_max, got {shell!r} "
            f"with inner_radius={inner_radius}"
        )
    check_dtype("dtype", dtype)
    g = _generator(seed)
    n_in = num_points // 2
    inner = _uniform_in_shell(n_in, dim, 0.0, inner_radius, g)
    outer = _uniform_in_shell(num_points - n_in, dim, shell[0], shell[1], g)
    x = torch.cat([inner, outer])
    y = torch.cat([torch.ones(n_in), torch.zeros(num_points - n_in)]).long()
    perm = torch.randperm(num_points, generator=g)
    return x[perm].to(dtype), y[perm]


def two_moons(
    num_points: int = 500,
    noise_scale: float = 0.1,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half circles with Gaussian noise; ``x`` (n, 2), labels ``y`` (n,)."""
    num_points = check_positive_int("num_points", num_points, minimum=2)
    noise_scale = check_positive("noise_scale", noise_scale, allow_zero=True)
    check_dtype("dtype", dtype)
    g = _generator(seed)
    n_a = num_points // 2
    n_b = num_points - n_a
    t_a = torch.linspace(0, math.pi, n_a, dtype=torch.float64)
    t_b = torch.linspace(0, math.pi, n_b, dtype=torch.float64)
    a = torch.stack([t_a.cos(), t_a.sin()], -1)
    b = torch.stack([1 - t_b.cos(), 0.5 - t_b.sin()], -1)
    noise = torch.randn(num_points, 2, generator=g, dtype=torch.float64)
    x = torch.cat([a, b]) + noise_scale * noise
    y = torch.cat([torch.zeros(n_a), torch.ones(n_b)]).long()
    perm = torch.randperm(num_points, generator=g)
    return x[perm].to(dtype), y[perm]


def digits(
    test_fraction: float = 0.25,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    flatten: bool = True,
) -> ClassificationData:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes).

    A stratified train/test split fixed by ``seed``; pixels standardised with the *training*
    mean and standard deviation (per pixel; constant pixels are left at zero). ``flatten=True``
    gives (n, 64) inputs, ``flatten=False`` images of shape (n, 1, 8, 8).
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    check_dtype("dtype", dtype)
    _generator(seed)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        bunch.data, bunch.target, test_size=test_fraction, stratify=bunch.target, random_state=seed
    )
    x_tr = torch.as_tensor(x_tr, dtype=torch.float64)
    x_te = torch.as_tensor(x_te, dtype=torch.float64)
    mean = x_tr.mean(0)
    std = x_tr.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    if not flatten:
        x_tr, x_te = x_tr.reshape(-1, 1, 8, 8), x_te.reshape(-1, 1, 8, 8)
    return ClassificationData(
        x_train=x_tr.to(dtype),
        y_train=torch.as_tensor(y_tr).long(),
        x_test=x_te.to(dtype),
        y_test=torch.as_tensor(y_te).long(),
        num_classes=10,
    )


def linear_regression(
    num_points: int = 100,
    dim: int = 5,
    prior_scale: float = 1.0,
    noise_scale: float = 0.5,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> LinearRegressionData:
    """Bayesian linear regression with its exact conjugate posterior.

    ``w ~ N(0, prior_scale^2 I)``, ``x_n ~ N(0, I)``, ``y_n = x_n^T w + N(0, noise_scale^2)``.
    The posterior is Gaussian with precision ``P = I / prior_scale^2 + X^T X / noise_scale^2`` and
    mean ``P^{-1} X^T y / noise_scale^2`` (computed in float64 by a Cholesky solve, then cast).
    Defaults to float64 because it is the reference for numerical checks.
    """
    num_points = check_positive_int("num_points", num_points)
    dim = check_positive_int("dim", dim)
    prior_scale = check_positive("prior_scale", prior_scale)
    noise_scale = check_positive("noise_scale", noise_scale)
    check_dtype("dtype", dtype)
    g = _generator(seed)
    w = prior_scale * torch.randn(dim, generator=g, dtype=torch.float64)
    x = torch.randn(num_points, dim, generator=g, dtype=torch.float64)
    y = x @ w + noise_scale * torch.randn(num_points, generator=g, dtype=torch.float64)
    posterior = conjugate_linear_regression(x, y, prior_scale, noise_scale, dtype=dtype)
    return dataclasses.replace(posterior, true_weights=w.to(dtype))


def conjugate_linear_regression(
    x: torch.Tensor,
    y: torch.Tensor,
    prior_scale: float = 1.0,
    noise_scale: float = 1.0,
    dtype: torch.dtype | None = None,
) -> LinearRegressionData:
    """The exact posterior of ``y = X w + N(0, noise_scale^2)``, ``w ~ N(0, prior_scale^2 I)``.

    Precision ``P = I / prior_scale^2 + X^T X / noise_scale^2``, mean ``P^{-1} X^T y /
    noise_scale^2``, computed in float64 by a Cholesky solve and returned in ``dtype`` (default:
    the dtype of ``x``). ``true_weights`` is None.
    """
    check_tensor("x", x, ndim=2, floating=True)
    check_tensor("y", y, ndim=1, floating=True)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have {x.shape[0]} entries like the rows of x, got {len(y)}")
    prior_scale = check_positive("prior_scale", prior_scale)
    noise_scale = check_positive("noise_scale", noise_scale)
    dtype = x.dtype if dtype is None else check_dtype("dtype", dtype)
    x64, y64 = x.to(torch.float64), y.to(torch.float64)
    eye = torch.eye(x.shape[1], dtype=torch.float64, device=x.device)
    precision = eye / prior_scale**2 + x64.T @ x64 / noise_scale**2
    chol = torch.linalg.cholesky(precision)
    cov = torch.cholesky_inverse(chol)
    mean = torch.cholesky_solve((x64.T @ y64 / noise_scale**2).unsqueeze(-1), chol).squeeze(-1)
    return LinearRegressionData(
        x=x.to(dtype),
        y=y.to(dtype),
        true_weights=None,
        prior_scale=prior_scale,
        noise_scale=noise_scale,
        posterior_mean=mean.to(dtype),
        posterior_cov=cov.to(dtype),
    )
