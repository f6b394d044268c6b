"""Property-based checks of the public constructors and entry points: whatever value one
argument takes, the call either works or raises TypeError/ValueError naming that argument (never
another exception, never a silent acceptance of a bool or a string where a number belongs)."""

import math

import bayesdepth.inference as bi
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayesdepth as bd

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

WEIRD = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
    st.lists(st.integers(-2, 4), max_size=3), st.tuples(st.integers(-2, 40)),
)


def _valid(value, name, kind):
    """Whether ``value`` is something the argument ``name`` may legitimately accept."""
    if kind in ("count", "count0"):
        return isinstance(value, int) and not isinstance(value, bool) and \
            value >= (1 if kind == "count" else 0)
    if kind in ("positive", "fraction"):
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and math.isfinite(value) and value > 0 and (kind == "positive" or value <= 1))
    return True


def _check(call, name, value, kind):
    try:
        call()
    except (TypeError, ValueError) as exc:
        assert name in str(exc), (name, value, str(exc))
        return
    assert _valid(value, name, kind), f"{name}={value!r} was accepted"


CONSTRUCTORS = {
    "BayesianMLP": (lambda **kw: bd.BayesianMLP(**{"in_features": 2, "hidden": (3,), **kw}),
                    {"in_features": "count", "out_features": "count",
                     "prior_scale": "positive", "init_scale": "positive", "seed": "seed"}),
    "Gaussian": (lambda **kw: bd.Gaussian(**kw), {"scale_prior": "positive"}),
    "OUPrior": (lambda **kw: bd.OUPrior(**kw), {"sigma": "positive"}),
    "ODESolver": (lambda **kw: bd.ODESolver(**kw),
                  {"rtol": "positive", "atol": "positive", "end_time": "positive",
                   "max_num_steps": "count_or_none"}),
    "AugmentedNeuralODE": (lambda **kw: bd.AugmentedNeuralODE(**{"in_shape": 2,
                                                                 "out_features": 1, **kw}),
                           {"out_features": "count", "hidden": "count",
                            "num_layers": "count", "seed": "seed"}),
    "SDEBNNRegressor": (lambda **kw: bd.SDEBNNRegressor(**{"in_features": 1, "width": 3,
                                                           "steps": 2, **kw}),
                        {"in_features": "count", "width": "count", "steps": "count",
                         "seed": "seed"}),
    "SDEBNNClassifier": (lambda **kw: bd.SDEBNNClassifier(**{"in_features": 2, "num_classes": 2,
                                                             "width": 3, "steps": 2, **kw}),
                         {"num_classes": "count", "width": "count", "steps": "count",
                          "seed": "seed"}),
}
# counts whose large values are legal but cost memory: replaced by a small legal value
SMALL = {"width": 12, "num_classes": 12}
CASES = [(ctor, name, kind) for ctor, (_, args) in CONSTRUCTORS.items()
         for name, kind in args.items()]


@pytest.mark.parametrize(("ctor", "name", "kind"), CASES, ids=[f"{c}.{n}" for c, n, _ in CASES])
@SETTINGS
@given(value=WEIRD)
def test_constructor_arguments(ctor, name, kind, value):
    build = CONSTRUCTORS[ctor][0]
    if kind == "count_or_none" and value is None:
        return
    if isinstance(value, int) and not isinstance(value, bool) and kind == "count":
        cap = SMALL.get(name, 10**4)
        if value > cap:
            value = cap - value % 7  # huge widths are legal; keep the test's memory bounded
    if kind == "seed":
        if value is None or (isinstance(value, int) and not isinstance(value, bool)
                             and 0 <= value < 2**63):
            build(**{name: value})  # any seed in range must work
            return
        with pytest.raises((TypeError, ValueError), match="seed"):
            build(**{name: value})
        return
    _check(lambda: build(**{name: value}), name, value,
           "count" if kind == "count_or_none" else kind)


FIT_ARGS = {"num_steps": "count", "lr": "positive", "batch_size": "count",
            "final_lr_fraction": "fraction", "num_particles": "count", "seed": "seed"}


@pytest.mark.parametrize("name", sorted(FIT_ARGS))
@SETTINGS
@given(value=WEIRD)
def test_fit_arguments(name, value):
    model = bd.BayesianMLP(1, hidden=(2,), seed=0)
    x = torch.linspace(-1, 1, 8).unsqueeze(-1)
    kind = FIT_ARGS[name]
    if name in ("num_steps", "batch_size", "num_particles") and isinstance(value, int) and \
            not isinstance(value, bool) and value > 8:
        value = 8  # large counts are legal; keep the run short (batch <= rows)
    call = lambda: bd.fit(model.model, model.guide, x, x[:, 0], progress=False,  # noqa: E731
                          **{"num_steps": 1, name: value})
    if kind == "seed":
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool)
                               and 0 <= value < 2**63)
        if ok:
            call()
        else:
            with pytest.raises((TypeError, ValueError), match="seed"):
                call()
        return
    if name == "batch_size" and value is None:
        call()  # None: the full batch
        return
    _check(call, name, value, kind)


class _Quadratic(bi.Potential):
    """U = |theta|^2 / 2 for two parameters; chains start at N(0, 1)."""

    def __init__(self):
        self.shapes = {"theta": torch.Size([2])}
        self.observed_data = {}

    def init(self, num_chains, generator):
        return {"theta": torch.randn(num_chains, 2, generator=generator)}

    def __call__(self, params, batch=None):
        return 0.5 * (params["theta"] ** 2).sum(-1), None


SAMPLE_ARGS = {"num_chains": "count", "num_draws": "count", "warmup": "count0", "thin": "count",
               "chunk_size": "count", "checkpoint_every": "count", "seed": "seed"}


@pytest.mark.parametrize("name", sorted(SAMPLE_ARGS))
@SETTINGS
@given(value=WEIRD)
def test_sample_arguments(name, value):
    kind = SAMPLE_ARGS[name]
    if isinstance(value, int) and not isinstance(value, bool) and value > 5 and kind != "seed":
        value = 5  # large counts are legal; keep the run short
    call = lambda: bi.sample(_Quadratic(), bi.SGLD(lr=0.1),  # noqa: E731
                                       **{"num_chains": 2, "num_draws": 3, name: value})
    if kind == "seed":
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool)
                               and 0 <= value < 2**63)
        if ok:
            assert call().num_draws == 3
        else:
            with pytest.raises((TypeError, ValueError), match="seed"):
                call()
        return
    _check(call, name, value, kind)
