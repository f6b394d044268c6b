"""Chains you can trust: independent minibatches per chain (issue 12, item 1).

(a) chains from different starts never coincide under minibatching; (b) the standard error the
library reports from one run matches the spread over independent runs; (c) the stationary
covariance of SGLD and SGD chains on a Pyro Bayesian linear regression matches the exact law for
batches of distinct indices (finite-population factor (N - B) / (B (N - 1)), docs/theory.md
§0.3, §1.6, §1.7), and not the law for iid batches.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from bayesdepth.inference import SGD, SGLD, module_potential, pyro_potential, sample
from bayesdepth.inference.pyro_potentials import PyroPotential
from bayesdepth.inference.sgld_moments import sgld_linear_regression_moments
from bayesdepth.inference.statistics import chain_covariance

from bayesdepth.data import linear_regression


def regression(data):
    """The Pyro model of ``data`` (prior N(0, s0^2 I), noise s): a plate subsampled to B."""

    def model(x, y, batch_size):
        zero = torch.zeros(x.shape[1], dtype=x.dtype)
        w = pyro.sample("w", dist.Normal(zero, data.prior_scale).to_event(1))
        with pyro.plate("data", x.shape[0], subsample_size=batch_size) as idx:
            pyro.sample("y", dist.Normal(x[idx] @ w, data.noise_scale), obs=y[idx])

    return model


class SharedBatches(PyroPotential):
    """The old behaviour, for the negative controls: one set of indices for every chain."""

    def sample_batch(self, num_chains, generator):
        batch = super().sample_batch(num_chains, generator)
        return {name: idx[:1].expand(num_chains, -1) for name, idx in batch.items()}


def _stable_lr(data, fraction):
    """``fraction`` of the deterministic stability bound 4 / lambda_max(P) of SGLD."""
    precision = torch.linalg.inv(data.posterior_cov)
    return fraction * 4 / float(torch.linalg.eigvalsh(precision).max())


# ------------------------------------------------------------------------------------- (a)
def _min_pairwise_gap(draws):
    """The smallest max-abs difference between two chains at any draw."""
    flat = draws.reshape(draws.shape[0], draws.shape[1], -1)
    gaps = (flat[:, None] - flat[None, :]).abs().amax(-1)  # (K, K, draws)
    k = flat.shape[0]
    off = ~torch.eye(k, dtype=torch.bool)
    return float(gaps[off].min())


@pytest.mark.parametrize("kind", ["pyro", "module"])
def test_chains_from_different_starts_never_coincide(kind):
    """Constant SGD contracts chains that share their batches onto each other (bit-identical
    within a few hundred steps); with a batch per chain they stay a stationary spread apart."""
    data = linear_regression(num_points=60, dim=2, seed=1)
    lr = _stable_lr(data, 0.25) / 2  # SGD on U with learning rate eps / 2
    if kind == "pyro":
        pot = pyro_potential(regression(data), data.x, data.y, 5)
        shared = SharedBatches(regression(data), (data.x, data.y, 5))
    else:
        net = torch.nn.Linear(2, 1, bias=False).double()

        def loglik(out, y):
            return dist.Normal(out.squeeze(-1), data.noise_scale).log_prob(y)

        pot = module_potential(net, loglik, data.x, data.y, prior=data.prior_scale, batch_size=5)
        shared = None
    batch = pot.sample_batch(8, torch.Generator().manual_seed(0))
    rows = batch["data"] if kind == "pyro" else batch
    assert rows.shape == (8, 5) and len({tuple(r.tolist()) for r in rows}) == 8
    chains = sample(pot, SGD(lr), num_chains=8, num_draws=300, warmup=400, seed=0)
    sd = float(chains.draws[next(iter(chains.draws))].std())
    assert _min_pairwise_gap(chains.draws[next(iter(chains.draws))]) > 1e-3 * sd
    if shared is not None:  # the control: shared batches make the chains coincide exactly
        same = sample(shared, SGD(lr), num_chains=8, num_draws=300, warmup=400, seed=0)
        assert _min_pairwise_gap(same.draws["w"]) == 0.0


# ------------------------------------------------------------------------------------- (b)
def _spread_over_reported_se(potential_class, runs=12, chains=8, draws=400):
    """sqrt(mean spread^2 / mean se^2) over the 6 entries of a 3x3 covariance: the spread of
    the estimate over ``runs`` independent runs against the standard error each run reports."""
    data = linear_regression(num_points=100, dim=3, seed=0)
    lr = _stable_lr(data, 0.3)
    covs, ses = [], []
    for run in range(runs):
        pot = potential_class(regression(data), (data.x, data.y, 4))
        result = sample(pot, SGLD(lr), num_chains=chains, num_draws=draws, warmup=200, seed=run)
        cov, se = chain_covariance(result)
        covs.append(cov)
        ses.append(se)
    rows, cols = torch.triu_indices(3, 3)
    spread = torch.stack(covs).std(0)[rows, cols]
    reported = torch.stack(ses).mean(0)[rows, cols]
    return float(((spread**2).mean() / (reported**2).mean()).sqrt())


def test_reported_standard_error_matches_the_spread_of_independent_runs():
    """Measured on these seeds: 1.08 (shared batches, the old behaviour: 5.4)."""
    ratio = _spread_over_reported_se(PyroPotential)
    assert 0.6 <= ratio <= 1.6, ratio


@pytest.mark.slow
def test_shared_batches_make_the_reported_standard_error_too_small():
    """The negative control of the test above: the check has the power to see the bug."""
    assert _spread_over_reported_se(SharedBatches) > 3.0


# ------------------------------------------------------------------------------------- (c)
@pytest.mark.parametrize("temperature", [1.0, 0.0], ids=["SGLD", "SGD"])
def test_stationary_covariance_is_the_law_without_replacement(temperature):
    """N = 20, B = 10: the finite-population factor is 0.053 against 1/B = 0.1, so the two laws
    differ by 40% (SGLD) and 2x (SGD); the chains resolve that to a few standard errors."""
    data = linear_regression(num_points=20, dim=2, seed=0)
    eps = _stable_lr(data, 0.3)
    sampler = SGLD(eps) if temperature else SGD(eps / 2)
    pot = pyro_potential(regression(data), data.x, data.y, 10)
    chains = sample(pot, sampler, num_chains=256, num_draws=1000, warmup=200, seed=0)
    exact = sgld_linear_regression_moments(data, eps, 10, temperature=temperature)
    iid = sgld_linear_regression_moments(data, eps, 10, temperature=temperature, replacement=True)
    cov, se = chain_covariance(chains, mean=exact.mean)
    mean = chains.draws["w"].reshape(-1, 2).mean(0)
    torch.testing.assert_close(mean, exact.mean, atol=float(4 * se.diagonal().sqrt().max()),
                               rtol=0)
    rows, cols = torch.triu_indices(2, 2)
    z = ((cov - exact.covariance) / se)[rows, cols]
    assert z.abs().max() < 4, z
    z_iid = ((cov - iid.covariance) / se).diagonal()
    assert z_iid.abs().min() > 10, z_iid  # the law of iid batches is far off
    z_frozen = ((cov - exact.additive) / se).diagonal()
    assert z_frozen.abs().max() > 5, z_frozen  # the multiplicative noise is resolved too


def test_sgd_limit_of_the_sgld_law_is_the_regression_law():
    """T = 0 is constant SGD on U with learning rate eps / 2 = eta / N (docs/theory.md §1.6)."""
    from bayesdepth.inference import SGDProblem
    from bayesdepth.inference.regression import linear_regression_moments

    data = linear_regression(num_points=30, dim=3, seed=2)
    eps = _stable_lr(data, 0.3)
    for replacement in (False, True):
        ours = sgld_linear_regression_moments(data, eps, 7, temperature=0.0,
                                              replacement=replacement)
        problem = SGDProblem.from_linear_regression(data, lr=eps * 30 / 2, batch_size=7,
                                                    replacement=replacement)
        torch.testing.assert_close(ours.covariance, linear_regression_moments(data, problem)
                                   .covariance)


def test_sgld_law_bad_input():
    data = linear_regression(num_points=20, dim=2, seed=0)
    with pytest.raises(ValueError, match="mean-square unstable"):
        sgld_linear_regression_moments(data, 10 * _stable_lr(data, 1.0), 4)
    with pytest.raises(ValueError, match="batch_size"):
        sgld_linear_regression_moments(data, 1e-3, 21)
    with pytest.raises(ValueError, match="temperature"):
        sgld_linear_regression_moments(data, 1e-3, 4, temperature=-1.0)
