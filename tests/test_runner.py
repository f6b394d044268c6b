"""sample(): warmup/thinning/draw bookkeeping, seeds, checkpoint-resume bit identity, non-finite
policies, bad input and (when present) CUDA."""

import pytest
import torch
from bayesdepth.inference import PSGLD, SGD, SGHMC, SGLD, SVAG, Potential, sample

PRECISION = torch.tensor([1.0, 4.0], dtype=torch.float64)


class GaussianPotential(Potential):
    """U = sum_i p_i theta_i^2 / 2 plus optional 'minibatch' noise; chains start at N(0, 1)."""

    def __init__(self, noise: float = 0.0, fail_at: tuple[int, int] | None = None):
        self.shapes = {"theta": torch.Size([2])}
        self.noise = noise
        self.fail_at = fail_at  # (chain, call) where the potential turns NaN
        self.calls = 0
        self.observed_data = {"y": torch.arange(3.0)}

    def sample_batch(self, num_chains, generator):
        if self.noise:
            return torch.randn(num_chains, 2, generator=generator, dtype=torch.float64)
        return None

    def init(self, num_chains, generator):
        return {"theta": torch.randn(num_chains, 2, generator=generator, dtype=torch.float64)}

    def __call__(self, params, batch=None):
        theta = params["theta"]
        value = 0.5 * (PRECISION * theta**2).sum(-1)
        if batch is not None:
            value = value + self.noise * (batch * theta).sum(-1)
        if self.fail_at is not None and self.calls == self.fail_at[1]:
            bad = torch.zeros_like(value)
            bad[self.fail_at[0]] = float("nan")
            value = value + bad
        self.calls += 1
        return value, None


@pytest.mark.parametrize(
    "sampler",
    [SGLD(0.05), SGHMC(0.05, friction=0.3), PSGLD(0.01), SGD(0.05, momentum=0.5), SVAG(0.1, l=2)],
    ids=lambda s: type(s).__name__,
)
def test_shapes_warmup_thinning(sampler):
    chains = sample(
        GaussianPotential(noise=0.3), sampler, num_chains=3, num_draws=7, warmup=5, thin=2, seed=0
    )
    assert chains.draws["theta"].shape == (3, 7, 2)
    assert chains.draws["theta"].device.type == "cpu"
    assert chains.steps == 5 + 7 * 2
    assert set(chains.stats) >= {"potential", "grad_norm", "lr", "temperature", "nonfinite"}
    assert all(v.shape == (3, 7) for v in chains.stats.values())
    torch.testing.assert_close(chains.draws["theta"][:, -1], chains.state.params["theta"])


def test_seed_and_generator_reproducible():
    pot = GaussianPotential(noise=0.5)
    a = sample(pot, SGLD(0.05), num_chains=4, num_draws=20, seed=3)
    b = sample(
        pot, SGLD(0.05), num_chains=4, num_draws=20, generator=torch.Generator().manual_seed(3)
    )
    c = sample(pot, SGLD(0.05), num_chains=4, num_draws=20, seed=4)
    assert torch.equal(a.draws["theta"], b.draws["theta"])
    assert not torch.equal(a.draws["theta"], c.draws["theta"])


def test_chunked_copy_to_host_is_exact():
    pot = GaussianPotential(noise=0.5)
    a = sample(pot, SGLD(0.05), num_chains=2, num_draws=23, seed=1, chunk_size=4)
    b = sample(pot, SGLD(0.05), num_chains=2, num_draws=23, seed=1, chunk_size=1000)
    assert torch.equal(a.draws["theta"], b.draws["theta"])
    assert torch.equal(a.stats["potential"], b.stats["potential"])


class _Crash(Exception):
    pass


@pytest.mark.parametrize(
    "sampler", [SGLD(0.05), SGHMC(0.05, friction=0.3), PSGLD(0.01)], ids=lambda s: type(s).__name__
)
def test_checkpoint_resume_is_bit_identical(tmp_path, sampler, monkeypatch):
    kw = dict(num_chains=3, num_draws=40, warmup=7, thin=2, seed=11, checkpoint_every=10)
    full = sample(GaussianPotential(noise=0.5), sampler, **kw)
    original = GaussianPotential.__call__

    def crashing(self, params, batch=None):
        if self.calls == 60:  # mid-way, between checkpoints (draw 26 or so)
            raise _Crash
        return original(self, params, batch)

    with monkeypatch.context() as patch:
        patch.setattr(GaussianPotential, "__call__", crashing)
        with pytest.raises(_Crash):
            sample(GaussianPotential(noise=0.5), sampler, checkpoint=tmp_path, **kw)
    assert (tmp_path / "checkpoint.pt").exists()
    resumed = sample(GaussianPotential(noise=0.5), sampler, checkpoint=tmp_path, **kw)
    assert torch.equal(resumed.draws["theta"], full.draws["theta"])
    for name in full.stats:
        assert torch.equal(resumed.stats[name], full.stats[name]), name
    with pytest.raises(ValueError, match=r"belongs to another run .*sampler"):
        sample(GaussianPotential(noise=0.5), SGD(0.1), checkpoint=tmp_path, **kw)
    # overwrite=True starts afresh (and so also reproduces the run)
    again = sample(GaussianPotential(noise=0.5), sampler, checkpoint=tmp_path, overwrite=True,
                   **kw)
    assert torch.equal(again.draws["theta"], full.draws["theta"])


