"""Ranks that say what they know: each method's mean rank by the headline score, with a
bootstrap interval, and the groups of methods the data cannot tell apart.

A *block* is one (task, budget, observation): on each block the competing methods are ranked
by their score (1 is best; ties share the mean rank; a method whose run on the block failed
or left no record ranks last), the score of a method fitted with several seeds being its
mean over them. A method's mean rank is over the blocks of the tasks asked for. Only methods
run on every task are ranked: a method the suite runs on some tasks only (a set embedding)
would otherwise rank last where it was never meant to run; it is listed apart (`partial`).

- **Interval**: 95% percentile bootstrap, resampling the observations of each task (so
  each task keeps its weight) and, within each, each method's seeds, then ranking again. A
  rank is not a smooth statistic: resampled seeds can shift every replicate to one side of
  the point estimate (a method whose seeds straddle another's score), so the interval is
  widened to include the point estimate.
- **Groups**: Friedman's test over the blocks; where it rejects equal ranks (p < 0.05),
  Nemenyi's critical difference CD = q(0.05, k) sqrt(k (k + 1) / (6 N)) for k methods on N
  blocks (Demšar, JMLR 2006): methods whose mean ranks differ by less than CD cannot be
  told apart. Each maximal run of such methods, in rank order, is a group, named by a
  letter; a method in several groups carries each letter. Where the test does not reject,
  all methods are one group.

References are not competitors: the exact posterior and the methods that use the exact
likelihood (`REFERENCES`, by method name) are left out of the ranks and shown beside them.
"""

from __future__ import annotations

import dataclasses
import math
import string
from typing import Any

import numpy as np

__all__ = ["REFERENCES", "Ranking", "critical_difference", "groups", "rank_methods"]

# Methods that know more than simulations: the exact posterior, MCMC on the exact likelihood
# and variational inference on it.
REFERENCES = ("exact", "oracle_mcmc", "amortized_vi")
_BOOTSTRAP = 1000


