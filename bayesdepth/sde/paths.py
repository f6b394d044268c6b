"""Pyro distributions over a whole weight path on a fixed time grid.

On a grid ``t_0 < t_1 < ... < t_K`` with steps ``dt_k = t_{k+1} - t_k``, the Euler–Maruyama
discretisation of ``dw = f(t, w) dt + sigma dB`` is a Gaussian Markov chain

    w_{k+1} ~ N(w_k + f(t_k, w_k) dt_k, sigma^2 dt_k I),                               (1)

so a path ``(w_1, ..., w_K)`` started at ``w_0`` has the exact log density

    log p(path) = sum_k log N(w_{k+1}; w_k + f(t_k, w_k) dt_k, sigma^2 dt_k I).        (2)

:class:`EulerPath` is that chain as a Pyro distribution: ``rsample`` draws the standard normal
Brownian increments ``eps`` of shape ``(K, batch, d)`` up front (from the caller's generator) and
hands them to a *simulator*, a deterministic function of its noise that returns the chain (1);
``log_prob`` evaluates (2). With the posterior drift ``f_q = f_p + g`` and the prior drift ``f_p``
at the same sigma, ``log q(path) - log p(path)`` is the discrete Girsanov sum

    sum_k [ 1/2 |u_k|^2 dt_k + u_k . (dB_k) ],   u_k = g(t_k, w_k) / sigma,             (3)

whose expectation under q is ``E_q sum_k 1/2 |u_k|^2 dt_k`` (what torchsde's ``logqp=True``
integrates; :func:`kl_only` computes it).

**Simulators** (docs/theory.md §8.4, §8.10). The default, :func:`euler_chain`, is the recursion
(1) in plain torch: the noise terms ``sigma sqrt(dt_k) eps_k`` scaled in one batched operation,
then one drift call and two additions per step. :func:`sdeint_euler` computes the same chain
with ``torchsde.sdeint`` (Ito, diagonal noise, method ``"euler"``). Its fixed-step loop advances
``t <- min(t + dt, t_K)`` and interpolates at requested times, so on a real-valued grid rounding
could add a tiny step. The path is therefore simulated in *step time* ``s in {0, 1, ..., K}``
(integers, exact in floating point) with ``dt = 1`` and the time-changed SDE

    dw = f(t_k, w) dt_k ds + sigma sqrt(dt_k) dW_s,   k = floor(s),

whose unit Euler step is exactly (1) with ``sqrt(dt_k) * (W_{k+1} - W_k) ~ N(0, dt_k)``. The
increments are handed to torchsde as its Brownian motion (:class:`IncrementBrownian`, a
``torchsde.BaseBrownian`` over the integer step times), only the end point is requested, and the
states are recorded as they are passed to the drift. ``tests/test_sde_paths.py`` checks both
simulators on a uniform and a non-uniform grid (each value equals the previous one plus the Euler
step with its increment, to 1e-12, with exactly one drift evaluation per step) and that the two
agree bit for bit. The plain chain is the default because torchsde's per-step Python work (its
loop, time arithmetic and one more multiply-add) made the digits SVI step 6-14% slower than a
hand-written loop, and none of its other features (adaptive steps, higher-order schemes,
Brownian trees) keeps the density (2) exact (docs/sdebnn.md has the measured table).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch
import torchsde
from pyro.distributions import TorchDistribution, constraints
from torch import nn

from .._validation import check_positive, check_tensor

__all__ = ["EulerPath", "IncrementBrownian", "check_grid", "euler_chain", "kl_only", "sdeint_euler"]

_EMPTY = torch.Size()
#: ``simulate(drift, sigma, grid, w0 (batch, d), eps (K, batch, d)) -> (K + 1, batch, d)``
Simulator = Callable[[nn.Module, float, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def check_grid(grid: torch.Tensor) -> torch.Tensor:
    """Raise unless ``grid`` is a 1-D floating tensor of >= 2 strictly increasing finite times."""
    check_tensor("grid", grid, ndim=1, floating=True)
    if grid.numel() < 2:
        raise ValueError(f"grid must hold at least 2 times (1 step), got {grid.numel()}")
    if not bool(torch.isfinite(grid).all()):
        raise ValueError("grid must be finite")
    if not bool((grid[1:] > grid[:-1]).all()):
        raise ValueError(f"grid must be strictly increasing, got {grid.tolist()[:8]}...")
    return grid


def _checked_drift(drift: nn.Module, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    out = drift(t, w)
    if not isinstance(out, torch.Tensor) or out.shape != w.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"drift must return a tensor shaped like w {tuple(w.shape)}, got {shape} "
            f"from {type(drift).__name__}"
        )
    return out


def euler_chain(
    drift: nn.Module, sigma: float, grid: torch.Tensor, w0: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """Simulate chain (1) in plain torch (the default); returns ``(K + 1, batch, d)`` incl. ``w0``.

    ``w_{k+1} = (w_k + f(t_k, w_k) dt_k) + sigma sqrt(dt_k) eps_k``, the noise terms scaled in one
    operation (docs/theory.md §8.10). In this order of operations the values are bit for bit
    those of :func:`sdeint_euler`.

    Args:
        drift: ``f(t, w)``; sigma: the diffusion; grid: ``t_0..t_K``; w0: ``(batch, d)``;
        eps: the standardised Brownian increments ``(K, batch, d)``.
    """
    dts = grid.diff()
    noise = (sigma * dts.sqrt()).view(-1, 1, 1) * eps
    states, w = [w0], w0
    for t, dt, dw in zip(grid.unbind(), dts.unbind(), noise.unbind(), strict=False):
        w = w + _checked_drift(drift, t, w) * dt + dw
        states.append(w)
    return torch.stack(states)


class IncrementBrownian(torchsde.BaseBrownian):
    """A Brownian motion on the integer times ``0..K`` given by its increments.

    ``bm(k, k + 1) = increments[k]`` (shape ``(batch, d)``); torchsde's Euler solver in step
    time asks for exactly these. Other queries (other intervals, Levy areas) are refused.
    """

    __slots__ = ("increments",)

    def __init__(self, increments: torch.Tensor) -> None:
        self.increments = increments

    def __call__(self, ta, tb=None, return_U=False, return_A=False):
        k = int(ta)
        if tb is None or return_U or return_A or float(tb) != k + 1 or float(ta) != k:
            raise ValueError(f"IncrementBrownian answers unit steps (k, k + 1), got {ta}, {tb}")
        return self.increments[k]

    def __repr__(self) -> str:
        return f"IncrementBrownian(steps={self.increments.shape[0]})"

    dtype = property(lambda self: self.increments.dtype)
    device = property(lambda self: self.increments.device)
    shape = property(lambda self: self.increments.shape[1:])
    levy_area_approximation = property(lambda self: "none")


class _StepTimeSDE(nn.Module):
    """``dw = f(t_k, w) dt_k ds + sigma sqrt(dt_k) dW_s`` in step time ``s``, recording the
    states ``w_0, ..., w_{K-1}`` at which torchsde evaluates it (see the module doc)."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, drift, sigma, grid):
        super().__init__()
        self.drift = drift
        self.grid = grid
        self.dt = grid.diff()
        self.scale = sigma * self.dt.sqrt()
        self.states: list[torch.Tensor] = []
        self._first = None

    def f_and_g(self, s, w):
        k = min(int(s), self.dt.numel() - 1)
        # torchsde calls f_and_g(ts[0], y0) once for its shape checks and again, with the same
        # tensor, in the first step: reuse that evaluation (one drift call per step).
        if self._first is not None and self._first[0] is w:
            out, self._first = self._first[1], None
            return out
        out = (_checked_drift(self.drift, self.grid[k], w) * self.dt[k],
               self.scale[k].expand_as(w))
        if k == 0:
            self._first = (w, out)
        self.states.append(w)
        return out