def test_nonfinite_raise_names_chain_and_step():
    pot = GaussianPotential(fail_at=(1, 4))
    with pytest.raises(FloatingPointError, match=r"chain\(s\) \[1\] at step 4"):
        sample(pot, SGLD(0.05), num_chains=3, num_draws=10, seed=0)


def test_nonfinite_stop_chain_keeps_others():
    reference = sample(GaussianPotential(), SGLD(0.05), num_chains=3, num_draws=10, seed=0)
    pot = GaussianPotential(fail_at=(1, 4))
    chains = sample(pot, SGLD(0.05), num_chains=3, num_draws=10, seed=0, on_nonfinite="stop_chain")
    assert chains.failures == [(1, 4)]
    theta = chains.draws["theta"]
    assert torch.isnan(theta[1, 4:]).all() and torch.isfinite(theta[1, :4]).all()
    assert torch.equal(theta[[0, 2]], reference.draws["theta"][[0, 2]])
    assert chains.stats["nonfinite"][1, 4:].all() and not chains.stats["nonfinite"][1, :4].any()
    assert torch.isfinite(chains.state.params["theta"]).all()  # frozen at its last finite state


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_chains": 0}, ValueError, "num_chains"),
        ({"num_draws": 0}, ValueError, "num_draws"),
        ({"thin": 0}, ValueError, "thin"),
        ({"warmup": -1}, ValueError, "warmup"),
        ({"on_nonfinite": "ignore"}, ValueError, "on_nonfinite"),
        (
            {"init": {"theta": torch.zeros(2, 3, dtype=torch.float64)}},
            ValueError,
            r"init\['theta'\]",
        ),
        ({"init": {"phi": torch.zeros(2, 2, dtype=torch.float64)}}, ValueError, "keys"),
        ({"seed": 1, "generator": torch.Generator()}, ValueError, "seed or generator"),
        ({"seed": "a"}, TypeError, "seed"),
    ],
)
def test_bad_input(kwargs, error, match):
    args = {"num_chains": 2, "num_draws": 3, **kwargs}
    with pytest.raises(error, match=match):
        sample(GaussianPotential(), SGLD(0.1), **args)


