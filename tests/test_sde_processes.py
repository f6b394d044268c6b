import pytest
import torch

from bayesdepth.sde.processes import BottleneckDrift, OUPrior, PosteriorDrift


def test_ou_prior_drift_is_minus_theta_w():
    prior = OUPrior(sigma=0.3, theta=2.0)
    w = torch.randn(4, 7, dtype=torch.float64)
    assert torch.equal(prior(torch.tensor(0.5), w), -2.0 * w)
    assert prior.sigma == 0.3


@pytest.mark.parametrize("kwargs", [{"sigma": 0.0}, {"sigma": -1.0}, {"theta": -0.1}])
def test_ou_prior_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        OUPrior(**kwargs)


def test_bottleneck_drift_starts_at_zero_and_learns():
    drift = BottleneckDrift(10, rank=3, hidden=5).double()
    w = torch.randn(6, 10, dtype=torch.float64)
    assert torch.equal(drift(torch.tensor(0.2), w), torch.zeros_like(w))
    # A column of times (as used by log_prob) broadcasts against a (..., K, d) input.
    w3 = torch.randn(2, 4, 10, dtype=torch.float64)
    t = torch.linspace(0, 1, 4, dtype=torch.float64).unsqueeze(-1)
    assert drift(t, w3).shape == w3.shape
    # The zero last layer still receives a gradient, so the correction can move away from zero.
    drift(t, w3).pow(2).sum().backward()
    out = (drift(t, w3) * torch.randn_like(w3)).sum()
    out.backward()
    assert drift.up.weight.grad.abs().sum() > 0


def test_bottleneck_drift_is_time_conditioned():
    drift = BottleneckDrift(4, rank=2, hidden=3)
    torch.nn.init.normal_(drift.up.weight)
    w = torch.randn(3, 4)
    assert not torch.allclose(drift(torch.tensor(0.0), w), drift(torch.tensor(1.0), w))


def test_bottleneck_drift_rejects_bad_sizes():
    with pytest.raises(ValueError, match="rank"):
        BottleneckDrift(4, rank=0)
    with pytest.raises(TypeError, match="dim"):
        BottleneckDrift(4.5)


def test_posterior_drift_is_prior_plus_correction_and_owns_only_the_correction():
    prior = OUPrior(sigma=0.2)
    corr = BottleneckDrift(5)
    torch.nn.init.normal_(corr.up.weight)
    post = PosteriorDrift(prior, corr)
    w = torch.randn(3, 5)
    t = torch.tensor(0.3)
    assert torch.allclose(post(t, w), -w + corr(t, w))
    assert {n for n, _ in post.named_parameters()} == {
        f"correction.{n}" for n, _ in corr.named_parameters()
    }
    with pytest.raises(TypeError, match="correction"):
        PosteriorDrift(prior, lambda t, w: w)
