"""save/load: constructor arguments and state of one model, predictions reproduced bit for bit."""

import pytest
import torch
from torch import nn

import bayesdepth as bd
from bayesdepth.serialization import read_metadata

X = torch.linspace(-1, 1, 16).unsqueeze(-1).repeat(1, 2) * torch.tensor([1.0, -0.5])
Y_REG = X.sum(-1).sin()
Y_CLS = (X[:, 0] > 0).long()

MODELS = {
    "sdebnn-regressor": lambda: bd.SDEBNNRegressor(
        2, width=4, steps=3, prior=bd.OUPrior(0.2), seed=1,
        block_kwargs={"w0": "normal", "w0_prior_mean": "learned"}),
    "sdebnn-classifier": lambda: bd.SDEBNNClassifier(2, 2, width=3, steps=2, num_blocks=2,
                                                     seed=1),
    "bnn": lambda: bd.BayesianMLP(2, hidden=(5, 4), likelihood=bd.Gaussian(None), seed=1),
    "anode": lambda: bd.BayesianAugmentedNODE(
        bd.AugmentedNeuralODE(2, 2, augment_dim=1, hidden=5, seed=1,
                              solver=bd.ODESolver("rk4", step_size=0.5)),
        likelihood=bd.Categorical(), prior_scale=0.5, seed=1),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_reproduces_predict_bit_for_bit(name, tmp_path):
    model = MODELS[name]()
    y = Y_REG if isinstance(model.likelihood, bd.Gaussian) else Y_CLS
    bd.fit(model.model, model.guide, X, y, num_steps=10, lr=2e-2, progress=False, seed=0)
    other = MODELS[name]()  # a second model of the class in the same process
    bd.fit(other.model, other.guide, X, y, num_steps=3, lr=5e-2, progress=False, seed=1)
    path = bd.save(model, tmp_path / "m.pt", metadata={"note": "hello", "columns": ["a", "b"]})
    loaded = bd.load(path)
    assert type(loaded) is type(model)
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    before = model.predict(X, num_samples=5, seed=7)
    after = loaded.predict(X, num_samples=5, seed=7)
    assert torch.equal(before.samples, after.samples)
    assert read_metadata(path) == {"note": "hello", "columns": ["a", "b"]}


def test_the_file_holds_plain_data_only(tmp_path):
    path = bd.save(MODELS["bnn"](), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)  # no arbitrary unpickling needed
    assert payload["class"] == "bayesdepth.bnn:BayesianMLP"
    assert payload["arguments"]["__dict__"]["hidden"] == {"__tuple__": [5, 4]}


@bd.saveable
class TanhField(nn.Module):
    """A user's own component."""

    def __init__(self, dim: int, hidden: int = 4):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, dim))

    def forward(self, t, h):
        return self.net(h)


def test_user_components_need_the_decorator_and_are_passed_to_load(tmp_path):
    net = bd.AugmentedNeuralODE(2, 1, augment_dim=1, field=TanhField(3), seed=0,
                                solver=bd.ODESolver("rk4", step_size=0.5))
    model = bd.BayesianAugmentedNODE(net, likelihood=bd.Gaussian(0.1), seed=0)
    path = bd.save(model, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="TanhField; pass it to load"):
        bd.load(path)
    loaded = bd.load(path, classes=[TanhField])
    assert torch.equal(loaded.predict(X, num_samples=3, seed=0).samples,
                       model.predict(X, num_samples=3, seed=0).samples)

    class Plain(nn.Module):
        def forward(self, t, h):
            return -h

    plain = bd.AugmentedNeuralODE(2, 1, augment_dim=1, field=Plain())
    with pytest.raises(TypeError, match=r"BayesianAugmentedNODE\['net'\]\['field'\]: a Plain "
                       "records no constructor arguments"):
        bd.save(bd.BayesianAugmentedNODE(plain, likelihood=bd.Gaussian(0.1)), tmp_path / "p.pt")


def test_bad_files_are_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bd.load(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a torch file")
    with pytest.raises(ValueError, match="not a bayesdepth model file"):
        bd.load(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not a bayesdepth model file"):
        bd.load(foreign)
    path = bd.save(MODELS["bnn"](), tmp_path / "m.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"truncated\.pt is not a bayesdepth model file"):
        bd.load(truncated)
