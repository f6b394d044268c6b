r"""An SDE-BNN-style latent path whose exact posterior is known: for checking estimators.

Prior ``dw = -theta w dt + sigma dB`` from a fixed ``w(0) = w0`` (one dimension), observation
``y ~ N(w(1), s^2)``. With ``m(t) = exp(-theta (1 - t))`` and
``v(t) = sigma^2 (1 - exp(-2 theta (1 - t))) / (2 theta)``, ``w(1) | w(t) = w ~ N(m w, v)``, so
``h(t, w) = p(y | w(t) = w) = N(y; m w, v + s^2)`` and Doob's h-transform gives the exact posterior:
an SDE with the same ``sigma`` and the affine drift

.. math::  f_q(t, w) = -\theta w + \sigma^2 \partial_w \log h = -\theta w
           + \sigma^2 m (y - m w) / (v + s^2),

with evidence ``log p(y) = log N(y; m(0) w0, v(0) + s^2)``. On an Euler grid the ELBO of this
posterior tends to ``log p(y)`` and the STL gradient variance to zero as the step shrinks, while
``Trace_ELBO``'s does not (Xu et al. 2022, section 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from .._validation import check_positive, check_positive_int
from .paths import EulerPath
from .processes import OUPrior, PosteriorDrift

__all__ = ["DoobCorrection", "OUObservation"]


@dataclass(frozen=True)
class OUObservation:
    """The OU prior path observed at ``t = 1`` with Gaussian noise (see the module docstring)."""

    theta: float = 1.0
    sigma: float = 0.5
    w0: float = 0.3
    y: float = 1.0
    noise: float = 0.2

    def __post_init__(self) -> None:
        check_positive("theta", self.theta)
        check_positive("sigma", self.sigma)
        check_positive("noise", self.noise)

    def moments(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(m(t), v(t))``: ``w(1) | w(t) = w ~ N(m w, v)`` under the prior."""
        m = torch.exp(-self.theta * (1 - t))
        v = self.sigma**2 * (1 - torch.exp(-2 * self.theta * (1 - t))) / (2 * self.theta)
        return m, v

    def log_evidence(self) -> float:
        """``log p(y)`` in closed form."""
        m0 = math.exp(-self.theta)
        v0 = self.sigma**2 * (1 - math.exp(-2 * self.theta)) / (2 * self.theta)
        return float(dist.Normal(m0 * self.w0, math.sqrt(v0 + self.noise**2)).log_prob(
            torch.tensor(self.y, dtype=torch.float64)))

    def model_and_guide(
        self, num_paths: int, steps: int
    ) -> tuple[Callable[[], None], Callable[[], None], DoobCorrection]:
        """A Pyro model and guide for ``num_paths`` independent copies on a ``steps``-step grid.

        The guide's drift is the prior's plus a :class:`DoobCorrection` (returned as the third
        element), initialised at the exact posterior; its ``(alpha, beta)`` are per path, so the
        gradient with respect to them is one independent sample per path.
        """
        num_paths = check_positive_int("num_paths", num_paths)
        steps = check_positive_int("steps", steps)
        f64 = torch.float64
        grid = torch.linspace(0, 1, steps + 1, dtype=f64)
        prior = OUPrior(self.sigma, self.theta)
        correction = DoobCorrection(self, num_paths)
        posterior = PosteriorDrift(prior, correction)
        w0 = torch.full((num_paths, 1), self.w0, dtype=f64)
        y = torch.full((num_paths,), self.y, dtype=f64)

        def model() -> None:
            with pyro.plate("paths", num_paths):
                path = pyro.sample("w", EulerPath(prior, self.sigma, grid, w0))
                pyro.sample("y", dist.Normal(path[..., -1, 0], self.noise), obs=y)

        def guide() -> None:
            with pyro.plate("paths", num_paths):
                pyro.sample("w", EulerPath(posterior, self.sigma, grid, w0))

        return model, guide, correction


class DoobCorrection(nn.Module):
    """``alpha * sigma^2 m (y - m w) / (v + s^2) + beta`` per path: the exact h-transform at
    ``alpha = 1, beta = 0`` (the initial values)."""

    def __init__(self, problem: OUObservation, num_paths: int) -> None:
        super().__init__()
        self.problem = problem
        self.alpha = nn.Parameter(torch.ones(num_paths, 1, dtype=torch.float64))
        self.beta = nn.Parameter(torch.zeros(num_paths, 1, dtype=torch.float64))

    def forward(self, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        p = self.problem
        m, v = p.moments(torch.as_tensor(t, dtype=w.dtype))
        shape = (w.shape[0],) + (1,) * (w.dim() - 1)
        exact = p.sigma**2 * m * (p.y - m * w) / (v + p.noise**2)
        return self.alpha.view(shape) * exact + self.beta.view(shape)
