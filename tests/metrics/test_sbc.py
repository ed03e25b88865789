"""Tests for SBC ranks and the two uniformity tests, including their rejection rates."""

import numpy as np
import pytest
import torch

from sbibench.metrics import chi2_uniformity, ecdf_uniformity, sbc_ranks


def test_ranks_count_samples_below_the_truth():
    theta = torch.tensor([[0.0, 1.0], [5.0, -5.0]])
    samples = torch.tensor(
        [[[-1.0, 2.0], [1.0, 0.0], [0.5, 3.0]], [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]]
    )
    assert sbc_ranks(theta, samples).tolist() == [[1, 1], [3, 0]]


def test_ranks_of_a_statistic_see_the_dataset_axis():
    theta = torch.zeros(2, 1)
    samples = torch.tensor([[[1.0], [2.0]], [[1.0], [2.0]]])
    centres = torch.tensor([0.0, 1.5])

    def stat(t):  # (N, M, 1) -> (N, M, 2); depends on the dataset, like log q(theta | x_n)
        return torch.stack([t[..., 0], (t[..., 0] - centres[:, None]) ** 2], dim=-1)

    ranks = sbc_ranks(theta, samples, statistic=stat)
    assert ranks.tolist() == [[0, 0], [0, 2]]  # dataset 1: 2.25 exceeds both 0.25s


def test_ties_are_broken_at_random_within_range():
    theta = torch.zeros(2000, 1)
    samples = torch.zeros(2000, 9, 1)  # every sample ties with the truth
    ranks = sbc_ranks(theta, samples, seed=1)
    assert ranks.min() >= 0 and ranks.max() <= 9
    # Uniform on {0..9}: the mean is 4.5 with standard error 2.87 / sqrt(2000) = 0.064.
    assert abs(ranks.float().mean() - 4.5) < 0.3


def test_rank_and_statistic_shape_errors():
    with pytest.raises(ValueError, match=r"samples must have shape \(N, L, D\)"):
        sbc_ranks(torch.zeros(3, 2), torch.zeros(3, 5, 1))
    with pytest.raises(ValueError, match="statistic must map"):
        sbc_ranks(torch.zeros(3, 2), torch.zeros(3, 5, 2), statistic=lambda t: t.sum())
    with pytest.raises(ValueError, match="samples holds NaN"):
        sbc_ranks(torch.zeros(3, 1), torch.full((3, 5, 1), float("nan")))


def test_chi2_of_perfectly_flat_ranks_is_zero():
    ranks = np.tile(np.arange(100), 10)  # L = 99: ten of each value
    result = chi2_uniformity(ranks, 99, num_bins=20)
    assert result.statistic[0] == pytest.approx(0.0) and result.p_value[0] == pytest.approx(1.0)
    assert result.method == "chi2" and not result.rejected[0]


def test_bad_ranks_raise_value_error():
    with pytest.raises(ValueError, match=r"ranks must lie in \[0, num_samples=10\]"):
        chi2_uniformity(np.array([0, 11]), 10)
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        ecdf_uniformity(np.array([0, 1]), 0)
    with pytest.raises(ValueError, match="finite integers"):
        ecdf_uniformity(np.array([0.5, 1.0]), 10)
    with pytest.raises(ValueError, match="num_bins must be"):
        chi2_uniformity(np.array([0, 1]), 10, num_bins=50)
    with pytest.raises(ValueError, match="alpha must be"):
        ecdf_uniformity(np.array([0, 1]), 10, alpha=1.5)


def test_ecdf_band_has_its_stated_simultaneous_coverage(binomial_band):
    # Draw 2,000 uniform rank sets with N = 50, L = 19 and count how often the ECDF leaves the
    # band: the rate must lie in the 99.9% binomial interval of alpha (about 0.035 to 0.066).
    rng = np.random.default_rng(0)
    trials, alpha = 2000, 0.05
    result = ecdf_uniformity(rng.integers(0, 20, (50, trials)), 19, alpha=alpha)
    lo, hi = binomial_band(trials, alpha)
    assert lo <= result.rejected.mean() <= hi
    # The pointwise level is adjusted below alpha: between Bonferroni's alpha / (K - 1) and alpha.
    assert alpha / len(result.points) <= result.adjusted_level < alpha
    # The decision is the p-value's, and the band lies around the diagonal.
    assert np.array_equal(result.rejected, result.p_value <= alpha)
    assert np.all(result.lower <= result.points) and np.all(result.points <= result.upper)


def test_ecdf_catches_u_shaped_and_humped_ranks():
    rng = np.random.default_rng(1)
    u_shaped = np.where(rng.random(500) < 0.5, rng.integers(0, 15, 500), rng.integers(86, 101, 500))
    humped = rng.binomial(100, 0.5, 500)
    for ranks in (u_shaped, humped):
        assert ecdf_uniformity(ranks, 100).rejected[0]
        assert chi2_uniformity(ranks, 100).rejected[0]


def _rejection_rates(gaussian_sbc, repeats, seed, **kwargs):
    generator = torch.Generator().manual_seed(seed)
    rejected = {"chi2": [], "ecdf": []}
    for _ in range(repeats):
        theta, samples, _, _ = gaussian_sbc(generator, **kwargs)
        ranks = sbc_ranks(theta, samples)
        rejected["chi2"].append(chi2_uniformity(ranks, 100).rejected[0])
        rejected["ecdf"].append(ecdf_uniformity(ranks, 100).rejected[0])
    return {k: float(np.mean(v)) for k, v in rejected.items()}


@pytest.mark.slow
def test_exact_posterior_is_rejected_at_the_nominal_rate(gaussian_sbc, binomial_band):
    # 1,000 SBC experiments (N = 1,000, L = 100) with exact posterior samples: each test's
    # false-positive rate must lie in the 99.9% binomial interval of alpha = 0.05 (0.033-0.071).
    repeats = 1000
    rates = _rejection_rates(gaussian_sbc, repeats, seed=0)
    lo, hi = binomial_band(repeats, 0.05)
    for name, rate in rates.items():
        assert lo <= rate <= hi, (name, rate)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs", [dict(scale=0.5), dict(scale=2.0), dict(shift=0.5)], ids=["narrow", "wide", "shift"]
)
def test_miscalibrated_posteriors_are_rejected_with_high_power(gaussian_sbc, kwargs):
    # Power >= 0.9 at N = 1,000; 200 experiments estimate it to within ~0.02.
    rates = _rejection_rates(gaussian_sbc, 200, seed=1, **kwargs)
    for name, rate in rates.items():
        assert rate >= 0.9, (name, rate)