@dataclasses.dataclass
class Ranking:
    """The ranks of the methods on some blocks, best first.

    Attributes:
        methods: the methods (labels), by mean rank.
        mean_rank: each method's mean rank, (k,).
        low, high: its 95% bootstrap interval, (k,) each.
        score: each method's mean score over the blocks it has, (k,).
        groups: each method's group letters ("a", "ab").
        blocks: N, the blocks ranked on.
        friedman_p: Friedman's test p-value (NaN for fewer than 2 methods or blocks).
        cd: Nemenyi's critical difference (NaN where not computed).
        partial: competing methods not run on every task, left out of the ranks.
    """

    methods: list[str]
    mean_rank: np.ndarray
    low: np.ndarray
    high: np.ndarray
    score: np.ndarray
    groups: list[str]
    blocks: int
    friedman_p: float
    cd: float
    partial: list[str] = dataclasses.field(default_factory=list)


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi's critical difference of mean ranks for ``k`` methods on ``n`` blocks.

    Example:
        >>> round(critical_difference(10, 80), 3)  # Demšar's q(0.05, 10) = 3.164
        1.514
    """
    from scipy.stats import studentized_range

    q = studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


def groups(mean_rank: np.ndarray, cd: float) -> list[str]:
    """Letters of the groups of methods (sorted by ``mean_rank``) whose mean ranks all lie
    within ``cd`` of each other: each maximal run of consecutive methods is one group.

    Example:
        >>> groups(np.array([1.0, 1.5, 3.0, 3.2, 6.0]), cd=1.6)
        ['a', 'ab', 'bc', 'c', 'd']
    """
    k = len(mean_rank)
    runs: list[tuple[int, int]] = []
    for first in range(k):
        last = first
        while last + 1 < k and mean_rank[last + 1] - mean_rank[first] < cd:
            last += 1
        if not runs or last > runs[-1][1]:  # not inside the run before
            runs.append((first, last))
    letters = [""] * k
    for letter, (first, last) in zip(_letters(len(runs)), runs, strict=True):
        for i in range(first, last + 1):
            letters[i] += letter
    return letters


def _letters(n: int) -> list[str]:
    alphabet = string.ascii_lowercase
    return [alphabet[i] if i < 26 else alphabet[i // 26 - 1] + alphabet[i % 26] for i in range(n)]


def _rank_rows(values: np.ndarray, lower_better: bool) -> np.ndarray:
    """Ranks along the last axis (1 best, ties averaged, NaN last)."""
    from scipy.stats import rankdata

    keyed = values if lower_better else -values
    return rankdata(np.where(np.isnan(keyed), np.inf, keyed), axis=-1)


def rank_methods(
    table: Any, column: str, lower_better: bool = True, seed: int = 0
) -> Ranking | None:
    """Rank the competing methods of ``table`` (records of any tasks, one budget) by
    ``column``; None where fewer than two methods or no blocks remain.

    Arguments:
        table: records (`sbibench.load_results`), one budget; references are left out.
        column: the score ranked by.
        lower_better: the score's direction.
        seed: the bootstrap's seed.
    """
    competing = table[~table["method_name"].isin(REFERENCES)]
    tasks = set(table["task"])
    ran = competing.groupby("method")["task"].agg(set)
    methods = sorted(m for m, on in ran.items() if on == tasks)
    partial = sorted(m for m, on in ran.items() if on != tasks)
    ok = competing[(competing["status"] == "ok") & competing["method"].isin(methods)]
    if len(methods) < 2 or ok.empty:
        return None
    per_seed = ok.groupby(["task", "observation", "method", "seed"])[column].mean()
    blocks = sorted(ok[["task", "observation"]].drop_duplicates().itertuples(index=False))
    seeds = max(per_seed.groupby(level=[0, 1, 2]).size().max(), 1)
    # values[block, method, seed], NaN where absent
    values = np.full((len(blocks), len(methods), seeds), np.nan)
    row = {block: i for i, block in enumerate(blocks)}
    col = {method: j for j, method in enumerate(methods)}
    count = np.zeros((len(blocks), len(methods)), dtype=int)
    for (task, observation, method, _), value in per_seed.items():
        i, j = row[(task, observation)], col[method]
        values[i, j, count[i, j]] = value
        count[i, j] += 1
    with np.errstate(all="ignore"):
        point = np.nanmean(values, axis=2) if seeds > 1 else values[:, :, 0]
    ranks = _rank_rows(point, lower_better)
    mean_rank = ranks.mean(axis=0)
    low, high = _bootstrap(values, count, [b[0] for b in blocks], lower_better, seed)
    low, high = np.minimum(low, mean_rank), np.maximum(high, mean_rank)
    with np.errstate(all="ignore"):
        score = np.nanmean(point, axis=0)
    order = np.argsort(mean_rank, kind="stable")
    n, k = len(blocks), len(methods)
    friedman_p, cd = _friedman(ranks, n, k)
    letters = groups(mean_rank[order], cd if friedman_p < 0.05 else math.inf)
    return Ranking(
        methods=[methods[j] for j in order], mean_rank=mean_rank[order], low=low[order],
        high=high[order], score=score[order], groups=letters, blocks=n,
        friedman_p=friedman_p, cd=cd, partial=partial,
    )  # fmt: skip


def _friedman(ranks: np.ndarray, n: int, k: int) -> tuple[float, float]:
    """Friedman's chi-square test of equal mean ranks (p), and Nemenyi's CD."""
    from scipy.stats import chi2

    if n < 2 or k < 2:
        return math.nan, math.nan
    mean_rank = ranks.mean(axis=0)
    statistic = 12 * n / (k * (k + 1)) * (np.sum(mean_rank**2) - k * (k + 1) ** 2 / 4)
    return float(chi2.sf(statistic, k - 1)), critical_difference(k, n)


def _bootstrap(
    values: np.ndarray, count: np.ndarray, task_of: list[str], lower_better: bool, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile interval of each method's mean rank: observations resampled within
    each task, each method's seeds within each observation."""
    rng = np.random.default_rng(seed)
    by_task: dict[str, list[int]] = {}
    for i, task in enumerate(task_of):
        by_task.setdefault(task, []).append(i)
    n_blocks, k, seeds = values.shape
    means = np.empty((_BOOTSTRAP, k))
    for b in range(_BOOTSTRAP):
        rows = np.concatenate([rng.choice(idx, size=len(idx)) for idx in by_task.values()])
        chosen, have = values[rows], count[rows]
        if seeds > 1:  # resample each method's seeds: as many draws as it has seeds
            pick = (rng.random((len(rows), k, seeds)) * np.maximum(have, 1)[..., None]).astype(int)
            drawn = np.take_along_axis(chosen, pick, axis=2)
            drawn[np.arange(seeds)[None, None, :] >= have[..., None]] = np.nan
            with np.errstate(all="ignore"):
                point = np.nanmean(drawn, axis=2)
        else:
            point = chosen[:, :, 0]
        means[b] = _rank_rows(point, lower_better).mean(axis=0)
    return np.percentile(means, 2.5, axis=0), np.percentile(means, 97.5, axis=0)