def sdeint_euler(
    drift: nn.Module, sigma: float, grid: torch.Tensor, w0: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """Simulate chain (1) with ``torchsde.sdeint`` (step time); ``(K + 1, batch, d)`` incl. ``w0``.

    The same values as :func:`euler_chain`, bit for bit, but slower (see the module doc): the
    cross-check through torchsde (``simulator=sdeint_euler``).

    Args:
        drift: ``f(t, w)``; sigma: the diffusion; grid: ``t_0..t_K``; w0: ``(batch, d)``;
        eps: the standardised Brownian increments ``(K, batch, d)``: ``w_{k+1} = w_k +
            f(t_k, w_k) dt_k + sigma sqrt(dt_k) eps_k``.
    """
    num = grid.numel() - 1
    sde = _StepTimeSDE(drift, sigma, grid)
    # The times live on the CPU: torchsde compares them every step (no device synchronisation).
    ts = torch.tensor([0.0, float(num)], dtype=w0.dtype)
    end = torchsde.sdeint(sde, w0, ts, bm=IncrementBrownian(eps), method="euler", dt=1.0,
                          adaptive=False)[-1]
    return torch.stack([*sde.states, end])


class EulerPath(TorchDistribution):
    """The Euler–Maruyama chain (1) of ``dw = drift(t, w) dt + sigma dB`` as a distribution.

    The value is the path after the start, ``(w(t_1), ..., w(t_K))``: event shape ``(K, d)``;
    the start ``w0`` (shape ``batch_shape + (d,)``) is a parameter. ``rsample`` is
    reparameterised (gradients flow to ``w0`` and the drift's parameters through the chain);
    ``log_prob`` is the exact density (2), differentiable in the value and the drift.

    Args:
        drift: an ``nn.Module`` ``f(t, w)`` (see :mod:`bayesdepth.sde.processes`).
        sigma: diffusion coefficient, > 0.
        grid: 1-D tensor of strictly increasing times ``t_0..t_K`` (K >= 1).
        w0: start of the path, shape ``batch_shape + (d,)``.
        generator: a CPU ``torch.Generator`` that seeds each path's Brownian increments
            (default: torch's global generator, which ``pyro.set_rng_seed`` seeds); the
            increments themselves are drawn on ``w0``'s device.
        simulate: ``simulate(drift, sigma, grid, w0_2d, eps) -> (K+1, batch, d)`` with ``eps``
            the standard normal increments ``(K, batch, d)``; default :func:`euler_chain`
            (:func:`sdeint_euler` runs torchsde). Any replacement must produce chain (1) from
            these increments.
    """

    arg_constraints: ClassVar[dict] = {}
    support = constraints.independent(constraints.real, 2)
    has_rsample = True

    def __init__(
        self,
        drift: nn.Module,
        sigma: float,
        grid: torch.Tensor,
        w0: torch.Tensor,
        generator: torch.Generator | None = None,
        simulate: Simulator | None = None,
        validate_args: bool | None = None,
    ) -> None:
        if not isinstance(drift, nn.Module) and not callable(drift):
            raise TypeError(f"drift must be an nn.Module f(t, w), got {type(drift).__name__}")
        self.drift = drift
        self.sigma = check_positive("sigma", sigma)
        check_tensor("w0", w0, floating=True)
        self.grid = check_grid(grid).to(device=w0.device, dtype=w0.dtype)
        if w0.dim() < 1:
            raise ValueError(f"w0 must have shape batch_shape + (d,), got {tuple(w0.shape)}")
        self.w0 = w0
        self.generator = generator
        self.simulate = euler_chain if simulate is None else simulate
        self._dt = self.grid.diff().unsqueeze(-1)  # (K, 1)
        event_shape = (self.grid.numel() - 1, w0.shape[-1])
        super().__init__(w0.shape[:-1], torch.Size(event_shape), validate_args=validate_args)

    @property
    def num_steps(self) -> int:
        return self.grid.numel() - 1

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return EulerPath(
            self.drift, self.sigma, self.grid,
            self.w0.expand(batch_shape + self.w0.shape[-1:]),
            generator=self.generator, simulate=self.simulate,
        )

    def increments(self, batch: int) -> torch.Tensor:
        """Standard normal increments ``(K, batch, d)`` on ``w0``'s device, seeded from
        ``generator`` (one draw of a 62-bit seed from it per path batch)."""
        seed = int(torch.randint(0, 2**62, (), generator=self.generator))
        device = self.w0.device
        gen = torch.Generator(device=device).manual_seed(seed)
        return torch.randn((self.num_steps, batch, self.w0.shape[-1]), generator=gen,
                           dtype=self.w0.dtype, device=device)

    def rsample(self, sample_shape: torch.Size = _EMPTY) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        d = self.w0.shape[-1]
        w0 = self.w0.expand((*shape, d)).reshape(-1, d)
        ys = self.simulate(self.drift, self.sigma, self.grid, w0, self.increments(w0.shape[0]))
        return ys[1:].transpose(0, 1).reshape(shape + self.event_shape)

    def with_start(self, value: torch.Tensor) -> torch.Tensor:
        """The full path ``(w_0, ..., w_K)``: ``value`` with the start prepended.

        Shape ``(..., K+1, d)``.
        """
        lead = torch.broadcast_shapes(value.shape[:-2], self.batch_shape)
        w0 = self.w0.expand(lead + self.w0.shape[-1:]).unsqueeze(-2)
        return torch.cat([w0, value.expand(lead + self.event_shape)], dim=-2)

    def _previous(self, value: torch.Tensor) -> torch.Tensor:
        return self.with_start(value)[..., :-1, :]

    def kl_only(self, prior: EulerPath, value: torch.Tensor) -> torch.Tensor:
        """The KL-only estimate along ``value`` against ``prior`` (see :func:`kl_only`)."""
        return kl_only(self, prior, value)

    def mean_increment(self, value: torch.Tensor) -> torch.Tensor:
        """``f(t_k, w_k) dt_k`` for k = 0..K-1 at the points of ``value``."""
        prev = self._previous(value)
        return _checked_drift(self.drift, self.grid[:-1].unsqueeze(-1), prev) * self._dt

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        prev = self._previous(value)
        mean = prev + _checked_drift(self.drift, self.grid[:-1].unsqueeze(-1), prev) * self._dt
        var = self.sigma**2 * self._dt
        sq = ((value - mean) ** 2 / var).sum((-1, -2))
        d = value.shape[-1]
        const = d * (var.log().sum() + self.num_steps * math.log(2 * math.pi))
        return -0.5 * (sq + const)


def kl_only(posterior: EulerPath, prior: EulerPath, value: torch.Tensor) -> torch.Tensor:
    """The KL-only estimator ``sum_k 1/2 |u_k|^2 dt_k``, ``u_k = (f_q - f_p)(t_k, w_k) / sigma``.

    Evaluated along ``value`` (a path from ``posterior``); its expectation under q is
    ``KL(q || p)`` of the two chains, and it equals what ``torchsde.sdeint(..., logqp=True)``
    accumulates on the same path. Shape: the path's batch shape.
    """
    if abs(posterior.sigma - prior.sigma) > 1e-12 * prior.sigma:
        raise ValueError(
            f"posterior and prior must share sigma, got {posterior.sigma} and {prior.sigma}"
        )
    prev = posterior._previous(value)
    t = posterior.grid[:-1].unsqueeze(-1)
    u = (_checked_drift(posterior.drift, t, prev) - _checked_drift(prior.drift, t, prev))
    u = u / posterior.sigma
    return 0.5 * ((u**2) * posterior._dt).sum((-1, -2))
