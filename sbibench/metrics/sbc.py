"""Simulation-based calibration (SBC): ranks of true parameters and tests of their uniformity.

Draw theta_n from the prior and x_n from the simulator, then L samples from the method's
posterior given x_n. If the posterior is exact, the rank of theta_n among its L samples
(the number of samples below it) is uniform on {0, ..., L}, for every coordinate and every
test statistic (Talts et al., 2018). Too narrow posteriors give U-shaped rank
histograms, too wide ones humps, biased ones slopes.

Two tests of uniformity, per dimension, return a :class:`UniformityTest`:

- :func:`chi2_uniformity`: Pearson's chi-square on binned ranks.
- :func:`ecdf_uniformity`: the simultaneous ECDF band of Säilynoja, Bürkner and Vehtari
  (2022). The ECDF at K - 1 points is compared with pointwise binomial intervals whose level
  gamma is adjusted so that the *whole* band holds the ECDF with probability 1 - alpha
  under uniformity. The joint law of the ECDF at the points is a Markov chain of binomial
  increments, so this probability is computed exactly by dynamic programming (their
  "optimisation" method) rather than by simulation; ranks are discrete, and the points sit
  on rank boundaries, where the binomial law is exact.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import special, stats
from torch import Tensor

from sbibench.metrics.score import as_calibration_draws

__all__ = [
    "UniformityTest",
    "sbc_ranks",
    "chi2_uniformity",
    "ecdf_uniformity",
    "ecdf_p_quantiles",
    "rank_shape",
]


@dataclass(frozen=True)
class UniformityTest:
    """The result of a test that ranks in {0, ..., L} are uniform, per dimension.

    Attributes:
        method: ``"chi2"`` or ``"ecdf-band"``.
        alpha: The test's level.
        statistic: Per dimension, shape (D,): the chi-square statistic, or for the ECDF test
            the smallest pointwise two-sided binomial tail probability (small is bad).
        p_value: Per dimension, shape (D,).
        rejected: Per dimension, shape (D,), ``p_value <= alpha`` (for the ECDF test, the
            same as the ECDF leaving the band somewhere).
        points: ECDF test only: the evaluation points z in (0, 1), shape (K - 1,).
        ecdf: ECDF test only: the fraction of ranks below each point, shape (K - 1, D).
        lower: ECDF test only: the band's lower edge at each point, shape (K - 1,).
        upper: ECDF test only: the band's upper edge at each point, shape (K - 1,).
        adjusted_level: ECDF test only: the pointwise level gamma of the band.
    """

    method: str
    alpha: float
    statistic: np.ndarray
    p_value: np.ndarray
    rejected: np.ndarray
    points: np.ndarray | None = None
    ecdf: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    adjusted_level: float | None = None


def sbc_ranks(
    theta: Tensor | np.ndarray,
    samples: Tensor | np.ndarray,
    statistic: Callable[[Tensor], Tensor] | None = None,
    seed: int = 0,
) -> Tensor:
    """SBC ranks of true parameters among posterior samples, vectorised over datasets.

    Arguments:
        theta: True parameters drawn from the prior, shape (N, D).
        samples: For each dataset, L posterior samples given its simulated data, shape
            (N, L, D) (for an amortized method, one batched call gives them all).
        statistic: Optional test statistic; ranks are then those of ``statistic(theta)``
            among ``statistic(samples)``. It receives a tensor of shape (N, M, D), with
            M = 1 for the true parameters and M = L for the samples, and returns (N, M) or
            (N, M, K). The leading axis indexes the datasets, so the statistic may depend
            on x_n, e.g. the method's log-density log q(theta | x_n).
        seed: Seed for breaking ties at random (ties occur only for discrete values).

    Returns:
        Integer ranks in {0, ..., L}, shape (N, D), or (N, K) with a statistic.

    References:
        Talts et al. (2018), Validating Bayesian inference algorithms with
        simulation-based calibration, arXiv:1804.06788.

    Example:
        >>> theta, samples = torch.randn(100, 2), torch.randn(100, 50, 2)
        >>> r = sbc_ranks(theta, samples)
        >>> r.shape, int(r.min()) >= 0, int(r.max()) <= 50
        (torch.Size([100, 2]), True, True)
    """
    theta, samples = as_calibration_draws(theta, samples)
    truth = theta[:, None, :]
    if statistic is not None:
        truth, samples = _apply(statistic, truth, 1), _apply(statistic, samples, samples.shape[1])
    below = (samples < truth).sum(1)
    ties = (samples == truth).sum(1)
    if bool(ties.any()):
        generator = torch.Generator().manual_seed(seed)
        u = torch.rand(ties.shape, generator=generator, dtype=torch.float64)
        below = below + torch.floor(u * (ties + 1)).long()
    return below


def _apply(statistic: Callable[[Tensor], Tensor], values: Tensor, m: int) -> Tensor:
    out = torch.as_tensor(statistic(values)).detach().to(torch.float64)
    if out.dim() == 2:
        out = out[..., None]
    if out.dim() != 3 or out.shape[:2] != values.shape[:2]:
        raise ValueError(
            f"statistic must map shape {tuple(values.shape)} to ({values.shape[0]}, {m}) or "
            f"({values.shape[0]}, {m}, K), got {tuple(out.shape)}"
        )
    if torch.isnan(out).any():
        raise ValueError("statistic returned NaN")
    return out


def _check_ranks(ranks: Tensor | np.ndarray, num_samples: int) -> np.ndarray:
    """Ranks as an integer array of shape (N, D), each in {0, ..., num_samples}."""
    if not isinstance(num_samples, int | np.integer) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    r = ranks.detach().cpu().numpy() if isinstance(ranks, Tensor) else np.asarray(ranks)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2 or r.shape[0] < 1:
        raise ValueError(f"ranks must have shape (N,) or (N, D), got {r.shape}")
    if not np.all(np.isfinite(r)) or np.any(r != np.round(r)):
        raise ValueError("ranks must be finite integers")
    if r.min() < 0 or r.max() > num_samples:
        raise ValueError(
            f"ranks must lie in [0, num_samples={num_samples}], got [{r.min()}, {r.max()}]"
        )
    return r.astype(np.int64)


def chi2_uniformity(
    ranks: Tensor | np.ndarray,
    num_samples: int,
    num_bins: int | None = None,
    alpha: float = 0.05,
) -> UniformityTest:
    """Pearson's chi-square test that ranks are uniform on {0, ..., L}, per dimension.

    The L + 1 rank values are grouped into ``num_bins`` contiguous bins of near-equal width;
    the expected count of a bin is N times its width over L + 1, so uneven widths are exact.

    Arguments:
        ranks: Ranks, shape (N,) or (N, D), e.g. from :func:`sbc_ranks`.
        num_samples: L, the number of posterior samples behind each rank.
        num_bins: Number of bins; default ``min(L + 1, 20, max(2, N // 5))``: 20 bins as
            Talts et al. suggest (few bins favour the smooth deviations miscalibration
            causes), and at least 5 expected counts per bin for the chi-square law.
        alpha: Level of the test.

    Returns:
        A :class:`UniformityTest` with method ``"chi2"`` and ``num_bins - 1`` degrees of freedom.

    Example:
        >>> r = torch.randint(0, 101, (1000, 2))
        >>> chi2_uniformity(r, 100).p_value.shape
        (2,)
    """
    r = _check_ranks(ranks, num_samples)
    n = r.shape[0]
    bins = min(num_samples + 1, 20, max(2, n // 5)) if num_bins is None else num_bins
    if not 2 <= bins <= num_samples + 1:
        raise ValueError(f"num_bins must be in [2, num_samples + 1], got {bins}")
    edges = np.round(np.arange(bins + 1) * (num_samples + 1) / bins).astype(np.int64)
    expected = n * np.diff(edges) / (num_samples + 1)
    which = np.searchsorted(edges, r, side="right") - 1  # bin of each rank, (N, D)
    counts = np.stack([np.bincount(col, minlength=bins) for col in which.T], axis=1)
    stat = ((counts - expected[:, None]) ** 2 / expected[:, None]).sum(0)
    p = stats.chi2.sf(stat, bins - 1)
    return UniformityTest("chi2", alpha, stat, p, p <= alpha)


def ecdf_uniformity(
    ranks: Tensor | np.ndarray,
    num_samples: int,
    alpha: float = 0.05,
    num_points: int | None = None,
) -> UniformityTest:
    """ECDF test with a simultaneous band (Säilynoja, Bürkner & Vehtari, 2022), per dimension.

    At K - 1 points z_i = j_i / (L + 1) (rank boundaries, near-evenly spaced) the count of
    ranks below j_i is Binomial(N, z_i) under uniformity. With t_i the two-sided binomial tail
    probability of the observed count, the band at level gamma admits counts with
    t_i >= gamma; gamma is the largest value for which the whole band holds the ECDF with
    probability >= 1 - alpha (computed exactly). The p-value is the null probability that
    min_i t_i is at most the observed one; below 1e-6 it is replaced by its union bound
    (K - 1) min_i t_i, which does not change any decision at a sensible alpha.

    Arguments:
        ranks: Ranks, shape (N,) or (N, D), e.g. from :func:`sbc_ranks`.
        num_samples: L, the number of posterior samples behind each rank.
        alpha: Level of the simultaneous band and of the test.
        num_points: K, default ``min(L + 1, 100)``; at most L + 1.

    Returns:
        A :class:`UniformityTest` with method ``"ecdf-band"``, the band and the ECDF.

    References:
        Säilynoja, Bürkner & Vehtari (2022), Graphical test for discrete uniformity and its
        applications in goodness-of-fit evaluation and multiple sample comparison,
        Statistics and Computing 32:32.

    Example:
        >>> r = torch.randint(0, 101, (500, 1))
        >>> t = ecdf_uniformity(r, 100)
        >>> t.lower.shape == t.points.shape, 0 < t.adjusted_level < 0.05
        (True, True)
    """
    r = _check_ranks(ranks, num_samples)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    k = min(num_samples + 1, 100) if num_points is None else num_points
    if not 2 <= k <= num_samples + 1:
        raise ValueError(f"num_points must be in [2, num_samples + 1], got {k}")
    n = r.shape[0]
    bounds, z, gamma, lower, upper = _band(n, num_samples + 1, k, float(alpha))
    counts = (r[None, :, :] < bounds[:, None, None]).sum(1)  # (K - 1, D)
    table = _tail_table(n, num_samples + 1, k)
    tails = np.take_along_axis(table, counts, axis=1)  # (K - 1, D)
    t_obs = tails.min(0)
    p = np.array([_p_of_tail(n, z, table, t) for t in t_obs])
    return UniformityTest(
        "ecdf-band",
        alpha,
        t_obs,
        p,
        t_obs < gamma,
        points=z,
        ecdf=counts / n,
        lower=lower / n,
        upper=upper / n,
        adjusted_level=gamma,
    )


def _p_of_tail(n: int, z: np.ndarray, table: np.ndarray, t: float) -> float:
    """P(min_i t_i <= t) under uniformity: the ECDF test's p-value, increasing in t."""
    # P(min t <= t) <= (K - 1) t (union bound): far out in the tail, where the exact
    # computation is slow and 1 - P(inside) loses all precision, report that bound.
    bound = min(1.0, len(z) * float(t))
    if bound <= 1e-6:
        return bound
    return float(np.clip(1.0 - _prob_inside(n, z, *_interval(table, t, strict=True)), 0.0, 1.0))


def ecdf_p_quantiles(
    ranks: Tensor | np.ndarray,
    num_samples: int,
    quantiles: tuple[float, ...] = (0.05, 0.95),
    num_resamples: int = 200,
    seed: int = 0,
    num_points: int | None = None,
) -> np.ndarray:
    """Quantiles of the smallest ECDF-test p-value over the columns of ``ranks`` when the N
    datasets (rows, resampled together across columns) are drawn again with replacement.

    The spread this gives is SBC's own: how much the p-value of the same fit moves with the
    draw of its N datasets. The ECDF test's p-value is an increasing function of its
    statistic t (the smallest pointwise tail probability), the same function for every
    column of one (N, L, K), so the quantiles of the smallest t over the resamples map to
    those of the smallest p-value with one exact computation each.

    Arguments:
        ranks: Ranks of one fit, shape (N, T): e.g. its D parameters' SBC ranks beside its
            coverage ranks, all in {0, ..., L}.
        num_samples: L.
        quantiles: Which quantiles, each in [0, 1].
        num_resamples: B, the bootstrap resamples.
        seed: Seed of the resampling.
        num_points: K, as in :func:`ecdf_uniformity`.

    Returns:
        The quantiles of min over columns of the ECDF p-value, shape (len(quantiles),).

    Example:
        >>> r = np.random.default_rng(0).integers(0, 101, (500, 2))
        >>> lo, hi = ecdf_p_quantiles(r, 100)
        >>> bool(0 <= lo <= hi <= 1)
        True
    """
    r = _check_ranks(ranks, num_samples)
    if not all(0 <= q <= 1 for q in quantiles):
        raise ValueError(f"quantiles must lie in [0, 1], got {quantiles!r}")
    if not isinstance(num_resamples, int | np.integer) or num_resamples < 1:
        raise ValueError(f"num_resamples must be a positive integer, got {num_resamples!r}")
    k = min(num_samples + 1, 100) if num_points is None else num_points
    if not 2 <= k <= num_samples + 1:
        raise ValueError(f"num_points must be in [2, num_samples + 1], got {k}")
    n = r.shape[0]
    bounds = _points(num_samples + 1, k)
    z = bounds / (num_samples + 1)
    table = _tail_table(n, num_samples + 1, k)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=num_resamples).astype(np.float64)
    smallest = np.full(num_resamples, np.inf)
    for column in r.T:
        onehot = np.zeros((n, num_samples + 1))
        onehot[np.arange(n), column] = 1.0
        below = np.cumsum(weights @ onehot, axis=1)[:, bounds - 1]  # (B, K - 1)
        counts = np.rint(below).astype(np.int64)
        tails = table[np.arange(len(bounds))[None, :], counts]
        smallest = np.minimum(smallest, tails.min(1))
    t = np.quantile(smallest, quantiles)
    return np.array([_p_of_tail(n, z, table, value) for value in t])


def rank_shape(ranks: Tensor | np.ndarray, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The shape of a rank histogram as two z-scores per dimension: bias and dispersion.

    With u = r / L, the bias statistic is the mean of u - 1/2 and the dispersion statistic
    the mean of |u - 1/2| minus its value under uniformity; each is divided by its exact
    standard error under uniformity on {0, ..., L} (so each is about N(0, 1) for an exact
    posterior). Bias > 0: the true parameters rank high among the samples, the posterior
    sits too low (< 0: too high). Dispersion > 0: ranks pile at both edges, a U shape, the
    posterior is too narrow (under-dispersed, overconfident); < 0: a hump, too wide
    (over-dispersed, conservative). A posterior shifted to one side also raises the
    dispersion statistic; its bias statistic is then the larger.

    Arguments:
        ranks: Ranks, shape (N,) or (N, D), in {0, ..., L}.
        num_samples: L.

    Returns:
        ``(bias, dispersion)``, each shape (D,).

    Example:
        >>> edges = np.array([0, 100] * 50)  # every rank at an edge: far too narrow
        >>> bias, dispersion = rank_shape(edges, 100)
        >>> round(float(bias[0]), 6), bool(dispersion[0] > 10)
        (0.0, True)
    """
    r = _check_ranks(ranks, num_samples)
    values = np.arange(num_samples + 1) / num_samples - 0.5
    u = r / num_samples - 0.5
    out = []
    for g, null in ((u, values), (np.abs(u), np.abs(values))):
        se = null.std() / np.sqrt(r.shape[0])  # population sd of g under uniformity
        out.append((g.mean(0) - null.mean()) / se)
    return out[0], out[1]


@functools.lru_cache(maxsize=32)
def _tail_table(n: int, values: int, k: int) -> np.ndarray:
    """t_i(c) = min(1, 2 min(P(C <= c), P(C >= c))) for C ~ Bin(n, z_i): shape (K - 1, n + 1)."""
    z = _points(values, k) / values
    c = np.arange(n + 1)[None, :]
    cdf = stats.binom.cdf(c, n, z[:, None])
    sf = stats.binom.sf(c - 1, n, z[:, None])
    table = np.minimum(1.0, 2.0 * np.minimum(cdf, sf))
    table.flags.writeable = False
    return table


def _points(values: int, k: int) -> np.ndarray:
    """Rank boundaries j_i = round(i * values / k), i = 1..k-1, strictly inside (0, values)."""
    j = np.unique(np.round(np.arange(1, k) * values / k).astype(np.int64))
    return j[(j > 0) & (j < values)]


def _interval(table: np.ndarray, level: float, strict: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the first and last count whose tail probability is >= (or >) ``level``."""
    ok = table > level if strict else table >= level
    any_ok = ok.any(1)
    lo = np.where(any_ok, ok.argmax(1), 1)
    hi = np.where(any_ok, ok.shape[1] - 1 - ok[:, ::-1].argmax(1), 0)  # empty when lo > hi
    return lo, hi


def _prob_inside(n: int, z: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """P(lo_i <= C_i <= hi_i for all i) under uniformity, C_i the count of ranks below z_i.

    C_i - C_{i-1} given C_{i-1} is Binomial(n - C_{i-1}, (z_i - z_{i-1}) / (1 - z_{i-1})),
    so the probability is propagated point by point over the admitted counts only.
    """
    log_fact = _log_factorials(n)
    prev_counts, prev_prob, prev_z = np.zeros(1, dtype=np.int64), np.ones(1), 0.0
    for zi, a, b in zip(z, lo, hi, strict=True):
        if a > b:
            return 0.0
        counts = np.arange(a, b + 1)
        q = (zi - prev_z) / (1.0 - prev_z)
        trials = (n - prev_counts)[:, None]
        step = counts[None, :] - prev_counts[:, None]
        valid = (step >= 0) & (step <= trials)
        s, t = np.where(valid, step, 0), np.where(valid, trials, 0)
        logpmf = log_fact[t] - log_fact[s] - log_fact[t - s] + s * np.log(q)
        if q < 1.0:
            logpmf += (t - s) * np.log1p(-q)
        prev_prob = prev_prob @ np.where(valid, np.exp(logpmf), 0.0)
        prev_counts, prev_z = counts, zi
    return float(prev_prob.sum())


@functools.lru_cache(maxsize=8)
def _log_factorials(n: int) -> np.ndarray:
    """log(k!) for k = 0..n."""
    return special.gammaln(np.arange(n + 1) + 1.0)


@functools.lru_cache(maxsize=32)
def _band(
    n: int, values: int, k: int, alpha: float
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
    """Points (as rank boundaries and as z), adjusted level gamma and the band's count limits."""
    bounds = _points(values, k)
    z = bounds / values
    table = _tail_table(n, values, k)
    # The largest candidate level whose band has simultaneous coverage >= 1 - alpha.
    # Coverage falls as the level rises, so bisect. Each t_i is a valid p-value
    # (P(t_i < g) <= g), so by Bonferroni every level <= alpha / (K - 1) qualifies: search
    # from the largest candidate below that bound up to alpha.
    floor = alpha / max(len(z), 1)
    below = table[(table <= floor) & (table > 0)]
    start = below.max() if below.size else 0.0
    candidates = np.unique(table[(table <= alpha) & (table >= start) & (table > 0)])
    lo_i, hi_i = 0, len(candidates) - 1
    gamma = 0.0
    while lo_i <= hi_i:
        mid = (lo_i + hi_i) // 2
        if _prob_inside(n, z, *_interval(table, candidates[mid], strict=False)) >= 1 - alpha:
            gamma, lo_i = float(candidates[mid]), mid + 1
        else:
            hi_i = mid - 1
    lower, upper = _interval(table, gamma, strict=False)
    for arr in (bounds, z, lower, upper):
        arr.flags.writeable = False
    return bounds, z, gamma, lower, upper
