"""Shared test helpers: the quadratic problem Q (THEORY section 0) and its stationary law."""

import torch


def quadratic_problem(num_data=40, seed=0):
    """Problem Q: grad l_n = A theta - b_n, sum_n b_n = 0; A and C do not commute."""
    g = torch.Generator().manual_seed(seed)
    a = torch.tensor([[1.0, 0.3, 0.0], [0.3, 0.6, 0.1], [0.0, 0.1, 0.3]], dtype=torch.float64)
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [-0.4, 0.3, 0.7]], dtype=torch.float64)
    b = torch.randn(num_data, 3, generator=g, dtype=torch.float64) @ mix.T
    b = b - b.mean(0)
    c = b.T @ b / num_data  # population covariance of the per-example gradients
    return a, b, c


def batch_grad_fn(a, b, batch_size):
    """iid batches drawn with replacement: Cov(g_B) = C / B exactly."""

    def grad_fn(theta, generator):
        idx = torch.randint(b.shape[0], (theta.shape[0], batch_size), generator=generator)
        grad = theta @ a - b[idx].mean(1)
        return grad, 0.5 * ((theta @ a) * theta).sum(-1)

    return grad_fn


def stationary_cov(sampler, grad_fn, dim, num_chains, burn, steps, seed=0):
    """Time-averaged theta theta^T per chain (the stationary mean is 0): mean and standard error."""
    g = torch.Generator().manual_seed(seed)
    state = sampler.init(torch.zeros(num_chains, dim, dtype=torch.float64))
    for _ in range(burn):
        state, _ = sampler.step(state, grad_fn, g)
    acc = torch.zeros(num_chains, dim, dim, dtype=torch.float64)
    for _ in range(steps):
        state, _ = sampler.step(state, grad_fn, g)
        acc += state.params.unsqueeze(-1) * state.params.unsqueeze(-2)
    acc /= steps
    return acc.mean(0), acc.std(0) / num_chains**0.5