def test_bad_sampler_or_potential():
    with pytest.raises(TypeError, match="sampler"):
        sample(GaussianPotential(), "sgld", num_chains=2, num_draws=3)
    with pytest.raises(TypeError, match="potential"):
        sample(lambda p, b: p, SGLD(0.1), num_chains=2, num_draws=3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_requested_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        sample(GaussianPotential(), SGLD(0.1), num_chains=2, num_draws=3, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_chains_run_on_gpu_and_draws_come_back_to_host():
    from bayesdepth.inference import module_potential

    from bayesdepth.data import linear_regression

    d = linear_regression(num_points=64, dim=3, seed=0)
    net = torch.nn.Linear(3, 1, bias=False).double()
    pot = module_potential(
        net,
        lambda out, y: -0.5 * (out.squeeze(-1) - y) ** 2 / d.noise_scale**2,
        d.x,
        d.y,
        batch_size=16,
    )
    peaks = []
    for draws in (200, 800):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        chains = sample(
            pot, SGLD(1e-3), num_chains=8, num_draws=draws, device="cuda", seed=0, chunk_size=50
        )
        peaks.append(torch.cuda.max_memory_allocated())
    assert chains.state.params["weight"].device.type == "cuda"
    assert chains.draws["weight"].device.type == "cpu"
    assert chains.draws["weight"].shape == (8, 800, 1, 3)
    assert peaks[1] <= peaks[0] + 65536  # draws leave the device in chunks: no growth


def test_progress_bar_shows_running_potential(capsys):
    sample(GaussianPotential(), SGLD(0.05), num_chains=2, num_draws=60, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "SGLD" in err and "potential=" in err and "60/60" in err


def test_tensor_params_without_shapes():
    class Plain(GaussianPotential):
        def __init__(self):
            super().__init__()
            self.shapes = {}

        def init(self, num_chains, generator):
            return torch.zeros(num_chains, 2, dtype=torch.float64)

        def __call__(self, params, batch=None):
            return 0.5 * (PRECISION * params**2).sum(-1), None

    chains = sample(Plain(), SGHMC(0.05), num_chains=3, num_draws=5, seed=0)
    assert chains.draws["theta"].shape == (3, 5, 2)


class SteepPotential(GaussianPotential):
    """U = c theta^2 / 2 with c = 1e300: the potential and gradient at the start are finite, the
    first update overflows to -inf/inf."""

    def __call__(self, params, batch=None):
        return 0.5e300 * (params["theta"] ** 2).sum(-1), None

    def init(self, num_chains, generator):
        theta = torch.full((num_chains, 2), 0.5, dtype=torch.float64)
        theta[0] = 0.0  # chain 0 sits at the minimum: its update stays finite
        return {"theta": theta}


def test_an_update_that_overflows_stops_the_chain_at_step_0():
    """The old potential and gradient are finite; the new state is not: the chain stops at the
    step that produced it (step 0), it is not kept as a 'finite' -inf state."""
    pot = SteepPotential()
    with pytest.raises(FloatingPointError, match=r"update in chain\(s\) \[1, 2\] at step 0"):
        sample(pot, SGD(1e10), num_chains=3, num_draws=4, seed=0)
    chains = sample(pot, SGD(1e10), num_chains=3, num_draws=4, seed=0, on_nonfinite="stop_chain")
    assert chains.failures == [(1, 0), (2, 0)]
    assert torch.isnan(chains.draws["theta"][1:]).all()
    assert torch.isfinite(chains.draws["theta"][0]).all()
    torch.testing.assert_close(chains.state.params["theta"][1:], pot.init(3, None)["theta"][1:])
    assert chains.failed_chains == [1, 2]
    assert chains.describe_failures() == "chain 1 at step 0, chain 2 at step 0"


def test_nonfinite_potential_at_step_0_is_reported_as_step_0():
    with pytest.raises(FloatingPointError, match=r"chain\(s\) \[2\] at step 0"):
        sample(GaussianPotential(fail_at=(2, 0)), SGLD(0.05), num_chains=3, num_draws=3, seed=0)


def test_healthy_and_select_keep_the_right_chains():
    pot = GaussianPotential(fail_at=(1, 4))
    chains = sample(pot, SGHMC(0.05), num_chains=3, num_draws=10, seed=0, on_nonfinite="stop_chain")
    healthy = chains.healthy()
    assert healthy.num_chains == 2 and healthy.failures == []
    assert torch.equal(healthy.draws["theta"], chains.draws["theta"][[0, 2]])
    assert torch.equal(healthy.state.velocity["theta"], chains.state.velocity["theta"][[0, 2]])
    picked = chains.select([1])
    assert picked.failures == [(0, 4)] and picked.num_chains == 1
    with pytest.raises(ValueError, match="chains must lie in"):
        chains.select([3])
    all_failed = sample(SteepPotential(), SGD(1e10), num_chains=2, num_draws=2, seed=0,
                        on_nonfinite="stop_chain", init={"theta": torch.ones(2, 2).double()})
    with pytest.raises(FloatingPointError, match="all 2 chains stopped"):
        all_failed.healthy()


# ------------------------------------------------------------------ warm starts
def test_warm_start_keeps_a_frozen_psgld_preconditioner():
    pot = GaussianPotential(noise=0.3)
    adapted = sample(pot, PSGLD(0.01), num_chains=3, num_draws=50, seed=0)
    frozen = sample(pot, PSGLD(0.01, adapt=False), num_chains=3, num_draws=20, seed=1,
                    state=adapted.state)
    assert torch.equal(frozen.state.square_avg["theta"], adapted.state.square_avg["theta"])
    assert frozen.steps == adapted.steps + 20  # the step counter goes on
    assert not torch.equal(frozen.draws["theta"][:, 0], adapted.draws["theta"][:, -1])


def test_warm_start_continues_the_chains():
    """50 + 50 SGHMC steps from the first run's state and generator = 100 in one run."""
    pot = GaussianPotential(noise=0.3)
    whole = sample(pot, SGHMC(0.05), num_chains=2, num_draws=100, generator=_gen(5))
    gen = _gen(5)
    first = sample(pot, SGHMC(0.05), num_chains=2, num_draws=50, generator=gen)
    second = sample(pot, SGHMC(0.05), num_chains=2, num_draws=50, generator=gen,
                    state=first.state)
    assert torch.equal(torch.cat([first.draws["theta"], second.draws["theta"]], 1),
                       whole.draws["theta"])


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    ("state", "error", "match"),
    [
        ("psgld", TypeError, "state must be a SGHMCState"),
        ("chains", ValueError, "state holds 3 chains"),
        ("both", ValueError, "init .* or state"),
    ],
)
def test_bad_warm_start(state, error, match):
    pot = GaussianPotential()
    psgld = sample(pot, PSGLD(0.01), num_chains=3, num_draws=2, seed=0).state
    sghmc = sample(pot, SGHMC(0.01), num_chains=3, num_draws=2, seed=0).state
    kwargs = {"psgld": dict(state=psgld), "chains": dict(state=sghmc, num_chains=2),
              "both": dict(state=sghmc, init=pot.init(3, None))}[state]
    with pytest.raises(error, match=match):
        sample(pot, SGHMC(0.01), **{"num_chains": 3, "num_draws": 2, **kwargs})
