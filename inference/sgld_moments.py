r"""Exact stationary moments of SGLD on Bayesian linear regression, minibatches of distinct indices.

SGLD on the potential ``U = N L`` (docs/theory.md §5.2), ``theta <- theta - (eps/2) grad U_B +
sqrt(eps T) xi``, is in the mean-loss convention ``theta <- theta - eta g_B + sqrt(eps T) xi`` with
``eta = eps N / 2`` (docs/theory.md §1.7): SGD on the mean loss plus independent isotropic noise.
On linear regression the minibatch noise is multiplicative (docs/theory.md §1.6: ``g_n(w) - g(w)
= c_n + K_n delta``), and a batch of ``B`` *distinct* indices drawn uniformly (what
:func:`~bayesdepth.inference.pyro_potential` and :func:`~bayesdepth.inference.module_potential`
draw, independently for every chain) has ``Cov(g_B | w) = phi Cov_n(g_n(w))`` with the
finite-population factor ``phi = (N - B) / (B (N - 1))`` (docs/theory.md §0.3). The update is
linear in ``delta = w - mu``, the mean is exactly ``mu`` and the second moment closes:

.. math::

    S = M S M^T + \eta^2\phi\Big[C_* + \frac1N\sum_n K_n S K_n\Big] + \epsilon T\, I,
    \qquad M = I - \eta A,

a linear system in ``vec S``. ``T = 0`` is constant SGD on ``U`` with learning rate ``eps / 2``
(the law of :func:`~bayesdepth.inference.regression.linear_regression_moments`); iid batches with
replacement have ``phi = 1 / B`` instead.
"""

from __future__ import annotations

from typing import Any

import torch

from bayesdepth._validation import check_positive, check_positive_int

from .problem import linear_regression_optimum, minibatch_noise_factor
from .regression import RegressionMoments, multiplicative_operator, stationary_second_moment

__all__ = ["sgld_linear_regression_moments"]

F64 = torch.float64


def sgld_linear_regression_moments(
    data: Any,
    lr: float,
    batch_size: int,
    temperature: float = 1.0,
    replacement: bool = False,
) -> RegressionMoments:
    r"""Exact stationary mean and covariance of SGLD on Bayesian linear regression.

    The potential is ``U(w) = |w|^2 / (2 s_0^2) + (N/B) sum_{b in batch} (x_b^T w - y_b)^2 /
    (2 s^2)``, the sampler ``SGLD(lr, temperature)`` (``lr`` is ``eps``), batches of
    ``batch_size`` distinct indices (``replacement=False``, what this package's potentials draw)
    or iid ones. See the module docstring for the equation it solves.

    Args:
        data: has ``x`` (N, d), ``y`` (N,), ``prior_scale`` ``s_0``, ``noise_scale`` ``s`` (e.g.
            :func:`bayesdepth.data.linear_regression`).
        lr: SGLD's step size ``eps`` > 0 on ``U``.
        batch_size: ``B``, 1 <= B <= N.
        temperature: ``T`` >= 0 (0: constant SGD on ``U`` with learning rate ``eps / 2``).
        replacement: iid batches (``phi = 1/B``) instead of distinct indices.

    Returns:
        :class:`~bayesdepth.inference.regression.RegressionMoments`: ``mean`` (the posterior
        mean), ``covariance`` (the exact law) and ``additive`` (the same law with the noise frozen
        at the optimum, ``K_n = 0``), float64 on the data's device.

    Raises:
        ValueError: for arguments out of range (named), or when the second moment has no
            stationary value (the message gives the spectral radius).
    """
    lr = check_positive("lr", lr)
    batch_size = check_positive_int("batch_size", batch_size)
    temperature = check_positive("temperature", temperature, allow_zero=True)
    optimum = linear_regression_optimum(data)
    x = data.x.to(F64)
    n, d = x.shape
    phi = minibatch_noise_factor(batch_size, n, replacement)
    eta = lr * n / 2
    eye = torch.eye(d, dtype=F64, device=x.device)
    m = eye - eta * optimum.hessian
    source = eta**2 * phi * optimum.noise_cov.reshape(-1) + lr * temperature * eye.reshape(-1)
    deterministic = torch.kron(m, m)
    what = (f"SGLD with lr = {lr:.6g} (eta = lr N / 2 = {eta:.6g}) and "
            f"batch_size = {batch_size}")
    laws = []
    for op in (deterministic + eta**2 * phi * multiplicative_operator(x, data.noise_scale),
               deterministic):
        s = stationary_second_moment(op, source, what).reshape(d, d)
        laws.append((s + s.T) / 2)
    return RegressionMoments(optimum.mean, laws[0], laws[1])
