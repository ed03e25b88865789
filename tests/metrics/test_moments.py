"""Known-answer tests for the exact-moment scores."""

import math

import pytest
import torch
from scipy.stats import chi2

from sbibench.metrics import covariance_error, mean_error, nll_true_parameters

COV = torch.tensor([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]], dtype=torch.float64)
MEAN = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


def _exact(n, seed, scale=1.0, shift=None):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=g, dtype=torch.float64)
    x = MEAN + scale * z @ torch.linalg.cholesky(COV).T
    return x if shift is None else x + shift


def test_mean_error_of_exact_samples_is_at_its_noise_level():
    # N * error^2 ~ chi2_3 for exact samples: bound it by the 99.9% quantile.
    score = mean_error(_exact(10_000, 0), MEAN, COV)
    assert score.value < math.sqrt(chi2.ppf(0.999, 3) / 10_000)
    assert score.details["exact_rms"] == pytest.approx(math.sqrt(3 / 10_000))


def test_mean_error_measures_a_shift_in_posterior_standard_deviations():
    # A shift of 0.5 L e_1 (C = L L^T) is 0.5 e_1 in whitened coordinates: Mahalanobis 0.5.
    # The sample mean's own error has rms sqrt(D / N) = 0.017; allow 4 of those.
    shift = 0.5 * torch.linalg.cholesky(COV)[:, 0]
    score = mean_error(_exact(10_000, 1, shift=shift), MEAN, COV)
    assert abs(score.value - 0.5) < 4 * math.sqrt(3 / 10_000)


@pytest.mark.parametrize("scale, expected", [(2.0, 3.0), (0.5, 0.75)])
def test_covariance_error_of_too_wide_and_too_narrow(scale, expected):
    # Variances scaled by s^2: whitened error |(s^2 - 1) I|_F / sqrt(D) = |s^2 - 1|. The exact
    # samples' own error has rms sqrt((D + 1) / (N - 1)) = 0.02 (times s^2); allow 5 of those.
    score = covariance_error(_exact(10_000, 2, scale=scale), COV)
    assert abs(score.value - expected) < 5 * scale**2 * score.details["exact_rms"]


def test_covariance_error_of_exact_samples_is_at_its_noise_level():
    score = covariance_error(_exact(10_000, 3), COV)
    assert score.value < 3 * score.details["exact_rms"]


def test_nll_of_true_parameters_matches_the_gaussian_density():
    post = torch.distributions.MultivariateNormal(MEAN, COV)
    theta = torch.stack([MEAN, MEAN + 1.0])
    score = nll_true_parameters(post.log_prob, theta)
    assert score.value == pytest.approx(float(-post.log_prob(theta).mean()))
    at_mode = 1.5 * math.log(2 * math.pi) + 0.5 * math.log(float(torch.linalg.det(COV)))
    assert nll_true_parameters(post.log_prob, MEAN[None]).value == pytest.approx(at_mode)


def test_simplex_samples_are_scored_in_the_covariance_range():
    """Dirichlet draws: 4 coordinates summing to 1, a covariance of rank 3, whitened on its
    range. 4,000 exact draws score like exact draws in 3-D: mean error sqrt(N) x value is
    chi with 3 degrees of freedom (P(> 5) = 1.5e-5), covariance error rms sqrt(4 / 3999) =
    0.032; draws twice too far from the mean (still on the simplex's plane) score 3."""
    alpha = torch.tensor([3.0, 5.0, 8.0, 14.0], dtype=torch.float64)
    mean = alpha / alpha.sum()
    cov = (torch.diag(mean) - torch.outer(mean, mean)) / (alpha.sum() + 1)
    draws = torch.distributions.Dirichlet(alpha).sample((4000,))
    m, c = mean_error(draws, mean, cov), covariance_error(draws, cov)
    assert m.details["rank"] == c.details["rank"] == 3
    assert m.details["exact_rms"] == pytest.approx(math.sqrt(3 / 4000))
    assert m.value < 5 * math.sqrt(1 / 4000)
    assert c.value < 3 * c.details["exact_rms"]
    assert 2.8 < covariance_error(mean + 2 * (draws - mean), cov).value < 3.2
    # half a posterior sd along theta_1 - theta_2 (the sum stays 1) is found
    direction = torch.tensor([1.0, -1.0, 0.0, 0.0], dtype=torch.float64)
    shift = 0.5 * direction / (direction @ torch.linalg.pinv(cov) @ direction).sqrt()
    assert mean_error(draws + shift, mean, cov).value == pytest.approx(0.5, abs=0.1)


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="covariance must be a finite"):
        mean_error(_exact(10, 0), MEAN, torch.eye(2))
    with pytest.raises(ValueError, match="positive semi-definite"):
        covariance_error(_exact(10, 0), -torch.eye(3))
    with pytest.raises(ValueError, match="mean must be a finite vector"):
        mean_error(_exact(10, 0), MEAN[:2], COV)
    with pytest.raises(ValueError, match="at least 2 rows"):
        covariance_error(_exact(1, 0), COV)
    with pytest.raises(ValueError, match="log_prob must return shape"):
        nll_true_parameters(lambda t: t, MEAN[None])
    with pytest.raises(ValueError, match="NaN"):
        nll_true_parameters(lambda t: torch.full((len(t),), float("nan")), MEAN[None])
