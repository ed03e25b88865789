"""Tests for the shared result type, input checks and noise floors."""

import numpy as np
import pytest
import torch

from sbibench.metrics import Estimate, mmd, noise_floor
from sbibench.metrics.score import as_samples, check_pair


def test_as_samples_accepts_numpy_and_tensor():
    out = as_samples(np.ones((4, 2), dtype=np.float32), "x")
    assert out.dtype == torch.float64 and out.shape == (4, 2)
    assert as_samples(torch.ones(3, 1), "x").shape == (3, 1)


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.ones(5), r"x must have shape \(N, D\)"),
        (torch.ones(2, 3, 4), r"x must have shape \(N, D\)"),
        (torch.ones(0, 2), "x must be non-empty"),
        (torch.tensor([[0.0, float("nan")], [1.0, 1.0]]), "x holds NaN or inf in 1 of 2 rows"),
        (torch.tensor([[float("inf")]]), "x holds NaN or inf"),
    ],
)
def test_as_samples_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        as_samples(bad, "x")


def test_as_samples_rejects_lists():
    with pytest.raises(TypeError, match="x must be a torch.Tensor or numpy array"):
        as_samples([[1.0]], "x")


def test_check_pair_names_mismatched_dimensions():
    with pytest.raises(ValueError, match="reference and approx must have the same dimension"):
        check_pair(torch.ones(3, 2), torch.ones(3, 4), ("reference", "approx"))


def test_noise_floor_runs_the_metric_on_the_references_and_labels_it():
    a, b = torch.randn(300, 2), torch.randn(300, 2)
    floor = noise_floor(mmd, a, b, bandwidth=1.0)
    direct = mmd(a, b, bandwidth=1.0)
    assert floor.value == direct.value
    assert floor.method == "mmd2-unbiased/noise-floor"
    assert floor.details == {"bandwidth": 1.0}


def test_noise_floor_requires_a_score_returning_callable():
    with pytest.raises(TypeError, match="metric must be callable"):
        noise_floor(3, torch.ones(2, 1), torch.ones(2, 1))
    with pytest.raises(TypeError, match="metric must return an Estimate"):
        noise_floor(lambda a, b: 0.0, torch.ones(2, 1), torch.ones(2, 1))


def test_score_is_a_float():
    assert float(Estimate(0.25, "x")) == 0.25
