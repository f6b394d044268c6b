r"""torchsde models of SGD built from a loss over a data set (docs/theory.md §2.2 and §4).

The loss is given per example: ``per_example_loss(theta) -> (M, N)`` for parameters ``theta`` of
shape (M, d) and N data points (prior folded in, docs/theory.md §0), so ``f = mean_n l_n``. Time
is ``t = k eta`` (one SGD step = ``eta`` units).

The gradient noise ``Sigma = Cov g_B = phi C`` (``phi`` the minibatch factor of
:func:`~.problem.minibatch_noise_factor`: ``1/B`` for iid batches) is never square-rooted: with one
Brownian motion per data point the diffusion is ``sqrt(eta phi / N) sum_n (grad f - grad l_n)
dW^n``, whose covariance is exactly ``eta phi C`` (population C), and its product with a noise
increment ``v`` is the single
vector-Jacobian product ``grad_theta sum_n v_n (f - l_n)`` (``g_prod``; torchsde ``noise_type=
"general"``, method ``"euler"``). The SDE objects therefore need an explicit Brownian motion of
size (batch, N); :meth:`_LossSDE.brownian` builds a seeded one and :func:`simulate` does it all.

* :class:`SME`: ``order=1``: ``dX = -grad f dt + sqrt(eta Sigma) dW`` (weak order 1);
  ``order=2``: drift ``-grad(f + (eta/4)|grad f|^2)`` (weak order 2) (Li, Tai, E, JMLR 2019).
* :class:`StochasticModifiedFlow`: SME2 drift and one Brownian motion per data point *shared by
  several initial conditions* carried in the state, so two-point statistics match SGD run on the
  same batches to O(eta^2) (Gess, Kassing, Konarovskyi 2024).
* :class:`UnderdampedSDE`: momentum and weight decay, ``(eta(1+beta)/2) theta'' + (1-beta) theta'
  = -grad L_lambda + sqrt(eta/B) C^{1/2} xi`` (Kunin et al. 2021), state ``(theta, theta')``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torchsde

from bayesdepth._validation import check_positive, check_positive_int, check_tensor

from .problem import check_momentum, minibatch_noise_factor

__all__ = ["SME", "StochasticModifiedFlow", "UnderdampedSDE", "simulate"]

PerExampleLoss = Callable[[torch.Tensor], torch.Tensor]


class _LossSDE(torch.nn.Module):
    sde_type = "ito"
    noise_type = "general"

    def __init__(
        self,
        per_example_loss: PerExampleLoss,
        num_data: int,
        lr: float,
        batch_size: int = 1,
        replacement: bool = True,
    ) -> None:
        super().__init__()
        if not callable(per_example_loss):
            raise TypeError("per_example_loss must be callable: theta (M, d) -> losses (M, N)")
        self.per_example_loss = per_example_loss
        self.num_data = check_positive_int("num_data", num_data, minimum=2)
        self.lr = check_positive("lr", lr)
        self.batch_size = check_positive_int("batch_size", batch_size)
        factor = minibatch_noise_factor(self.batch_size, self.num_data, replacement)
        self.noise_scale = math.sqrt(self.lr * factor / self.num_data)

    @property
    def brownian_size(self) -> int:
        """Number of Brownian motions: one per data point."""
        return self.num_data

    def brownian(
        self, batch: int, t1: float, *, seed: int = 0, like: torch.Tensor | None = None
    ) -> torchsde.BrownianInterval:
        """A seeded Brownian motion of size (batch, N) on [0, t1]."""
        like = torch.zeros((), dtype=torch.float64) if like is None else like
        return torchsde.BrownianInterval(
            t0=0.0, t1=float(t1), size=(batch, self.brownian_size), dtype=like.dtype,
            device=like.device, entropy=int(seed), levy_area_approximation="none",
        )

    def _losses(self, theta: torch.Tensor) -> torch.Tensor:
        out = self.per_example_loss(theta)
        if out.shape != (theta.shape[0], self.num_data):
            raise ValueError(
                f"per_example_loss must return shape ({theta.shape[0]}, {self.num_data}), "
                f"got {tuple(out.shape)}"
            )
        return out

    # torchsde's interface, from one method per model: ``(drift, noise @ v)`` at state ``y``
    # (the noise term is None when ``v`` is None; ``drift_order`` 1 skips the SME2 correction
    # where only the noise is wanted).
    def _drift_and_noise(self, y, v, drift_order):  # pragma: no cover - abstract
        raise NotImplementedError

    def f(self, t, y):
        return self._drift_and_noise(y, None, None)[0]

    def g_prod(self, t, y, v):
        return self._drift_and_noise(y, v, 1)[1]

    def f_and_g_prod(self, t, y, v):
        return self._drift_and_noise(y, v, None)

    def _grads(self, theta, v, order):
        """``grad f`` (+ ``(eta/4) grad|grad f|^2`` if order 2) and ``g_prod(v)`` at ``theta``."""
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            losses = self._losses(th)
            f = losses.mean(-1)
            noise = None
            if v is not None:
                (noise,) = torch.autograd.grad(
                    ((f.unsqueeze(-1) - losses) * v).sum(), th, retain_graph=True
                )
                noise = self.noise_scale * noise
            (g,) = torch.autograd.grad(f.sum(), th, create_graph=order == 2)
            if order == 2:
                (corr,) = torch.autograd.grad((g * g).sum(), th)
                g = g.detach() + self.lr / 4 * corr
        return g.detach(), noise


class SME(_LossSDE):
    r"""Stochastic modified equation of SGD, order 1 or 2 (Li, Tai, E 2017/2019).

    ``dX = -grad(f + [order == 2] (eta/4)|grad f|^2) dt + sqrt(eta phi / N) sum_n (grad f -
    grad l_n) dW^n`` (docs/theory.md §4.1); the state is (batch, d), one independent path per row.

    Args:
        per_example_loss: ``theta (M, d) -> (M, N)`` per-example losses.
        num_data: N.
        lr: learning rate ``eta``.
        batch_size: B.
        order: 1 or 2.
        replacement: iid batches (default) or batches without replacement (sets ``phi``).
    """

    def __init__(
        self,
        per_example_loss: PerExampleLoss,
        num_data: int,
        lr: float,
        batch_size: int = 1,
        order: int = 1,
        replacement: bool = True,
    ) -> None:
        super().__init__(per_example_loss, num_data, lr, batch_size, replacement)
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order!r}")
        self.order = order

    def _drift_and_noise(self, y, v, drift_order):
        g, noise = self._grads(y, v, drift_order or self.order)
        return -g, noise


class StochasticModifiedFlow(_LossSDE):
    r"""Stochastic modified flow (Gess, Kassing, Konarovskyi): SME2 drift, shared per-point noise.

    The state (batch, P d) carries ``num_points = P`` initial conditions per row; all of them are
    driven by the *same* N Brownian motions, so ``E[phi(X_t(x), X_t(y))]`` approximates SGD run
    from x and y on the same batches to O(eta^2):
    ``dX(x) = -grad(f + (eta/4)|grad f|^2)(X(x)) dt
    + sqrt(eta phi / N) sum_n (grad f - grad l_n)(X(x)) dW^n`` (docs/theory.md §4.3).
    """

    def __init__(
        self,
        per_example_loss: PerExampleLoss,
        num_data: int,
        lr: float,
        batch_size: int = 1,
        num_points: int = 2,
        replacement: bool = True,
    ) -> None:
        super().__init__(per_example_loss, num_data, lr, batch_size, replacement)
        self.num_points = check_positive_int("num_points", num_points)

    def _split(self, y):
        if y.shape[-1] % self.num_points:
            raise ValueError(
                f"state size {y.shape[-1]} is not a multiple of num_points = {self.num_points}"
            )
        return y.reshape(y.shape[0] * self.num_points, -1)

    def _drift_and_noise(self, y, v, drift_order):
        vv = None if v is None else v.repeat_interleave(self.num_points, dim=0)
        g, noise = self._grads(self._split(y), vv, drift_order or 2)
        return -g.reshape(y.shape), None if noise is None else noise.reshape(y.shape)


class UnderdampedSDE(_LossSDE):
    r"""Kunin et al.'s underdamped model of SGD with momentum and weight decay.

    State ``(theta, u)`` of shape (batch, 2d), ``u = theta'``, time ``t = k eta``; mass
    ``m = eta (1 + beta) / 2``, friction ``gamma = 1 - beta``:
    ``d theta = u dt``, ``du = [-(gamma u + grad f + lambda theta) dt + sqrt(eta phi / N) sum_n
    (grad f - grad l_n) dW^n] / m`` (docs/theory.md §4.4). Its stationary law is
    :func:`bayesdepth.inference.momentum.underdamped_covariance`.
    """

    def __init__(
        self,
        per_example_loss: PerExampleLoss,
        num_data: int,
        lr: float,
        batch_size: int = 1,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        replacement: bool = True,
    ) -> None:
        super().__init__(per_example_loss, num_data, lr, batch_size, replacement)
        self.momentum = check_momentum(momentum)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        self.mass = self.lr * (1 + self.momentum) / 2
        self.friction = 1 - self.momentum

    def _drift_and_noise(self, y, v, drift_order):
        d = y.shape[-1] // 2
        theta, u = y[..., :d], y[..., d:]
        g, noise = self._grads(theta, v, 1)
        du = -(self.friction * u + g + self.weight_decay * theta) / self.mass
        drift = torch.cat([u, du], -1)
        if noise is not None:
            noise = torch.cat([torch.zeros_like(theta), noise / self.mass], -1)
        return drift, noise


def simulate(
    sde: _LossSDE,
    y0: torch.Tensor,
    ts: torch.Tensor | list[float],
    dt: float,
    *,
    seed: int = 0,
) -> torch.Tensor:
    """Euler–Maruyama solution of one of these SDEs at times ``ts`` (starting at ``ts[0] = 0``).

    Builds a seeded ``torchsde.BrownianInterval`` of size (batch, N) and calls
    ``torchsde.sdeint(..., method="euler")``. Returns (len(ts), batch, state).
    """
    check_tensor("y0", y0, ndim=2, floating=True)
    dt = check_positive("dt", dt)
    ts = torch.as_tensor(ts, dtype=y0.dtype, device=y0.device)
    if float(ts[0]) != 0.0:
        raise ValueError(f"ts must start at 0, got {float(ts[0])}")
    bm = sde.brownian(y0.shape[0], float(ts[-1]), seed=seed, like=y0)
    with torch.no_grad():
        return torchsde.sdeint(sde, y0, ts, bm=bm, method="euler", dt=dt)
