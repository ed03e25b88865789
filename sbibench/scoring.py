"""The sample-based scores of one observation, with the options that fix them.

A method's samples and its noise floor (the same estimators between the reference and as many
fresh exact draws) must be computed with identical options, or the floor does not measure the
score's noise. Both go through :func:`sample_scores` here: evaluation calls it with a method's
samples, `sbibench.references` with exact draws when it builds the stored floors. The MMD
bandwidth is a property of the observation (the median heuristic on its reference samples),
not of the pair, so the score and its floor use the same kernel.

``SCORE_OPTIONS`` describes these options; it is stored beside the noise floors, and floors
computed under other options are refused rather than compared with today's scores.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

__all__ = ["FLOOR_SCORES", "SCORE_OPTIONS", "mmd_bandwidth", "sample_scores"]

FLOOR_SCORES = ("c2st", "mmd", "wasserstein")  # the sample-based scores, each with a floor
SCORE_OPTIONS = {
    "c2st": "c2st-mlp: 5 folds, seed 0, sbibench defaults, binomial null",
    "mmd": "unbiased MMD^2, Gaussian kernel, bandwidth: median heuristic of the observation's "
    "10,000 reference samples (1,000-point subsample, seed 0)",
    "wasserstein": "W2, exact optimal transport on seeded 2,000-point subsamples (seed 0)",
}


def mmd_bandwidth(reference: Tensor) -> float:
    """The MMD kernel's length scale for one observation: the median pairwise distance of its
    reference samples (N, D) (the whole set, so it does not depend on the sample size)."""
    from sbibench.metrics import median_bandwidth

    return median_bandwidth(reference, max_points=1000, seed=0)


def sample_scores(
    reference: Tensor, samples: Tensor, metrics: tuple[str, ...], bandwidth: float
) -> dict[str, Any]:
    """The scores named in ``metrics`` (from `FLOOR_SCORES`) between two sample sets.

    Arguments:
        reference: exact posterior samples (N, D).
        samples: the samples to score (N, D).
        metrics: which scores; others in the tuple are ignored.
        bandwidth: the MMD kernel's length scale, from `mmd_bandwidth`.

    Returns:
        ``c2st`` and ``c2st_null_sd`` (the binomial null's standard deviation), ``mmd``,
        ``wasserstein`` and ``wasserstein_method``, for those asked for.
    """
    from sbibench import metrics as m

    scores: dict[str, Any] = {}
    if "c2st" in metrics:
        result = m.c2st(reference, samples, seed=0, null="binomial")
        scores["c2st"] = result.value
        scores["c2st_null_sd"] = result.details["null_std"]
    if "mmd" in metrics:
        scores["mmd"] = m.mmd(reference, samples, bandwidth=bandwidth).value
    if "wasserstein" in metrics:
        result = m.wasserstein(reference, samples, seed=0)
        scores["wasserstein"] = result.value
        scores["wasserstein_method"] = result.method
    return scores
