"""CI regression checks: is a candidate's results table worse than a baseline's beyond noise?

For each cell (task, method, budget) the C2ST values of the two tables are paired by
(observation, seed). With d the candidate-minus-baseline differences, the check tests
H0: E[d] <= tolerance against H1: E[d] > tolerance with a one-sided z-test whose variance is the
larger of the differences' sample variance and twice the C2ST's own binomial variance (the
accuracy of a classifier on n held-out points has variance at most 1/(4n); the records carry it
as ``c2st_null_sd``), so two observations are enough for a verdict and one noisy pair cannot
pass as a regression. A cell is a regression when H0 is rejected at ``alpha``, an improvement
when the mirrored test rejects, and also a regression when its runs failed or vanished.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scipy import stats

from sbibench.results import load_results

__all__ = ["Cell", "Verdict", "check", "format_verdict"]

CELL = ["task", "method", "budget"]
PAIR = ["observation", "seed"]


@dataclass(frozen=True)
class Cell:
    """One (task, method, budget) compared."""

    task: str
    method: str
    budget: int
    baseline: float
    candidate: float
    pairs: int
    p_value: float
    verdict: str  # "regression", "improvement", "same", "failed", "missing"


@dataclass(frozen=True)
class Verdict:
    """Every cell, and the regressions and improvements among them."""

    cells: list[Cell]
    tolerance: float
    alpha: float

    @property
    def regressions(self) -> list[Cell]:
        return [c for c in self.cells if c.verdict in ("regression", "failed", "missing")]

    @property
    def improvements(self) -> list[Cell]:
        return [c for c in self.cells if c.verdict == "improvement"]


def _table(source: str | Path) -> Any:
    table = load_results(source)
    missing = [c for c in CELL + PAIR + ["c2st", "status"] if c not in table]
    if missing:
        raise ValueError(f"{source}: not an sbibench results table (missing {', '.join(missing)})")
    return table


def _compare(base: Any, cand: Any, tolerance: float, alpha: float) -> tuple[float, float, str]:
    merged = base.merge(cand, on=PAIR, suffixes=("_base", "_cand"))
    d = (merged["c2st_cand"] - merged["c2st_base"]).to_numpy(dtype=float)
    n = len(d)
    null_sd = merged[["c2st_null_sd_base", "c2st_null_sd_cand"]].to_numpy(dtype=float)
    binomial = float(max((null_sd**2).sum(1).mean(), 0.0)) if null_sd.size else 0.0
    if math.isnan(binomial):  # no null spread recorded: a C2ST on 1,000 points per class
        binomial = 2 * 0.25 / 2000
    variance = max(d.var(ddof=1) if n > 1 else 0.0, binomial, 1e-12)
    scale = math.sqrt(variance / n)
    worse = float(stats.norm.sf((d.mean() - tolerance) / scale))
    better = float(stats.norm.sf((-d.mean() - tolerance) / scale))
    verdict = "regression" if worse < alpha else "improvement" if better < alpha else "same"
    return min(worse, better), n, verdict


def check(
    baseline: str | Path, candidate: str | Path, tolerance: float = 0.02, alpha: float = 0.05
) -> Verdict:
    """Compare two results tables (run folders or results.csv files) cell by cell.

    Arguments:
        baseline: the reference results.
        candidate: the results under test.
        tolerance: C2ST increase tolerated before a cell counts as worse.
        alpha: level of each one-sided test.
    """
    if not 0 < alpha < 1 or tolerance < 0:
        raise ValueError(f"need 0 < alpha < 1 and tolerance >= 0, got {alpha}, {tolerance}")
    for name, path in (("baseline", baseline), ("candidate", candidate)):
        if not Path(path).exists():
            raise FileNotFoundError(f"{name} {path}: no such run folder or results.csv")
    base_table, cand_table = _table(baseline), _table(candidate)
    cells = []
    for key, base in base_table.groupby(CELL):
        task, method, budget = key
        cand = cand_table[
            (cand_table["task"] == task)
            & (cand_table["method"] == method)
            & (cand_table["budget"] == budget)
        ]
        base_ok = base[base["status"] == "ok"]
        cand_ok = cand[cand["status"] == "ok"]
        mean_base = float(base_ok["c2st"].mean()) if len(base_ok) else math.nan
        mean_cand = float(cand_ok["c2st"].mean()) if len(cand_ok) else math.nan
        if cand.empty:
            verdict, p, n = "missing", math.nan, 0
        elif len(cand_ok) < len(cand) and len(base_ok) == len(base):
            verdict, p, n = "failed", math.nan, 0
        elif base_ok.empty:
            verdict, p, n = "same", math.nan, 0
        else:
            p, n, verdict = _compare(base_ok, cand_ok, tolerance, alpha)
            if n == 0:
                verdict = "missing"
        cells.append(Cell(task, method, int(budget), mean_base, mean_cand, n, p, verdict))
    return Verdict(cells, tolerance, alpha)


def format_verdict(verdict: Verdict) -> str:
    """A table of regressions and improvements, and a closing line."""
    lines = [
        f"{'task':22}{'method':14}{'budget':>8}{'baseline':>10}{'candidate':>10}{'pairs':>7}{'p':>9}  verdict"
    ]
    for c in verdict.cells:
        lines.append(
            f"{c.task:22}{c.method:14}{c.budget:>8}{c.baseline:>10.3f}{c.candidate:>10.3f}"
            f"{c.pairs:>7}{c.p_value:>9.3g}  {c.verdict}"
        )
    lines.append(
        f"{len(verdict.regressions)} regression(s), {len(verdict.improvements)} improvement(s) "
        f"(C2ST tolerance {verdict.tolerance}, alpha {verdict.alpha})"
    )
    return "\n".join(lines)
