"""Embedded data sets: shapes, dtypes, seeds, the conjugate posterior, bad arguments."""

import pytest
import torch

from bayesdepth import data


def test_toy_regression_layout():
    d = data.toy_regression_1d()
    assert d.x.shape == (40, 1) and d.y.shape == (40,) and d.x.dtype == torch.float32
    raw = d.x.squeeze(-1) * 4 + 4
    assert torch.allclose(raw[:20], torch.linspace(0, 2, 20), atol=1e-6)
    assert torch.allclose(raw[20:], torch.linspace(6, 8, 20), atol=1e-6)
    residual = d.y - raw.cos()
    assert 0.05 < residual.std() < 0.15
    grid = d.x_test.squeeze(-1) * 4 + 4
    assert grid.min() == pytest.approx(-2, abs=1e-5) and grid.max() == pytest.approx(8, abs=1e-5)
    assert len(d.dataset) == 40


def test_seed_and_dtype():
    a = data.toy_regression_1d(seed=3, dtype=torch.float64)
    b = data.toy_regression_1d(seed=3, dtype=torch.float64)
    c = data.toy_regression_1d(seed=4, dtype=torch.float64)
    assert a.y.dtype == torch.float64
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, c.y)
    x1, y1 = data.two_moons(seed=1)
    x2, y2 = data.two_moons(seed=1)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_anode_map():
    x, y = data.anode_1d_map(dtype=torch.float64)
    assert x.tolist() == [[-1.0], [1.0]] and y.tolist() == [[1.0], [-1.0]]


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_annuli_radii(dim):
    x, y = data.annuli(num_points=400, dim=dim, seed=0)
    assert x.shape == (400, dim) and y.dtype == torch.long
    r = x.norm(dim=-1)
    assert (r[y == 1] <= 0.5 + 1e-6).all()
    assert ((r[y == 0] >= 1.0 - 1e-6) & (r[y == 0] <= 1.5 + 1e-6)).all()
    assert (y == 1).sum() == 200


def test_two_moons():
    x, y = data.two_moons(num_points=101)
    assert x.shape == (101, 2) and set(y.tolist()) == {0, 1}


def test_digits_split_is_fixed_stratified_and_standardised():
    d = data.digits()
    assert d.x_train.shape[1] == 64 and d.x_train.shape[0] + d.x_test.shape[0] == 1797
    assert d.num_classes == 10
    counts = torch.bincount(d.y_test, minlength=10).double()
    assert counts.min() / counts.max() > 0.9
    assert d.x_train.mean(0).abs().max() < 1e-5
    images = data.digits(flatten=False)
    assert images.x_train.shape[1:] == (1, 8, 8)
    assert torch.equal(images.x_test.reshape(-1, 64), d.x_test)


def test_linear_regression_posterior_matches_direct_solve():
    p = data.linear_regression(num_points=50, dim=4, prior_scale=2.0, noise_scale=0.3, seed=2)
    x, y = p.x, p.y
    precision = torch.eye(4, dtype=x.dtype) / 4.0 + x.T @ x / 0.09
    mean = torch.linalg.solve(precision, x.T @ y / 0.09)
    assert torch.allclose(p.posterior_mean, mean, atol=1e-10)
    assert torch.allclose(p.posterior_cov, torch.linalg.inv(precision), atol=1e-12)
    assert torch.allclose(p.posterior_precision, precision, atol=1e-8)
    assert p.x.dtype == torch.float64
    assert data.linear_regression(dtype=torch.float32).x.dtype == torch.float32


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: data.toy_regression_1d(num_points=0), "num_points"),
        (lambda: data.toy_regression_1d(num_points=7), "num_points must be even"),
        (lambda: data.toy_regression_1d(noise_scale=-1), "noise_scale"),
        (lambda: data.annuli(dim=0), "dim"),
        (lambda: data.annuli(shell=(0.3, 1.0)), "shell"),
        (lambda: data.two_moons(num_points=-5), "num_points"),
        (lambda: data.digits(test_fraction=1.5), "test_fraction"),
        (lambda: data.linear_regression(dim=0), "dim"),
        (lambda: data.linear_regression(noise_scale=0), "noise_scale"),
        (lambda: data.toy_regression_1d(dtype=torch.int64), "dtype"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_types():
    with pytest.raises(TypeError, match="num_points"):
        data.annuli(num_points=2.5)
    with pytest.raises(TypeError, match="seed"):
        data.two_moons(seed="a")
