"""StateSolver: gradient checkpointing (same gradients, less saved memory) and torch.compile."""

import pytest
import torch

from bayesdepth.sde import MLPField, ResNetField, SDEBNNBlock, StateSolver

F64 = torch.float64


def _saved_bytes(fn):
    """Bytes of the distinct storages autograd saves for the backward pass while ``fn`` runs
    (with checkpointing: the segments' input states only)."""
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out


def _block(solver, seed=0):
    torch.manual_seed(seed)
    block = SDEBNNBlock(ResNetField(3, 4), (2, 6, 6), augment=1, steps=7, solver=solver)
    return block.double()


@pytest.mark.parametrize("method", ["euler", "heun", "midpoint"])
@pytest.mark.parametrize("every", [1, 3, 7])
def test_checkpointing_gives_the_same_gradients_in_float64(method, every):
    results = []
    for solver in (StateSolver(method), StateSolver(method, checkpoint_every=every)):
        block = _block(solver)
        h = torch.randn(5, 2, 6, 6, dtype=F64, generator=torch.Generator().manual_seed(1))
        h.requires_grad_()
        torch.manual_seed(2)
        path = block.guide_part()  # differentiable in w(0) and the posterior drift
        out = block.integrate(h, path)
        inputs = [h, block.w0, *block.posterior.correction.parameters()]
        grads = torch.autograd.grad(out.square().sum(), inputs)
        results.append((out, grads))
    (out0, g0), (out1, g1) = results
    torch.testing.assert_close(out1, out0, rtol=0, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in g0)
    for a, b in zip(g0, g1):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)


def test_checkpointing_saves_less_for_the_backward_pass():
    sizes = {}
    for every in (None, 5):
        torch.manual_seed(0)
        block = SDEBNNBlock(MLPField(16, 32), 16, steps=20,
                            solver=StateSolver(checkpoint_every=every)).double()
        h = torch.randn(64, 16, dtype=F64)
        path = block.w0.detach().expand(21, -1).clone().requires_grad_()
        sizes[every], _ = _saved_bytes(lambda b=block, p=path, x=h: b.integrate(x, p))
    state = 64 * 16 * 8  # one float64 state
    assert 4 * state <= sizes[5] < 4 * state + 1024  # the four segments' input states (+ dts)
    assert sizes[None] > 10 * sizes[5]


def test_solver_options_are_validated():
    with pytest.raises(ValueError, match="method must be one of 'euler', 'heun', 'midpoint'"):
        StateSolver("rk4")
    with pytest.raises(ValueError, match="checkpoint_every"):
        StateSolver(checkpoint_every=0)
    with pytest.raises(TypeError, match="compile must be True or False"):
        StateSolver(compile="yes")
    assert StateSolver.of("heun") == StateSolver("heun")


@pytest.mark.slow
def test_compiled_segments_match_eager_values_and_gradients():
    """torch.compile of the hidden-state loop: one compiled graph per segment length."""
    h = torch.randn(16, 8, dtype=F64)
    for every in (None, 2):
        runs = []
        for compiled in (False, True):
            torch.manual_seed(0)
            block = SDEBNNBlock(MLPField(8, 8, time=True), 8, steps=4, solver=StateSolver(
                "heun", checkpoint_every=every, compile=compiled)).double()
            path = block.w0.detach().expand(3, 1, 5, -1).clone()  # three draws (vmap)
            path = (path + 0.1 * torch.randn_like(path)).requires_grad_()
            out = block.integrate(h, path)
            runs.append((out, torch.autograd.grad(out.square().sum(), path)[0]))
        torch.testing.assert_close(runs[1][0], runs[0][0], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(runs[1][1], runs[0][1], rtol=1e-10, atol=1e-10)
