"""Scores against exact posteriors and calibration checks: pure functions of sample sets."""

from sbibench.metrics.c2st import c2st
from sbibench.metrics.mmd import median_bandwidth, mmd
from sbibench.metrics.score import Score, noise_floor
from sbibench.metrics.wasserstein import wasserstein

__all__ = ["Score", "c2st", "median_bandwidth", "mmd", "noise_floor", "wasserstein"]
