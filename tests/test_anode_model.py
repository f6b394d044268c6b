"""AugmentedNeuralODE: what a NODE cannot fit and an ANODE can, shapes, and bad input."""

import pytest
import torch

from bayesdepth import data
from bayesdepth.anode import AugmentedNeuralODE, ODESolver, SolveCost, train_anode
from bayesdepth.metrics import accuracy


def _fit_1d_map(augment_dim):
    x, y = data.anode_1d_map()
    torch.manual_seed(0)
    model = AugmentedNeuralODE(1, 1, augment_dim=augment_dim, hidden=16, readout="identity")
    history = train_anode(model, x, y, loss="mse", steps=150, lr=1e-2, seed=0)
    with torch.no_grad():
        return torch.mean((model(x) - y) ** 2).item(), history


def test_node_cannot_fit_1d_crossing_map_but_anode_can():
    """g(-1) = 1, g(1) = -1: ODE flows on the line keep the order of points (Dupont et al. 2019).

    With the identity readout the best order-preserving fit maps both points to 0 (MSE = 1).
    """
    node_mse, _ = _fit_1d_map(0)
    anode_mse, history = _fit_1d_map(1)
    assert node_mse >= 0.5, node_mse
    assert anode_mse < 0.01, anode_mse
    assert len(history.loss) == 150 and min(history.forward_nfe) >= 8


def test_anode_separates_annuli(record_property):
    x, y = data.annuli(num_points=256, seed=0)
    accs = {}
    for p in (0, 1):
        torch.manual_seed(0)
        model = AugmentedNeuralODE(2, 2, augment_dim=p, hidden=32)
        train_anode(model, x, y, steps=150, lr=1e-2, seed=0)
        with torch.no_grad():
            accs[p] = accuracy(model(x).softmax(-1), y)
    record_property("node_train_accuracy", accs[0])
    print(f"annuli train accuracy: NODE {accs[0]:.3f}, ANODE(p=1) {accs[1]:.3f}")
    assert accs[1] >= 0.98


def test_augment_appends_zero_features_and_channels():
    model = AugmentedNeuralODE(3, 2, augment_dim=2)
    x = torch.randn(4, 3)
    h0 = model.augment(x)
    assert h0.shape == (4, 5) and torch.equal(h0[:, :3], x) and torch.all(h0[:, 3:] == 0)
    conv = AugmentedNeuralODE((1, 8, 8), 10, augment_dim=3, hidden=4)
    img = torch.randn(2, 1, 8, 8)
    h0 = conv.augment(img)
    assert h0.shape == (2, 4, 8, 8) and torch.all(h0[:, 1:] == 0)
    cost = SolveCost()
    assert conv(img, cost=cost).shape == (2, 10) and cost.forward_nfe > 0


def test_plain_node_has_no_augmentation():
    model = AugmentedNeuralODE(2, 2, augment_dim=0)
    x = torch.randn(3, 2)
    assert torch.equal(model.augment(x), x)
    assert model.field.dim == 2


def test_dtype_and_gradients_follow_input():
    model = AugmentedNeuralODE(2, 3, augment_dim=1).double()
    out = model(torch.randn(5, 2, dtype=torch.float64))
    assert out.dtype == torch.float64 and out.shape == (5, 3)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_identity_readout_returns_first_coordinates():
    model = AugmentedNeuralODE(2, 1, augment_dim=2, readout="identity")
    x = torch.randn(3, 2)
    assert torch.equal(model(x), model.flow(x)[:, :1])
    assert not any(n.startswith("readout") for n, _ in model.named_parameters())


def test_negative_augment_dim_rejected():
    with pytest.raises(ValueError, match="augment_dim must be an integer >= 0, got -1"):
        AugmentedNeuralODE(2, 2, augment_dim=-1)
    with pytest.raises(TypeError, match="augment_dim"):
        AugmentedNeuralODE(2, 2, augment_dim=1.5)


def test_mismatched_input_dimension_rejected():
    model = AugmentedNeuralODE(2, 2, augment_dim=1)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\).*got \(4, 3\)"):
        model(torch.randn(4, 3))
    with pytest.raises(ValueError, match="x must have 2 dimension"):
        model(torch.randn(4))
    with pytest.raises(TypeError, match="floating"):
        model(torch.ones(4, 2, dtype=torch.long))
    conv = AugmentedNeuralODE((1, 8, 8), 10, hidden=4)
    with pytest.raises(ValueError, match=r"\(n, 1, 8, 8\)"):
        conv(torch.randn(2, 1, 7, 7))


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="readout"):
        AugmentedNeuralODE(2, 2, readout="softmax")
    with pytest.raises(ValueError, match="out_features <= state size"):
        AugmentedNeuralODE(2, 5, augment_dim=1, readout="identity")
    with pytest.raises(TypeError, match="solver must be an ODESolver"):
        AugmentedNeuralODE(2, 2, solver="dopri5")
    with pytest.raises(ValueError, match="in_shape"):
        AugmentedNeuralODE((1, 8), 2)


def test_fixed_step_solver_runs():
    model = AugmentedNeuralODE(2, 2, augment_dim=1, solver=ODESolver(method="euler",
                                                                     step_size=0.5))
    cost = SolveCost()
    model(torch.randn(3, 2), cost=cost)
    assert cost.forward_nfe == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_with_adjoint():
    model = AugmentedNeuralODE(2, 2, augment_dim=1, solver=ODESolver(adjoint=True)).cuda()
    cost = SolveCost()
    out = model(torch.randn(8, 2, device="cuda"), cost=cost)
    out.sum().backward()
    assert out.device.type == "cuda" and cost.forward_nfe > 0 and cost.backward_nfe > 0
    assert all(p.grad.device.type == "cuda" for p in model.parameters())
