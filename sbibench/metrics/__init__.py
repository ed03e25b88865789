"""Scores against exact posteriors and calibration checks: pure functions of sample sets."""

from sbibench.metrics.c2st import c2st
from sbibench.metrics.coverage import CoverageCurve, expected_coverage, tarp
from sbibench.metrics.mmd import median_bandwidth, mmd
from sbibench.metrics.moments import covariance_error, mean_error, nll_true_parameters
from sbibench.metrics.sbc import (
    UniformityTest,
    chi2_uniformity,
    ecdf_p_quantiles,
    ecdf_uniformity,
    rank_shape,
    sbc_ranks,
)
from sbibench.metrics.score import Estimate, noise_floor
from sbibench.metrics.wasserstein import wasserstein

__all__ = [
    "CoverageCurve",
    "Estimate",
    "UniformityTest",
    "c2st",
    "chi2_uniformity",
    "covariance_error",
    "ecdf_p_quantiles",
    "ecdf_uniformity",
    "expected_coverage",
    "mean_error",
    "median_bandwidth",
    "mmd",
    "nll_true_parameters",
    "rank_shape",
    "noise_floor",
    "sbc_ranks",
    "tarp",
    "wasserstein",
]
