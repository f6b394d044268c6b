"""Shared test helpers: the quadratic problem Q (docs/theory.md §0.4) and SGD chains on it."""

import math

import torch

F64 = torch.float64


def rotation(t):
    c, s = math.cos(t), math.sin(t)
    return torch.tensor([[c, -s], [s, c]], dtype=F64)


def quadratic_problem(num_data=40, seed=0):
    """Problem Q in 3-D: grad l_n = A theta - b_n, sum_n b_n = 0; A and C do not commute."""
    g = torch.Generator().manual_seed(seed)
    a = torch.tensor([[1.0, 0.3, 0.0], [0.3, 0.6, 0.1], [0.0, 0.1, 0.3]], dtype=F64)
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [-0.4, 0.3, 0.7]], dtype=F64)
    b = torch.randn(num_data, 3, generator=g, dtype=F64) @ mix.T
    b = b - b.mean(0)
    c = b.T @ b / num_data  # population covariance of the per-example gradients
    return a, b, c


def random_problem(dim=5, seed=1):
    """A random symmetric positive definite Hessian and a full-rank noise covariance."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(dim, dim, generator=g, dtype=F64)
    r = torch.randn(dim, dim, generator=g, dtype=F64)
    return q @ q.T / dim + 0.3 * torch.eye(dim, dtype=F64), r @ r.T


def plane_problem(num_data=8, seed=0, a=(0.5, 2.0), c=(3.0, 0.3), angle=0.6):
    """Problem Q in 2-D whose per-example b_n have population covariance exactly C."""
    hessian = torch.diag(torch.tensor(a, dtype=F64))
    r = rotation(angle)
    noise_cov = r @ torch.diag(torch.tensor(c, dtype=F64)) @ r.T
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(num_data, 2, generator=g, dtype=F64)
    z = z - z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(z.T @ z / num_data)).T  # population cov I
    return hessian, noise_cov, z @ torch.linalg.cholesky(noise_cov).T


def batch_grad_fn(a, b, batch_size, precond=None):
    """iid batches drawn with replacement: Cov(g_B) = C / B exactly (times H on both sides)."""

    def grad_fn(theta, generator):
        idx = torch.randint(b.shape[0], (theta.shape[0], batch_size), generator=generator)
        grad = theta @ a - b[idx].mean(1)
        if precond is not None:
            grad = grad @ precond
        return grad, 0.5 * ((theta @ a) * theta).sum(-1)

    return grad_fn


def run_chains(sampler, grad_fn, chains=2000, burn=300, steps=1000, seed=0, dim=2):
    """Draws (chains, steps, dim) of ``sampler`` started at 0, after ``burn`` steps."""
    gen = torch.Generator().manual_seed(seed)
    state = sampler.init(torch.zeros(chains, dim, dtype=F64))
    draws = torch.empty(chains, steps, dim, dtype=F64)
    for k in range(burn + steps):
        state, _ = sampler.step(state, grad_fn, gen)
        if k >= burn:
            draws[:, k - burn] = state.params
    return draws


def stationary_cov(sampler, grad_fn, dim, num_chains, burn, steps, seed=0):
    """Time-averaged theta theta^T per chain (the stationary mean is 0): mean and standard error."""
    g = torch.Generator().manual_seed(seed)
    state = sampler.init(torch.zeros(num_chains, dim, dtype=F64))
    for _ in range(burn):
        state, _ = sampler.step(state, grad_fn, g)
    acc = torch.zeros(num_chains, dim, dim, dtype=F64)
    for _ in range(steps):
        state, _ = sampler.step(state, grad_fn, g)
        acc += state.params.unsqueeze(-1) * state.params.unsqueeze(-2)
    acc /= steps
    return acc.mean(0), acc.std(0) / num_chains**0.5


def max_z(emp, se, ref):
    """Largest |emp - ref| / se over the entries."""
    return float(((emp - ref) / se).abs().max())
