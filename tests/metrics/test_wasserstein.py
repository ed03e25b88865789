"""Known-answer tests for the Wasserstein distance."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from sbibench.metrics import wasserstein


def _normal(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("method", ["exact", "sliced"])
def test_w1_in_one_dimension_matches_scipy(method):
    x, y = _normal(400, 1, 0), 2.0 * _normal(250, 1, 1) + 0.5  # unequal sizes
    expected = wasserstein_distance(x[:, 0].numpy(), y[:, 0].numpy())
    assert wasserstein(x, y, p=1, method=method).value == pytest.approx(expected, rel=1e-9)


def test_exact_and_sliced_agree_where_they_should():
    # In 1-D every direction is +-1, so the sliced distance is the exact one, for any sizes.
    x, y = _normal(300, 1, 2), 0.5 * _normal(200, 1, 3) - 1.0
    exact = wasserstein(x, y, p=2, method="exact").value
    assert wasserstein(x, y, p=2, method="sliced", num_projections=7).value == pytest.approx(
        exact, rel=1e-9
    )
    # For equal sizes, 1-D W2 pairs order statistics.
    xs, ys = (
        torch.sort(_normal(300, 1, 4)[:, 0]).values,
        torch.sort(_normal(300, 1, 5)[:, 0]).values,
    )
    closed = math.sqrt(((xs - ys) ** 2).mean())
    assert wasserstein(xs[:, None], ys[:, None]).value == pytest.approx(closed, rel=1e-9)


def test_sliced_matches_its_closed_form_for_gaussians():
    # N(0, I) vs N(m, I): along a unit direction u the 1-D W2^2 is (u.m)^2, whose mean over the
    # sphere is |m|^2 / D. With 1,000 directions the Monte Carlo error on SW2^2 is about
    # 0.1 / sqrt(1000) ~ 0.004 (reported as projection_se) and the sampling error at n = 5,000
    # is of the same order; 0.02 on SW2 = 0.316 is about four standard errors.
    d, n = 10, 5000
    m = torch.zeros(d, dtype=torch.float64)
    m[0] = 1.0
    score = wasserstein(_normal(n, d, 6), _normal(n, d, 7) + m, method="sliced")
    assert score.method == "sliced" and score.details["num_projections"] == 1000
    assert abs(score.value - 1 / math.sqrt(d)) < 0.02
    assert 0 < score.details["projection_se"] < 0.01


def test_exact_w2_of_a_shift_is_the_shift_plus_the_sampling_bias():
    # For equal sizes and quadratic cost, translating y by m leaves the optimal matching
    # unchanged, so exactly W2^2(x, y + m) = W2^2(x, y) + |m|^2 - 2 m.(mean x - mean y): the
    # estimate approaches |m| as the bias W2^2(x, y) between same-law samples goes to zero.
    m = torch.tensor([1.0, 0.0], dtype=torch.float64)
    biases = []
    for n in (250, 1000):
        x, y = _normal(n, 2, 8 + n), _normal(n, 2, 9 + n)
        bias = wasserstein(x, y).value ** 2
        shifted = wasserstein(x, y + m).value ** 2
        identity = bias + 1.0 - 2.0 * float(m @ (x.mean(0) - y.mean(0)))
        assert shifted == pytest.approx(identity, rel=1e-8)
        biases.append(bias)
    # In 2-D E W2^2 between two n-samples of N(0, I) decays like log(n) / n: ~0.16 at 250.
    assert biases[1] < biases[0] < 0.3


def test_large_sets_use_exact_transport_on_a_stated_subsample():
    x, y = _normal(2500, 2, 10), _normal(2100, 2, 11)
    score = wasserstein(x, y, max_exact=2000)
    assert score.method == "exact-subsample"
    assert score.details["num_x"] == 2000 and score.details["num_y"] == 2000
    assert wasserstein(x[:500], y[:400]).method == "exact"


def test_unconverged_transport_raises_instead_of_returning():
    x, y = _normal(200, 2, 12), _normal(200, 2, 13)
    with pytest.raises(RuntimeError, match="did not converge"):
        wasserstein(x, y, num_iter_max=10)


def test_same_seed_same_subsample():
    x, y = _normal(300, 2, 14), _normal(300, 2, 15)
    a = wasserstein(x, y, max_exact=100, seed=1).value
    assert a == wasserstein(x, y, max_exact=100, seed=1).value
    assert a != wasserstein(x, y, max_exact=100, seed=2).value


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(p=3), "p must be 1 or 2"),
        (dict(method="sinkhorn"), "method must be one of"),
        (dict(method="sliced", p=0.5), "p must be >= 1"),
        (dict(method="sliced", num_projections=0), "num_projections must be"),
        (dict(max_exact=0), "max_exact must be"),
    ],
)
def test_bad_options_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        wasserstein(np.zeros((5, 2)), np.ones((5, 2)), **kwargs)


def test_bad_samples_raise_value_error():
    with pytest.raises(ValueError, match="y holds NaN or inf"):
        wasserstein(torch.zeros(5, 2), torch.full((5, 2), float("inf")))
    with pytest.raises(ValueError, match="same dimension"):
        wasserstein(torch.zeros(5, 2), torch.zeros(5, 1))


def test_one_dimension_is_exact_at_full_size_and_agrees_with_the_linear_programme():
    """In 1-D the sorted pairing is the optimal plan: W2 equals POT's network simplex on the
    same sets (unequal sizes too), and 10,000 points are solved whole, not subsampled."""
    import ot

    x, y = _normal(700, 1, 16), 1.5 * _normal(450, 1, 17) + 0.3
    a, b = np.full(700, 1 / 700), np.full(450, 1 / 450)
    simplex = ot.emd2(a, b, ot.dist(x.numpy(), y.numpy()), numItermax=10**7) ** 0.5
    score = wasserstein(x, y, max_exact=100)  # max_exact is for two or more dimensions
    assert score.method == "exact" and score.details["num_x"] == 700
    assert score.value == pytest.approx(simplex, rel=1e-9)
    big = wasserstein(_normal(10_000, 1, 18), _normal(10_000, 1, 19))
    assert big.method == "exact" and big.details["num_x"] == 10_000
