"""Known-answer tests for the unbiased MMD^2."""

import math

import numpy as np
import pytest
import torch

from sbibench.metrics import median_bandwidth, mmd


def _normal(n, d, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + shift


def _closed_form(shift, d, h):
    # With k(x, y) = exp(-|x - y|^2 / (2 h^2)) and X - X' ~ N(0, 2 I):
    # E k(X, X') = (1 + 2 / h^2)^(-d/2), E k(X, Y) = that times exp(-|m|^2 / (2 (h^2 + 2))).
    base = (1 + 2 / h**2) ** (-d / 2)
    return 2 * base * (1 - math.exp(-(shift**2) * d / (2 * (h**2 + 2))))


def test_unbiased_for_equal_distributions_and_matches_closed_form():
    # Over R independent repetitions the mean lies within 3 standard errors (the spread of
    # the repetitions over sqrt(R)) of the truth: 0 for equal laws, the closed form otherwise.
    reps = 40
    same = np.array(
        [
            mmd(_normal(150, 2, 2 * r), _normal(150, 2, 2 * r + 1), bandwidth=1.0).value
            for r in range(reps)
        ]
    )
    assert abs(same.mean()) < 3 * same.std(ddof=1) / math.sqrt(reps)
    assert (same < 0).any()  # unbiased, so not clipped at zero
    shifted = np.array(
        [
            mmd(_normal(150, 2, 2 * r), _normal(150, 2, 2 * r + 1, shift=0.5), bandwidth=1.0).value
            for r in range(reps)
        ]
    )
    truth = _closed_form(0.5, 2, 1.0)
    assert abs(shifted.mean() - truth) < 3 * shifted.std(ddof=1) / math.sqrt(reps)


def test_grows_with_the_shift():
    x = _normal(500, 3, 0)
    values = [mmd(x, _normal(500, 3, 1, shift=s)).value for s in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))


def test_median_heuristic():
    assert median_bandwidth(torch.tensor([[0.0], [1.0], [3.0]])) == 2.0
    assert median_bandwidth(torch.zeros(4, 2)) == 1.0  # coincident points: no zero bandwidth
    x, y = _normal(300, 2, 3), _normal(300, 2, 4)
    score = mmd(x, y)
    assert score.details["bandwidth"] == pytest.approx(median_bandwidth(torch.cat([x, y])))
    # The median distance between two N(0, I_2) points is 2 sqrt(ln 2) ~ 1.665.
    assert abs(score.details["bandwidth"] - 2 * math.sqrt(math.log(2))) < 0.1


@pytest.mark.parametrize(
    "x, y, kwargs, match",
    [
        (torch.zeros(1, 2), torch.zeros(5, 2), {}, "at least 2 samples"),
        (torch.zeros(5, 2), torch.zeros(5, 3), {}, "same dimension"),
        (torch.zeros(5, 2), torch.zeros(5, 2), dict(bandwidth=0.0), "bandwidth must be positive"),
        (torch.full((5, 2), float("nan")), torch.zeros(5, 2), {}, "x holds NaN"),
    ],
)
def test_bad_input_raises_value_error(x, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mmd(x, y, **kwargs)


def test_float32_kernel_agrees_with_float64_far_from_the_origin():
    """At location 100 and scale 0.01 an uncentred float32 kernel flipped the sign of MMD^2;
    centred and scaled, it agrees with a direct float64 computation to 1e-6 relative (float32
    rounding of O(1) exponents, far below the estimator's sampling error)."""
    x, y = 100 + 0.01 * _normal(1500, 2, 5), 100 + 0.01 * _normal(1500, 2, 6, shift=0.2)
    score = mmd(x, y)
    h = score.details["bandwidth"]

    def mean_kernel(a, b, diagonal):
        k = torch.exp(-torch.cdist(a, b).square() / (2 * h**2))
        return (k.sum() - diagonal) / (len(a) * len(b) - diagonal)

    exact = mean_kernel(x, x, len(x)) + mean_kernel(y, y, len(y)) - 2 * mean_kernel(x, y, 0)
    assert float(exact) > 0
    assert score.value == pytest.approx(float(exact), rel=1e-6)


def test_symmetric_sums_equal_the_full_ones():
    # An odd size leaves the last block partial: the half-computed self-sum (a is b) must
    # equal the full one over a copy, to float32 rounding.
    from sbibench.metrics.mmd import _kernel_sum

    a = _normal(601, 3, 7).to(torch.float32)
    assert float(_kernel_sum(a, a)) == pytest.approx(float(_kernel_sum(a, a.clone())), rel=1e-6)
