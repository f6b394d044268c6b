"""Weight processes of an SDE-BNN: the Ornstein–Uhlenbeck prior and the posterior drift.

Xu, Chen, Li, Duvenaud, "Infinitely Deep Bayesian Neural Networks with Stochastic Differential
Equations" (AISTATS 2022), section 3.

The weights ``w(t)`` (the whole flattened parameter vector of a small network) follow

    prior:      dw = -theta * w dt + sigma dB                      (OU, theta = 1 in the paper)
    posterior:  dw = [-theta * w + g_phi(t, w)] dt + sigma dB      (same sigma)

so the Kullback–Leibler divergence between the two path measures is finite (Girsanov):
``KL = E_q int_0^1 1/2 |u|^2 dt`` with ``u = g_phi(t, w) / sigma``.

A *drift* is any ``nn.Module`` called as ``f(t, w)``: ``w`` has shape ``(..., d)``, ``t`` is a
tensor broadcastable to ``w.shape[:-1] + (1,)`` (a 0-dim tensor when a simulator calls it, a column
of grid times when a path's density is evaluated), and the result has the shape of ``w``.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_positive, check_positive_int
from ..serialization import Recorded

__all__ = ["BottleneckDrift", "OUPrior", "PosteriorDrift"]


class OUPrior(Recorded, nn.Module):
    """Ornstein–Uhlenbeck prior ``dw = -theta * w dt + sigma dB``.

    Called as a drift, ``OUPrior()(t, w) = -theta * w``. Its stationary law is
    ``N(0, sigma^2 / (2 theta))``; with ``theta = 0`` it is a Brownian motion.

    Args:
        sigma: diffusion coefficient (shared by the prior and the posterior), > 0.
        theta: mean-reversion rate, >= 0 (1 in the paper).
    """

    def __init__(self, sigma: float = 0.1, theta: float = 1.0) -> None:
        super().__init__()
        self.sigma = check_positive("sigma", sigma)
        self.theta = check_positive("theta", theta, allow_zero=True)

    def forward(self, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return -self.theta * w

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, theta={self.theta}"


class BottleneckDrift(Recorded, nn.Module):
    """The default posterior correction ``g_phi(t, w)``: a time-conditioned bottleneck network.

    ``w (d) -> r -> [hidden, +t] -> r -> d``: a linear projection to ``rank`` features, a small
    MLP on ``[projection, t]`` and a linear map back to ``d``. The last layer is initialised to
    zero, so ``g_phi = 0`` at the start: the posterior equals the prior and the KL is exactly 0.

    Args:
        dim: size ``d`` of the flattened weight vector.
        rank: bottleneck width ``r``.
        hidden: width of the inner layer.
    """

    def __init__(self, dim: int, rank: int = 16, hidden: int = 32) -> None:
        super().__init__()
        dim = check_positive_int("dim", dim)
        rank = check_positive_int("rank", rank)
        hidden = check_positive_int("hidden", hidden)
        self.down = nn.Linear(dim, rank)
        self.inner = nn.Linear(rank + 1, hidden)
        self.mid = nn.Linear(hidden, rank)
        self.up = nn.Linear(rank, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        z = self.down(w)
        t = torch.as_tensor(t, dtype=w.dtype, device=w.device).expand(*z.shape[:-1], 1)
        z = torch.tanh(self.inner(torch.cat([z, t], dim=-1)))
        z = torch.tanh(self.mid(z))
        return self.up(z)


class PosteriorDrift(nn.Module):
    """Posterior drift ``f_q(t, w) = f_p(t, w) + g_phi(t, w)``: prior drift plus a correction.

    ``correction`` may be any drift module (the exact Doob h-transform in the tests, or
    :class:`BottleneckDrift`). Only the correction's parameters are variational parameters.
    """

    def __init__(self, prior: nn.Module, correction: nn.Module) -> None:
        super().__init__()
        if not isinstance(correction, nn.Module):
            raise TypeError(
                f"correction must be an nn.Module drift f(t, w), got {type(correction).__name__}"
            )
        # The prior is held without registering it, so its buffers are not variational.
        self.__dict__["prior"] = prior
        self.correction = correction

    def forward(self, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.prior(t, w) + self.correction(t, w)
