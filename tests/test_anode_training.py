"""train_anode: history, seeding, errors."""

import pytest
import torch

from bayesdepth import data
from bayesdepth.anode import AugmentedNeuralODE, train_anode


def _fit(seed=0, steps=20):
    x, y = data.two_moons(num_points=64, seed=0)
    torch.manual_seed(0)
    model = AugmentedNeuralODE(2, 2, augment_dim=1, hidden=8)
    return model, train_anode(model, x, y, steps=steps, batch_size=16, lr=2e-2, seed=seed)


def test_history_and_loss_decreases():
    _, history = _fit(steps=40)
    assert len(history.loss) == len(history.forward_nfe) == len(history.backward_nfe) == 40
    assert sum(history.loss[-10:]) < sum(history.loss[:10])
    assert all(n >= 8 for n in history.forward_nfe) and history.seconds > 0


def test_same_seed_same_result_different_seed_differs():
    a, _ = _fit(seed=1)
    b, _ = _fit(seed=1)
    c, _ = _fit(seed=2)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_mse_regression_and_errors():
    d = data.toy_regression_1d(num_points=10)
    model = AugmentedNeuralODE(1, 1, augment_dim=1, hidden=8)
    history = train_anode(model, d.x, d.y, loss="mse", steps=3)
    assert len(history.loss) == 3
    with pytest.raises(ValueError, match="loss"):
        train_anode(model, d.x, d.y, loss="hinge")
    with pytest.raises(ValueError, match="y must have 10 rows"):
        train_anode(model, d.x, d.y[:5], loss="mse")
    with pytest.raises(ValueError, match="steps"):
        train_anode(model, d.x, d.y, loss="mse", steps=0)


def test_nonfinite_loss_names_the_step():
    d = data.toy_regression_1d(num_points=10)
    model = AugmentedNeuralODE(1, 1, hidden=4)
    y = d.y.clone()
    y[0] = float("nan")
    with pytest.raises(FloatingPointError, match="step 0"):
        train_anode(model, d.x, y, loss="mse", steps=2, seed=0, batch_size=10)
