"""Expected coverage of credible regions: HPD regions from a log-density, and TARP from samples.

For a credibility level c, the expected coverage is the probability, over (theta, x) from
the joint, that theta lies in the method's level-c credible region for x. A calibrated
posterior has coverage c at every c; coverage below c is overconfidence, above it is
conservativeness. Both estimators reduce to a rank: the number r_n of the L posterior
samples for x_n that lie "inside" relative to the true theta_n. For an exact posterior r_n
is uniform on {0, ..., L}, so the coverage curve is the ECDF of r_n / (L + 1) and the
uniformity tests of :mod:`sbibench.metrics.sbc` apply unchanged to ``curve.ranks``.

- Highest posterior density (Hermans et al., 2022): r_n counts samples with a higher
  density than theta_n, so theta_n is in the level-c HPD region iff r_n / L < c. Needs
  ``log_prob``.
- TARP (Lemos et al., 2023): for a random reference point theta_ref, r_n counts samples
  closer to theta_ref than theta_n is; calibration for random references is necessary and
  sufficient for an exact posterior. Needs samples only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from sbibench.metrics.score import as_calibration_draws, as_samples

__all__ = ["CoverageCurve", "expected_coverage", "tarp"]


@dataclass(frozen=True)
class CoverageCurve:
    """Empirical coverage at a grid of credibility levels.

    Attributes:
        method: ``"hpd"`` or ``"tarp"``.
        levels: Credibility levels c, shape (K,).
        coverage: Fraction of true parameters inside their level-c region, shape (K,):
            the fraction of ranks with ``r < c (L + 1)``.
        ranks: Per dataset, the number of posterior samples inside, shape (N,), in
            {0, ..., L}; uniform for an exact posterior (test with
            :func:`~sbibench.metrics.ecdf_uniformity`).
        num_samples: L, the posterior samples per dataset.
    """

    method: str
    levels: np.ndarray
    coverage: np.ndarray
    ranks: np.ndarray
    num_samples: int

    @property
    def max_deviation(self) -> float:
        """Largest |coverage - level| over the grid; 0 for a perfectly calibrated curve."""
        return float(np.abs(self.coverage - self.levels).max())

    @property
    def mean_deviation(self) -> float:
        """Mean of coverage - level over the grid, signed: > 0 conservative (regions too
        wide), < 0 overconfident (too narrow); about 0 for a calibrated curve."""
        return float((self.coverage - self.levels).mean())


def _curve(
    method: str, ranks: Tensor, num_samples: int, levels: np.ndarray | None
) -> CoverageCurve:
    grid = np.linspace(0.0, 1.0, 101) if levels is None else np.asarray(levels, dtype=np.float64)
    if grid.ndim != 1 or np.any((grid < 0) | (grid > 1)) or not np.all(np.isfinite(grid)):
        raise ValueError("levels must be a 1-D array of credibility levels in [0, 1]")
    r = ranks.numpy()
    coverage = (r[None, :] < grid[:, None] * (num_samples + 1)).mean(1)
    return CoverageCurve(method, grid, coverage, r, num_samples)


def expected_coverage(
    theta: Tensor | np.ndarray,
    samples: Tensor | np.ndarray,
    log_prob: Callable[[Tensor], Tensor],
    levels: np.ndarray | None = None,
) -> CoverageCurve:
    """Expected coverage of highest-posterior-density regions (Hermans et al., 2022).

    Arguments:
        theta: True parameters drawn from the prior, shape (N, D).
        samples: L samples from the method's posterior for each dataset, shape (N, L, D).
        log_prob: The method's log-density; receives a tensor (N, M, D) with row n
            evaluated under the posterior given x_n (M = 1 for ``theta``, M = L for the
            samples) and returns (N, M).
        levels: Credibility levels, shape (K,), in [0, 1]; default 0, 0.01, ..., 1.

    Returns:
        A :class:`CoverageCurve` with method ``"hpd"``; ``ranks`` counts, per dataset, the
        samples of higher density than the true parameters.

    References:
        Hermans et al. (2022), A trust crisis in simulation-based inference? Your posterior
        approximations can be unfaithful, TMLR.

    Example:
        >>> post = torch.distributions.Normal(0.0, 1.0)
        >>> theta, samples = torch.randn(400, 1), torch.randn(400, 200, 1)
        >>> curve = expected_coverage(theta, samples, lambda t: post.log_prob(t).sum(-1))
        >>> curve.max_deviation < 0.1
        True
    """
    theta, samples = as_calibration_draws(theta, samples)
    if not callable(log_prob):
        raise TypeError(f"log_prob must be callable, got {type(log_prob).__name__}")
    n, num_samples = samples.shape[:2]
    with torch.no_grad():
        lp_true = torch.as_tensor(log_prob(theta[:, None, :])).to(torch.float64)
        lp_samples = torch.as_tensor(log_prob(samples)).to(torch.float64)
    if lp_true.shape != (n, 1) or lp_samples.shape != (n, num_samples):
        raise ValueError(
            f"log_prob must map (N, M, D) to (N, M); got {tuple(lp_true.shape)} for theta and "
            f"{tuple(lp_samples.shape)} for samples"
        )
    if torch.isnan(lp_true).any() or torch.isnan(lp_samples).any():
        raise ValueError("log_prob returned NaN")
    ranks = (lp_samples > lp_true).sum(1)
    return _curve("hpd", ranks, num_samples, levels)


def tarp(
    theta: Tensor | np.ndarray,
    samples: Tensor | np.ndarray,
    references: Tensor | np.ndarray | None = None,
    normalize: bool = True,
    levels: np.ndarray | None = None,
    seed: int = 0,
) -> CoverageCurve:
    """Expected coverage by Tests of Accuracy with Random Points (Lemos et al., 2023).

    Arguments:
        theta: True parameters drawn from the prior, shape (N, D).
        samples: L samples from the method's posterior for each dataset, shape (N, L, D).
        references: One reference point per dataset, shape (N, D); default: uniform in the
            bounding box of ``theta`` (after normalisation), drawn with ``seed``.
        normalize: Z-score parameters, samples and references with the mean and standard
            deviation of ``theta`` (the prior's scale) before measuring Euclidean distances.
        levels: Credibility levels, shape (K,), in [0, 1]; default 0, 0.01, ..., 1.
        seed: Seed of the default references.

    Returns:
        A :class:`CoverageCurve` with method ``"tarp"``; ``ranks`` counts, per dataset, the
        samples closer to the reference point than the true parameters.

    References:
        Lemos et al. (2023), Sampling-based accuracy testing of posterior estimators for
        general inference, ICML.

    Example:
        >>> mu = torch.randn(400, 1)
        >>> theta = mu + torch.randn(400, 1)
        >>> samples = mu[:, None, :] + torch.randn(400, 200, 1)
        >>> tarp(theta, samples).max_deviation < 0.1
        True
    """
    theta, samples = as_calibration_draws(theta, samples)
    n, num_samples, dim = samples.shape
    if normalize:
        mean = theta.mean(0)
        std = theta.std(0) if n > 1 else torch.ones(dim, dtype=theta.dtype)
        std = torch.where(std > 0, std, torch.ones_like(std))
        theta, samples = (theta - mean) / std, (samples - mean) / std
    if references is None:
        generator = torch.Generator().manual_seed(seed)
        low, high = theta.min(0).values, theta.max(0).values
        u = torch.rand(n, dim, generator=generator, dtype=theta.dtype)
        refs = low + u * (high - low)
    else:
        refs = as_samples(references, "references")
        if refs.shape != theta.shape:
            raise ValueError(
                f"references must have the shape of theta {tuple(theta.shape)}, got {tuple(refs.shape)}"
            )
        if normalize:
            refs = (refs - mean) / std
    d_true = (theta - refs).norm(dim=-1)  # (N,)
    d_samples = (samples - refs[:, None, :]).norm(dim=-1)  # (N, L)
    ranks = (d_samples < d_true[:, None]).sum(1)
    return _curve("tarp", ranks, num_samples, levels)
