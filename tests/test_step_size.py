"""The step-size pilot: the largest stable step size of a geometric grid, divided by the backoff."""

import itertools

import pytest
import torch
from bayesdepth.inference import SGLD, Potential, find_step_size
from bayesdepth.inference.step_size import geometric_grid

from bayesdepth.anode import ODESolverError


class Gaussian(Potential):
    """U = p |theta|^2 / 2: SGLD is stable for eps p < 4 (docs/theory.md §5.2)."""

    def __init__(self, precision, raise_at=None):
        self.precision = precision
        self.raise_at = raise_at  # |theta| above which the "model" fails like an ODE solve
        self.shapes = {"theta": torch.Size([3])}

    def init(self, num_chains, generator):
        return {"theta": torch.randn(num_chains, 3, generator=generator, dtype=torch.float64)}

    def __call__(self, params, batch=None):
        theta = params["theta"]
        if self.raise_at is not None and bool((theta.abs() > self.raise_at).any()):
            raise ODESolverError("the rk4 solve produced NaN or infinite states")
        return 0.5 * self.precision * (theta**2).sum(-1), None


def test_geometric_grid():
    grid = geometric_grid(1.0, 1e-3, per_decade=2)
    assert len(grid) == 7 and grid[0] == 1.0 and grid[-1] == pytest.approx(1e-3)
    assert all(a / b == pytest.approx(10**0.5) for a, b in itertools.pairwise(grid))
    with pytest.raises(ValueError, match="low must be <= high"):
        geometric_grid(1e-3, 1.0)


@pytest.mark.parametrize("precision", [30.0, 300.0, 3000.0])
def test_picks_the_largest_stable_step_of_the_grid(precision):
    """The stability edge 4 / p lies between two grid points: the pilot keeps the one below it
    and divides it by sqrt(10)."""
    choice = find_step_size(Gaussian(precision), SGLD, num_chains=4, seed=0)
    edge = 4 / precision
    assert edge / 10**0.5 < choice.largest_stable < edge
    assert choice.lr == pytest.approx(choice.largest_stable / 10**0.5)
    verdicts = dict(choice.tried)
    assert verdicts[choice.largest_stable] == "stable"
    assert all(v != "stable" for lr, v in choice.tried if lr > choice.largest_stable)
    assert "step size" in str(choice) and "pilot" in str(choice)


def test_a_failing_model_solve_counts_as_unstable():
    choice = find_step_size(Gaussian(30.0, raise_at=50.0), SGLD, num_chains=4, seed=0)
    assert any(v.startswith("non-finite") for _, v in choice.tried)
    assert choice.largest_stable < 4 / 30.0


def test_growth_without_overflow_counts_as_unstable():
    """A potential that rises far above its start (geometric growth, still finite)."""
    choice = find_step_size(Gaussian(30.0), SGLD, num_chains=2, steps=8, grid=[0.2, 0.1, 0.01],
                            tolerance=1.0, seed=0)
    verdicts = dict(choice.tried)
    assert verdicts[0.2].startswith("potential grew by")  # eps p = 6: |1 - 3| = 2 per step
    assert choice.largest_stable == 0.1


def test_no_stable_step_size_is_an_error():
    with pytest.raises(FloatingPointError, match="no step size in"):
        find_step_size(Gaussian(1e9), SGLD, num_chains=2, grid=[1.0, 0.1], seed=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="backoff"):
        find_step_size(Gaussian(1.0), SGLD, backoff=0.5)
    with pytest.raises(ValueError, match="steps"):
        find_step_size(Gaussian(1.0), SGLD, steps=2)
