r"""Effective dynamics of summary statistics of online SGD in high dimension.

Ben Arous, Gheissari, Jagannath, "High-dimensional limit theorems for SGD: effective dynamics and
critical scaling", NeurIPS 2022. Online SGD in dimension ``N`` with a fresh sample per step,
``x_{k+1} = x_k - delta g_k``, ``E g = grad Phi``, and a few summary statistics ``u(x)`` in
``R^k``: with the step ``delta = c / N`` and time ``t = k / N``, a second-order expansion of
``u(x - delta g)`` gives the drift and the diffusion of ``u`` per unit time,

.. math::

    b(u) = -c\,\nabla u\cdot\nabla\Phi
           + \frac{c^2}{2N}\,E\langle\nabla^2 u, g g^T\rangle, \qquad
    \Sigma(u) = \frac{c^2}{N}\,\nabla u\,\operatorname{Cov}(g)\,\nabla u^T,

evaluated at any point ``x`` with summary ``u`` (docs/theory.md §14.5). Because ``|g|^2`` grows like
``N``, the correction ``(delta^2 / 2) E<grad^2 u, g g^T>`` stays of order one at the critical
scaling ``delta = c / N`` and changes the fixed points (gradient flow, which drops it, is wrong
there), while ``Sigma`` is ``O(1/N)``: ``u`` follows the ODE ``du = b(u) dt`` as ``N -> inf`` and,
near a stable fixed point, fluctuates like an Ornstein–Uhlenbeck process of size ``N^{-1/2}``.

:class:`EffectiveDynamics` holds ``b`` and ``Sigma`` (from closed forms, or built by
:func:`effective_dynamics` with ``torch.func`` from the gradient's moments) and integrates them:
the ODE with torchdiffeq, the SDE ``du = b dt + Sigma^{1/2} dW`` with torchsde. The exact instances
(online linear regression, the spiked-covariance Oja rule) are in :mod:`.online_sgd`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.optimize
import torch
import torchdiffeq
import torchsde

from bayesdepth._validation import check_positive, check_positive_int, check_tensor

__all__ = ["EffectiveDynamics", "effective_dynamics"]

Fn = Callable[[torch.Tensor], torch.Tensor]


def _psd_root(m: torch.Tensor) -> torch.Tensor:
    """Symmetric square roots of a batch (..., k, k) of positive semi-definite matrices."""
    w, u = torch.linalg.eigh((m + m.mT) / 2)
    return (u * w.clamp_min(0).sqrt().unsqueeze(-2)) @ u.mT


class _SDE(torch.nn.Module):
    """torchsde's view of ``du = b(u) dt + Sigma(u)^{1/2} dW`` (Ito, general noise)."""

    noise_type = "general"
    sde_type = "ito"

    def __init__(self, dynamics: EffectiveDynamics) -> None:
        super().__init__()
        self.dynamics = dynamics

    def f(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.dynamics.drift(y)

    def g(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _psd_root(self.dynamics.diffusion(y))


@dataclass(frozen=True)
class EffectiveDynamics:
    r"""Drift ``b(u)`` and diffusion ``Sigma(u)`` of ``k`` summary statistics in time ``t = k / N``.

    Attributes:
        drift: maps (..., k) to (..., k): ``b(u)`` (docs/theory.md §14.5).
        diffusion: maps (..., k) to (..., k, k): ``Sigma(u)``, the covariance per unit time of
            ``du`` (of order ``1/N``); None for an ODE-only description.
        dim: ``N``, the dimension the coefficients belong to (None for an ``N -> inf`` limit
            without fluctuations).
    """

    drift: Fn
    diffusion: Fn | None = None
    dim: int | None = None

    def solve(
        self,
        u0: Any,
        ts: Any,
        *,
        method: str = "dopri5",
        rtol: float = 1e-10,
        atol: float = 1e-12,
    ) -> torch.Tensor:
        """The ODE ``du/dt = b(u)`` from ``u0`` (k,), at the times ``ts`` (torchdiffeq.odeint).

        Returns (len(ts), k) in float64.
        """
        u0, ts = self._start(u0), self._times(ts)
        return torchdiffeq.odeint(lambda t, u: self.drift(u), u0, ts.to(u0.device),
                                  method=method, rtol=rtol, atol=atol)

    def sample(
        self,
        u0: Any,
        ts: Any,
        *,
        num_paths: int,
        dt: float,
        seed: int = 0,
    ) -> torch.Tensor:
        r"""Paths of the SDE ``du = b(u) dt + Sigma(u)^{1/2} dW`` (torchsde, Euler–Maruyama).

        Args:
            u0: (k,) start of every path.
            ts: increasing times where the paths are returned.
            num_paths: independent paths (simulated as one batch).
            dt: the Euler step.
            seed: entropy of the Brownian motion (same seed, same paths).

        Returns:
            (len(ts), num_paths, k) float64.
        """
        if self.diffusion is None:
            raise ValueError("sample needs a diffusion; this EffectiveDynamics has diffusion=None")
        u0 = self._start(u0)
        ts = self._times(ts).to(u0.device)
        num_paths = check_positive_int("num_paths", num_paths)
        dt = check_positive("dt", dt)
        y0 = u0.expand(num_paths, -1).clone()
        k = y0.shape[-1]
        bm = torchsde.BrownianInterval(
            t0=float(ts[0]), t1=float(ts[-1]), size=(num_paths, k), dtype=y0.dtype,
            device=y0.device, entropy=int(seed),
        )
        with torch.no_grad():
            return torchsde.sdeint(_SDE(self), y0, ts, bm=bm, method="euler", dt=dt)

    def fixed_point(self, guess: Any, *, tol: float | None = None) -> torch.Tensor:
        """A root of ``b`` near ``guess`` (``scipy.optimize.root``, its default tolerance).

        Raises:
            ValueError: if the solver reports no convergence.
        """
        u = self._start(guess, "guess")

        def f(v: np.ndarray) -> np.ndarray:
            x = torch.as_tensor(v, dtype=u.dtype, device=u.device)
            return self.drift(x).detach().cpu().numpy()

        out = scipy.optimize.root(f, u.detach().cpu().numpy(), tol=tol)
        if not out.success:
            raise ValueError(f"no fixed point found from {u.tolist()}: {out.message}")
        return torch.as_tensor(out.x, dtype=u.dtype, device=u.device)

    def jacobian(self, u: Any) -> torch.Tensor:
        """``db/du`` at ``u`` (k, k), by ``torch.func.jacrev``; its eigenvalues give stability."""
        return torch.func.jacrev(self.drift)(self._start(u, "u"))

    def stationary_covariance(self, u_star: Any) -> torch.Tensor:
        r"""Covariance of the Ornstein–Uhlenbeck fluctuations of ``u`` around a fixed point.

        Linearising at ``u*``: ``d(u - u*) = J (u - u*) dt + Sigma(u*)^{1/2} dW``, whose stationary
        covariance solves ``J S + S J^T + Sigma(u*) = 0`` (``scipy.linalg``;
        docs/theory.md §14.5). Of order ``1/N``.

        Raises:
            ValueError: if ``u*`` is not a fixed point, or is unstable (an eigenvalue of ``J`` with
                real part >= 0: fluctuations grow and ``u`` leaves it along the ODE).
        """
        if self.diffusion is None:
            raise ValueError("stationary_covariance needs a diffusion; got diffusion=None")
        u = self._start(u_star, "u_star")
        b = self.drift(u)
        if float(b.abs().max()) > 1e-8 * max(1.0, float(u.abs().max())):
            raise ValueError(f"u_star = {u.tolist()} is not a fixed point: drift {b.tolist()}")
        j = self.jacobian(u).detach().cpu().numpy()
        growth = float(np.linalg.eigvals(j).real.max())
        if growth >= 0:
            raise ValueError(
                f"the fixed point {u.tolist()} is unstable (largest growth rate {growth:.4g} "
                ">= 0): fluctuations grow and the statistic leaves it ballistically, along the ODE"
            )
        q = self.diffusion(u).detach().cpu().numpy()
        s = scipy.linalg.solve_continuous_lyapunov(j, -q)
        return torch.as_tensor((s + s.T) / 2, dtype=u.dtype, device=u.device)

    @staticmethod
    def _start(u: Any, name: str = "u0") -> torch.Tensor:
        u = torch.as_tensor(u, dtype=torch.float64) if not isinstance(u, torch.Tensor) else u
        return check_tensor(name, u.reshape(-1) if u.dim() == 0 else u, ndim=1, floating=True)

    @staticmethod
    def _times(ts: Any) -> torch.Tensor:
        t = torch.as_tensor(ts, dtype=torch.float64).reshape(-1)
        if t.numel() < 2 or not bool((t[1:] > t[:-1]).all()):
            raise ValueError(f"ts must hold at least two increasing times, got {t.tolist()}")
        return t


def effective_dynamics(
    summary: Fn,
    grad_moments: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    lift: Fn,
    *,
    dim: int,
    step_scale: float,
    correction: bool = True,
) -> EffectiveDynamics:
    r"""The effective dynamics of ``u(x)`` under online SGD with step ``delta = step_scale / dim``.

    At ``x = lift(u)``: ``b(u) = -c J m_1 + (c^2 / 2N) <H, m_2>`` and
    ``Sigma(u) = (c^2 / N) J (m_2 - m_1 m_1^T) J^T`` with ``J = du/dx``, ``H = d^2u/dx^2``
    (``torch.func.jacrev``) and the gradient's moments ``m_1 = E g``, ``m_2 = E g g^T``
    (docs/theory.md §14.5). ``u`` must be a closed description (the moments' contractions
    depend on ``x`` only through ``u``); the result is the second-order drift at dimension ``N``,
    which tends to the limit of Ben Arous et al. with an ``O(1/N)`` error (exactly ``N`` times the
    expected one-step change when ``u`` is quadratic and ``g`` affine in ``x``).

    Args:
        summary: ``u(x)``, (N,) -> (k,).
        grad_moments: ``x -> (E g, E g g^T)``, (N,) and (N, N), at ``x``.
        lift: ``u -> x``, a point of dimension N with summary ``u``.
        dim: ``N``.
        step_scale: ``c > 0``.
        correction: keep the term ``(c^2 / 2N) <H, m_2>``; False gives gradient flow,
            ``du/dt = -c J grad Phi``.

    Each evaluation costs one dense (k, N, N) Hessian: use closed forms for many SDE paths.
    """
    n = check_positive_int("dim", dim)
    c = check_positive("step_scale", step_scale)
    jac = torch.func.jacrev(summary)
    hess = torch.func.jacrev(jac)

    def at(u: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = lift(u)
        if x.shape != (n,):
            raise ValueError(f"lift(u) must have shape ({n},), got {tuple(x.shape)}")
        m1, m2 = grad_moments(x)
        return x, m1, m2, jac(x)

    def one_drift(u: torch.Tensor) -> torch.Tensor:
        x, m1, m2, j = at(u)
        out = -c * (j @ m1)
        if correction:
            out = out + c * c / (2 * n) * torch.einsum("kij,ij->k", hess(x), m2)
        return out

    def one_diffusion(u: torch.Tensor) -> torch.Tensor:
        _, m1, m2, j = at(u)
        return c * c / n * j @ (m2 - torch.outer(m1, m1)) @ j.T

    return EffectiveDynamics(_batched(one_drift), _batched(one_diffusion), n)


def _batched(fn: Fn) -> Fn:
    """Apply a (k,) -> (...) function to (..., k), one row at a time."""

    def apply(u: torch.Tensor) -> torch.Tensor:
        if u.dim() == 1:
            return fn(u)
        flat = u.reshape(-1, u.shape[-1])
        out = torch.stack([fn(row) for row in flat])
        return out.reshape(*u.shape[:-1], *out.shape[1:])

    return apply
