"""Predictive metrics against hand-computed values."""

import math

import pytest
import torch

from bayesdepth import metrics


def test_accuracy_and_nll():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1])
    assert metrics.accuracy(probs, labels) == pytest.approx(2 / 3)
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.4)) / 3
    assert metrics.nll(probs, labels) == pytest.approx(expected)


def test_ece_of_calibrated_and_overconfident_predictions():
    # Two bins: confidence 0.75 with 3/4 correct (calibrated), confidence 1.0 with 1/2 correct.
    probs = torch.tensor([[0.75, 0.25]] * 4 + [[1.0, 0.0]] * 2, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 0, 1])
    assert metrics.expected_calibration_error(probs, labels, num_bins=10) == pytest.approx(
        (2 / 6) * 0.5
    )


def test_rmse_and_errors():
    assert metrics.rmse(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])) == pytest.approx(
        math.sqrt(5)
    )
    with pytest.raises(ValueError, match="same shape"):
        metrics.rmse(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="same number of rows"):
        metrics.accuracy(torch.rand(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="num_bins"):
        metrics.expected_calibration_error(torch.rand(3, 2), torch.zeros(3, dtype=torch.long), 0)
