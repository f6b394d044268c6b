r"""Two exact instances of the high-dimensional limit of online SGD (docs/theory.md §14.5).

Ben Arous, Gheissari, Jagannath (NeurIPS 2022), with step ``delta = c / N`` and time ``t = k / N``:

- :class:`OnlineRegression`: least squares in ``N`` dimensions, a fresh ``a ~ N(0, I)`` and
  ``y = a . x* + sigma eps`` per step, summary ``R = |x - x*|^2``. Exactly
  ``E R_{k+1} = (1 - 2 delta + delta^2 (N + 2)) E R_k + delta^2 N sigma^2``; the limit is
  ``dR/dt = -(2c - c^2) R + c^2 sigma^2`` (fixed point ``c sigma^2 / (2 - c)``, divergence for
  ``c > 2``), where gradient flow predicts ``R_0 e^{-2ct}``.
- :class:`SpikedCovariance`: the online Oja rule ``x <- (x + delta (z . x) z) / |...|`` with
  ``z ~ N(0, I + lambda v v^T)``, summary ``m = x . v``; the limit is
  ``dm/dt = c [lambda m (1 - m^2) - (c/2) m (1 + lambda m^2)]``, fixed point
  ``m*^2 = (2 lambda - c) / (lambda (2 + c))`` and no recovery for ``c >= 2 lambda``.

Each gives its ingredients for :func:`.high_dim.effective_dynamics` (``summary``, ``grad_moments``,
``lift``), its closed-form limit as an :class:`.high_dim.EffectiveDynamics` (:meth:`limit`) and an
exact vectorised simulation (:meth:`simulate`, runs as rows of one tensor).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from bayesdepth._validation import check_positive, check_positive_int

from .high_dim import EffectiveDynamics, effective_dynamics

__all__ = ["OnlineRegression", "SpikedCovariance"]

F64 = torch.float64


def _unit(dim: int, i: int) -> torch.Tensor:
    e = torch.zeros(dim, dtype=F64)
    e[i] = 1.0
    return e


class _OnlineProblem:
    """Shared parts: the dimension, the autograd effective dynamics, the simulation loop."""

    dim: int

    def summary(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def grad_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError  # pragma: no cover - abstract

    def lift(self, u: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def dynamics(self, c: float, correction: bool = True) -> EffectiveDynamics:
        """:func:`.high_dim.effective_dynamics` of this problem at its dimension (autograd)."""
        return effective_dynamics(self.summary, self.grad_moments, self.lift, dim=self.dim,
                                  step_scale=c, correction=correction)

    def _run(
        self,
        start: Callable[[torch.Tensor], torch.Tensor],
        update: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
        observe: Callable[[torch.Tensor], torch.Tensor],
        *,
        steps: int,
        num_runs: int,
        seed: int,
        record_every: int,
        device: torch.device | str | None,
    ) -> torch.Tensor:
        """Runs as rows of one tensor: ``observe`` at step 0 and every ``record_every`` steps.

        ``start`` maps a random (num_runs, N) direction of unit norm to the initial state.
        """
        steps = check_positive_int("steps", steps)
        every = check_positive_int("record_every", record_every)
        runs = check_positive_int("num_runs", num_runs)
        gen = torch.Generator(device=device or "cpu").manual_seed(int(seed))
        x = torch.randn(runs, self.dim, generator=gen, dtype=F64, device=device)
        x = start(x / x.norm(dim=1, keepdim=True))
        out = [observe(x)]
        for k in range(1, steps + 1):
            x = update(x, gen)
            if k % every == 0:
                out.append(observe(x))
        return torch.stack(out)


class OnlineRegression(_OnlineProblem):
    r"""Online least squares ``l(x; a, y) = (a . x - y)^2 / 2``, ``y = a . x* + sigma eps``.

    ``x* = 0``; the summary is ``R = |x|^2``, the gradient ``g = a (a . x - sigma eps)`` has
    ``E g = x`` and ``E g g^T = (R + sigma^2) I + 2 x x^T`` (Gaussian fourth moments).

    Args:
        dim: ``N``.
        noise_var: ``sigma^2 >= 0``.
    """

    def __init__(self, dim: int, noise_var: float) -> None:
        self.dim = check_positive_int("dim", dim)
        self.noise_var = check_positive("noise_var", noise_var, allow_zero=True)

    def summary(self, x: torch.Tensor) -> torch.Tensor:
        return (x * x).sum(-1, keepdim=True)

    def grad_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        return x, ((x * x).sum() + self.noise_var) * eye + 2 * torch.outer(x, x)

    def lift(self, u: torch.Tensor) -> torch.Tensor:
        return u[0].clamp_min(0).sqrt() * _unit(self.dim, 0).to(u.device)

    def limit(self, c: float, *, fluctuations: bool = True) -> EffectiveDynamics:
        r"""``dR/dt = -(2c - c^2) R + c^2 sigma^2``; diffusion ``(c^2/N) 4 R (2R + sigma^2)``."""
        c = check_positive("c", c)
        s2 = self.noise_var

        def drift(u: torch.Tensor) -> torch.Tensor:
            return -(2 * c - c * c) * u + c * c * s2

        def diffusion(u: torch.Tensor) -> torch.Tensor:
            r = u[..., :1]
            return (c * c / self.dim * 4 * r * (2 * r + s2)).unsqueeze(-1)

        return EffectiveDynamics(drift, diffusion if fluctuations else None,
                                 self.dim if fluctuations else None)

    def limit_fixed_point(self, c: float) -> float:
        """``R* = c sigma^2 / (2 - c)`` of the limit; raises for ``c >= 2`` (R diverges)."""
        c = check_positive("c", c)
        if c >= 2:
            raise ValueError(
                f"c = {c:.4g} >= 2: dR/dt = (c^2 - 2c) R + c^2 sigma^2 grows without bound, there "
                "is no fixed point (online SGD diverges at this step size)"
            )
        return c * self.noise_var / (2 - c)

    def exact_risk(self, c: float, r0: float, steps: int) -> torch.Tensor:
        r"""``E R_k``, ``k = 0..steps``: ``E R_{k+1} = (1 - 2d + d^2 (N+2)) E R_k + d^2 N sigma^2``.

        ``d = c / N``; exact for Gaussian inputs (docs/theory.md §14.5).
        """
        d = check_positive("c", c) / self.dim
        factor = 1 - 2 * d + d * d * (self.dim + 2)
        add = d * d * self.dim * self.noise_var
        out = [float(check_positive("r0", r0, allow_zero=True))]
        for _ in range(check_positive_int("steps", steps)):
            out.append(factor * out[-1] + add)
        return torch.tensor(out, dtype=F64)

    def simulate(
        self,
        c: float,
        r0: float,
        steps: int,
        *,
        num_runs: int,
        seed: int = 0,
        record_every: int = 1,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        r"""``R_k`` of ``num_runs`` independent online-SGD runs started at ``|x_0|^2 = r0``.

        Returns (steps // record_every + 1, num_runs): ``R`` at ``k = 0, record_every, ...``.
        """
        d = check_positive("c", c) / self.dim
        scale = math.sqrt(check_positive("r0", r0, allow_zero=True))
        sigma = math.sqrt(self.noise_var)

        def update(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            a = torch.randn(x.shape, generator=gen, dtype=F64, device=x.device)
            eps = torch.randn(x.shape[0], 1, generator=gen, dtype=F64, device=x.device)
            return x - d * a * ((a * x).sum(1, keepdim=True) - sigma * eps)

        return self._run(lambda u: scale * u, update, lambda x: x.pow(2).sum(1), steps=steps,
                         num_runs=num_runs, seed=seed, record_every=record_every, device=device)


class SpikedCovariance(_OnlineProblem):
    r"""Online Oja rule on ``z ~ N(0, I + lambda v v^T)``, ``v = e_1``, summary ``m = x . v / |x|``.

    One step is SGD on ``l(x; z) = -(z . x)^2 / 2`` followed by ``x <- x / |x|``; ``m`` is
    scale-invariant, so the normalisation does not change it. At ``|x| = 1``, ``g = -(z . x) z``,
    ``E g = -Sigma x`` and ``E g g^T = (x^T Sigma x) Sigma + 2 Sigma x x^T Sigma``.

    Args:
        dim: ``N``.
        signal: ``lambda > 0``.
    """

    def __init__(self, dim: int, signal: float) -> None:
        self.dim = check_positive_int("dim", dim, minimum=2)
        self.signal = check_positive("signal", signal)

    def _cov_times(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.signal * x[..., :1] * _unit(self.dim, 0).to(x.device)

    def summary(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., :1] / x.norm(dim=-1, keepdim=True)

    def grad_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sx = self._cov_times(x)
        cov = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        cov[0, 0] += self.signal
        return -sx, (x @ sx) * cov + 2 * torch.outer(sx, sx)

    def lift(self, u: torch.Tensor) -> torch.Tensor:
        m = u[0].clamp(-1, 1)
        e0, e1 = _unit(self.dim, 0).to(u.device), _unit(self.dim, 1).to(u.device)
        return m * e0 + (1 - m * m).clamp_min(0).sqrt() * e1

    def limit(self, c: float, *, fluctuations: bool = True) -> EffectiveDynamics:
        r"""``dm/dt = c [lambda m (1 - m^2) - (c/2) m (1 + lambda m^2)]`` and its diffusion.

        Diffusion ``(c^2/N) [w ((1 + lambda)(1 - 2m^2) + m^2 w) + (lambda m (1 - m^2))^2]`` with
        ``w = 1 + lambda m^2`` (``grad m^T Cov(g) grad m`` at ``|x| = 1``).
        """
        c = check_positive("c", c)
        lam = self.signal

        def drift(u: torch.Tensor) -> torch.Tensor:
            return c * (lam * u * (1 - u * u) - c / 2 * u * (1 + lam * u * u))

        def diffusion(u: torch.Tensor) -> torch.Tensor:
            m2 = u * u
            w = 1 + lam * m2
            var = w * ((1 + lam) * (1 - 2 * m2) + m2 * w) + (lam * u * (1 - m2)) ** 2
            return (c * c / self.dim * var).unsqueeze(-1)

        return EffectiveDynamics(drift, diffusion if fluctuations else None,
                                 self.dim if fluctuations else None)

    def limit_fixed_point(self, c: float) -> float:
        """``m*^2 = (2 lambda - c) / (lambda (2 + c))``; 0 when ``c >= 2 lambda`` (no recovery)."""
        c = check_positive("c", c)
        return max(0.0, (2 * self.signal - c) / (self.signal * (2 + c)))

    def simulate(
        self,
        c: float,
        m0: float,
        steps: int,
        *,
        num_runs: int,
        seed: int = 0,
        record_every: int = 1,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        r"""``m_k`` of ``num_runs`` Oja runs started at ``m_0`` (the rest a random direction).

        Returns (steps // record_every + 1, num_runs).
        """
        d = check_positive("c", c) / self.dim
        if not -1 <= m0 <= 1:
            raise ValueError(f"m0 must lie in [-1, 1], got {m0!r}")
        spike = math.sqrt(1 + self.signal)

        def start(u: torch.Tensor) -> torch.Tensor:
            u = u.clone()
            u[:, 0] = 0
            u = u * math.sqrt(1 - m0 * m0) / u.norm(dim=1, keepdim=True)
            u[:, 0] = m0
            return u

        def update(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            z = torch.randn(x.shape, generator=gen, dtype=F64, device=x.device)
            z[:, 0] *= spike
            x = x + d * (z * x).sum(1, keepdim=True) * z
            return x / x.norm(dim=1, keepdim=True)

        return self._run(start, update, lambda x: x[:, 0].clone(), steps=steps,
                         num_runs=num_runs, seed=seed, record_every=record_every, device=device)
