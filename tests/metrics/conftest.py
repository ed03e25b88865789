"""Shared pieces of the calibration tests: a conjugate Gaussian SBC model and binomial bands.

The model is theta ~ N(0, 1), x | theta ~ N(theta, 1), whose exact posterior is N(x / 2, 1 / 2);
miscalibrated posteriors scale its standard deviation or shift its mean.
"""

import math

import pytest
import torch
from scipy.stats import binom

POSTERIOR_SD = math.sqrt(0.5)


def _gaussian_sbc(generator, n=1000, num_samples=100, scale=1.0, shift=0.0):
    """True parameters, posterior samples (N, L, 1), and the posterior mean and sd used."""
    theta = torch.randn(n, 1, generator=generator, dtype=torch.float64)
    x = theta + torch.randn(n, 1, generator=generator, dtype=torch.float64)
    mean, sd = x / 2 + shift * POSTERIOR_SD, scale * POSTERIOR_SD
    noise = torch.randn(n, num_samples, 1, generator=generator, dtype=torch.float64)
    return theta, mean[:, None, :] + sd * noise, mean, sd


def _binomial_band(trials, p, level=0.999):
    """Two-sided `level` interval of a rejection rate: lower, upper."""
    lo, hi = binom.interval(level, trials, p)
    return lo / trials, hi / trials


@pytest.fixture
def gaussian_sbc():
    """Draw (theta, posterior samples, posterior mean, posterior sd) of the Gaussian model."""
    return _gaussian_sbc


@pytest.fixture
def binomial_band():
    """The 99.9% binomial interval of a rejection rate."""
    return _binomial_band
