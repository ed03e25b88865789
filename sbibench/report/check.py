"""CI regression checks: is a candidate's results table worse than a baseline's beyond noise?

A cell is a (task, method, budget). In every cell the baseline has, each column of the score
registry (`sbibench.scoring`) that carries a `~sbibench.scoring.Rule` is judged by its rule,
on the records whose status is ok, with its direction (lower or higher is better) taken from
the registry:

- **noise** (C2ST): records are paired by (observation, seed); d is the change towards worse
  (candidate - baseline where lower is better), n the pairs. The noise sd of the mean change
  is ``sqrt(max(mean(s_b² + s_c²), var(d)) / n)``, with s the sd each record carries in the
  rule's ``needs`` column (``c2st_noise_sd``: the noise sd of a classifier's accuracy, its
  training included, `sbibench.metrics.c2st`) and var(d) the pairs' sample variance (n > 1; it
  holds a method's own seed-to-seed spread). A record written before ``needs`` existed is
  read through the rule's ``fallback`` (``c2st_null_sd``, the binomial sd of the held-out
  points alone, smaller where the classifier's training adds noise), and the finding's reason
  says how many records did so. A **regression** when mean(d) > tolerance + k x sd, an
  **improvement** when mean(d) < -(tolerance + k x sd).
- **p_value** (SBC, ``sbc_ecdf_p_min``): each fit has one p-value, the smallest over its D
  parameters of the simultaneous ECDF-band test. The level is Bonferroni-corrected over every
  test the check makes: alpha / m, with m the sum over the compared cells of the candidate's
  fits x D (D from the ``needs`` column, ``sbc_num_parameters``, of either side). A cell
  rejects calibration when any of its fits' p-values is below that level. A **regression**
  when the candidate's rejects and the baseline's does not (at the same level), an
  **improvement** the other way round; rejected on both sides is not a change.
- **binomial** (coverage, ``coverage_max_deviation``): each fit has one value from N
  datasets (the ``needs`` column, ``sbc_datasets``); a coverage fraction over N datasets has
  Monte Carlo sd at most ``sqrt(0.25 / N)`` (the binomial sd at level 1/2), so a cell's mean
  over J fits has sd ``sqrt(sum(0.25 / N_j)) / J``. A **regression** when the mean grows by more
  than k x the two sides' combined sd, an **improvement** when it falls by more.

Cells and records on one side only are listed: a cell, or (observation, seed) records, of the
baseline that the candidate lacks are **missing**, and so is a judged score the baseline has and
the candidate does not; the candidate's runs that failed where the baseline's ran are
**failed**; both fail the verdict. A cell or score only the candidate has is **new**, listed
and not judged. A rule that lacks what it needs (a record without its noise sd, a fit without
its parameter or dataset count) is never given an invented value: that comparison is **cannot
judge**, with the reason.

Nothing compared is an error, not a pass: ``check`` raises ValueError naming the folder when
either side has no ok record (an empty folder, or the header-only results.csv of a run whose
jobs were all lost), or when no cell is on both sides. Two records of one (task, method,
budget, seed, observation) in a folder are refused when it is read
(`sbibench.records.load_results`): they would count as two pairs. An ok record whose C2ST (the headline score) is
NaN, in a cell where that side records C2ST, is **cannot judge**, one finding per cell and side
naming the folder, the observations and seeds: not an error, so the other cells are still
judged and shown, and not dropped in silence, since it exits non-zero (2) as every comparison
that lacks what it needs does.

Exit codes of ``sbibench check`` (`Verdict.exit_code`): 0 nothing regressed and everything
was judged; 1 a regression, failed or missing (whatever else); 2 no regression, but at least one
comparison could not be judged (the command also exits 2 on unreadable input).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sbibench.records import load_results
from sbibench.scoring import headline, registered

__all__ = ["Cell", "Verdict", "check", "format_verdict"]

CELL = ["task", "method", "budget"]
PAIR = ["observation", "seed"]
FAILING = ("regression", "failed", "missing")


@dataclass(frozen=True)
class Cell:
    """One finding: a judged score of a cell, or a cell-level one (``score`` empty).

    Attributes:
        task, method, budget: the cell.
        score: the column judged; "" for what concerns the whole cell (missing, new, failed).
        baseline, candidate: the compared values (means over pairs or fits; for a p-value
            rule the smallest p-value); NaN where a side has none.
        pairs: records (noise rule) or fits (calibration rules) compared.
        limit: what the change had to exceed (the p-value level for a p-value rule).
        verdict: "regression", "improvement", "same", "failed", "missing", "new" or
            "cannot judge".
        reason: the numbers behind the verdict, or why there is none.
    """

    task: str
    method: str
    budget: int
    score: str
    baseline: float
    candidate: float
    pairs: int
    limit: float
    verdict: str
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """Every finding, grouped; ``exit_code`` is the command's (see the module docstring)."""

    cells: list[Cell]
    k: float
    alpha: float
    tolerance: dict[str, float] = field(default_factory=dict)

    @property
    def regressions(self) -> list[Cell]:
        """Regressions, failed and missing runs: what fails the check."""
        return [c for c in self.cells if c.verdict in FAILING]

    @property
    def improvements(self) -> list[Cell]:
        return [c for c in self.cells if c.verdict == "improvement"]

    @property
    def undecided(self) -> list[Cell]:
        """Comparisons that lack the noise (or counts) their rule needs."""
        return [c for c in self.cells if c.verdict == "cannot judge"]

    @property
    def new(self) -> list[Cell]:
        """Cells and scores only the candidate has."""
        return [c for c in self.cells if c.verdict == "new"]

    @property
    def exit_code(self) -> int:
        """0 all judged and none regressed; 1 a regression, failed or missing; 2 otherwise
        undecided (a comparison could not be judged)."""
        return 1 if self.regressions else 2 if self.undecided else 0


def _table(source: str | Path, side: str) -> Any:
    table = load_results(source)
    missing = [c for c in CELL + PAIR + ["status"] if c not in table]
    if missing:
        raise ValueError(f"{source}: not an sbibench results table (missing {', '.join(missing)})")
    if not (table["status"] == "ok").any():
        raise ValueError(
            f"{side} {source}: no ok records ({len(table)} record(s) in all), nothing to compare"
        )
    return table


def _unscored(key: tuple, table: Any, side: str, source: str | Path) -> list[Cell]:
    """A cannot-judge finding where ok records of a cell lack the headline score (NaN) that
    other ok records of the same cell and side have."""
    name = headline().columns[0].name
    if not _has(table, name) or table[name].notna().all():
        return []
    lacking = table[table[name].isna()]
    shown = ", ".join(f"obs {o} seed {s}" for o, s in lacking[PAIR].to_numpy().tolist()[:5])
    more = ", ..." if len(lacking) > 5 else ""
    task, method, budget = key
    return [Cell(str(task), str(method), int(budget), name, math.nan, math.nan, len(lacking),
                 math.nan, "cannot judge", f"{side} {source}: {len(lacking)} ok record(s) "
                 f"without {name} (NaN), not compared: {shown}{more}")]  # fmt: skip


def _judged() -> list[tuple[Any, bool]]:
    """(column, per fit) of every registered column with a rule."""
    return [
        (column, metric.calibration)
        for metric in registered()
        for column in metric.columns
        if column.rule is not None
    ]


def _values(table: Any, column: str) -> Any:
    return table[column] if column in table else None


def _has(table: Any, column: str) -> bool:
    return column in table and bool(table[column].notna().any())


def _fits(ok: Any, column: str) -> Any:
    """One row per fit (calibration scores repeat in a fit's records): per seed."""
    return ok[ok[column].notna()].drop_duplicates("seed")


def _sign(column: Any) -> float:
    return 1.0 if column.better == "lower" else -1.0


def _side(table: Any, name: str, needs: str, fallback: str) -> Any:
    """(observation, seed, value, sd, stood_in) of one side: sd from ``needs``, or from
    ``fallback`` (``stood_in`` True) in a record without it; NaN where neither is recorded."""
    side = table[PAIR].assign(value=table[name], sd=math.nan, stood_in=False)
    if needs in table:
        side["sd"] = table[needs].astype(float)
    if fallback and fallback in table:
        older = side["sd"].isna() & table[fallback].notna()
        side.loc[older, "sd"] = table.loc[older, fallback].astype(float)
        side["stood_in"] = older
    return side


def _noise(column: Any, base: Any, cand: Any, tolerance: float, k: float) -> tuple:
    """The noise rule; (baseline, candidate, pairs, limit, verdict, reason)."""
    name, needs, fallback = column.name, column.rule.needs, column.rule.fallback
    merged = _side(base, name, needs, fallback).merge(
        _side(cand, name, needs, fallback), on=PAIR, suffixes=("_b", "_c")
    )
    merged = merged[merged["value_b"].notna() & merged["value_c"].notna()]
    n = len(merged)
    mean_b = float(merged["value_b"].mean()) if n else math.nan
    mean_c = float(merged["value_c"].mean()) if n else math.nan
    if n == 0:
        return mean_b, mean_c, 0, math.nan, "cannot judge", "no (observation, seed) on both sides"
    for side, suffix in (("baseline", "_b"), ("candidate", "_c")):
        if merged[f"sd{suffix}"].isna().any():
            return (mean_b, mean_c, n, math.nan, "cannot judge",
                    f"the {side} does not record {needs}, the noise sd {name} needs")  # fmt: skip
    sd_b, sd_c = merged["sd_b"].to_numpy(dtype=float), merged["sd_c"].to_numpy(dtype=float)
    d = _sign(column) * (merged["value_c"] - merged["value_b"]).to_numpy(dtype=float)
    spread = float(d.var(ddof=1)) if n > 1 else 0.0
    sd = math.sqrt(max(float((sd_b**2 + sd_c**2).mean()), spread) / n)
    limit = tolerance + k * sd
    change = float(d.mean())
    verdict = "regression" if change > limit else "improvement" if change < -limit else "same"
    reason = (
        f"change {mean_c - mean_b:+.3g} ({column.better} is better), limit {limit:.3g} = "
        f"{tolerance:g} + {k:g} x noise sd {sd:.3g}"
    )
    for side, suffix in (("baseline", "_b"), ("candidate", "_c")):
        older = int(merged[f"stood_in{suffix}"].sum())
        if older:
            reason += (
                f"; {older} of the {side}'s {n} record(s) predate {needs}: {fallback} stands "
                "in, which can understate the noise"
            )
    return mean_b, mean_c, n, limit, verdict, reason


def _count(fits: Any, needs: str) -> np.ndarray:
    """The rule's count (parameters, datasets) of each fit; NaN where one is unknown."""
    if needs not in fits:
        return np.full(len(fits), math.nan)
    return fits[needs].to_numpy(dtype=float)


def _binomial(column: Any, base: Any, cand: Any, k: float) -> tuple:
    name, needs = column.name, column.rule.needs
    fb, fc = _fits(base, name), _fits(cand, name)
    mean_b, mean_c = float(fb[name].mean()), float(fc[name].mean())
    pairs = min(len(fb), len(fc))
    counts = []
    for side, fits in (("baseline", fb), ("candidate", fc)):
        n = _count(fits, needs)
        if np.isnan(n).any() or (n < 1).any():
            return (mean_b, mean_c, pairs, math.nan, "cannot judge",
                    f"the {side} does not record {needs} for every fit, which {name} needs")  # fmt: skip
        counts.append(n)
    variance = sum(float((0.25 / n).sum()) / len(n) ** 2 for n in counts)
    limit = k * math.sqrt(variance)
    change = _sign(column) * (mean_c - mean_b)
    verdict = "regression" if change > limit else "improvement" if change < -limit else "same"
    reason = (
        f"change {mean_c - mean_b:+.3g} ({column.better} is better), limit {limit:.3g} = "
        f"{k:g} x binomial sd over {', '.join(str(int(n.sum())) for n in counts)} datasets"
    )
    return mean_b, mean_c, pairs, limit, verdict, reason


def _tests(column: Any, base: Any, cand: Any) -> float:
    """The number of tests behind the candidate's p-values in a cell (fits x parameters)."""
    fits = _fits(cand, column.name)
    counts = _count(fits, column.rule.needs)
    if np.isnan(counts).any():  # the count is the task's: take it from the baseline
        other = _fits(base, column.name)
        known = _count(other, column.rule.needs)
        if np.isnan(known).any() or len(known) == 0:
            return math.nan
        counts = np.full(len(fits), float(known[0]))
    return float(np.sum(counts))


def _p_value(column: Any, base: Any, cand: Any, level: float) -> tuple:
    name = column.name
    fb, fc = _fits(base, name), _fits(cand, name)
    p_b, p_c = float(fb[name].min()), float(fc[name].min())
    pairs = min(len(fb), len(fc))
    if math.isnan(level):
        return (p_b, p_c, pairs, math.nan, "cannot judge",
                f"neither side records {column.rule.needs}, the number of tests behind {name}")  # fmt: skip
    rejected_b, rejected_c = p_b < level, p_c < level
    verdict = (
        "regression" if rejected_c and not rejected_b
        else "improvement" if rejected_b and not rejected_c
        else "same"
    )  # fmt: skip
    both = "; calibration rejected on both sides" if rejected_b and rejected_c else ""
    reason = f"smallest p-value against level {level:.3g} (Bonferroni){both}"
    return p_b, p_c, pairs, level, verdict, reason


def _cell_level(key: tuple, base: Any, cand: Any) -> list[Cell]:
    """Missing and failed records of a cell present on both sides."""
    task, method, budget = key
    out = []

    def finding(verdict: str, reason: str, pairs: int) -> None:
        out.append(Cell(task, method, int(budget), "", math.nan, math.nan, pairs, math.nan,
                        verdict, reason))  # fmt: skip

    have = set(map(tuple, cand[PAIR].to_numpy().tolist()))
    lost = [pair for pair in map(tuple, base[PAIR].to_numpy().tolist()) if pair not in have]
    if lost:
        shown = ", ".join(f"obs {o} seed {s}" for o, s in lost[:5])
        finding("missing", f"the candidate lacks {len(lost)} of the baseline's records "
                f"({shown}{', ...' if len(lost) > 5 else ''})", len(lost))  # fmt: skip
    ran = set(map(tuple, base.loc[base["status"] == "ok", PAIR].to_numpy().tolist()))
    failed = cand[(cand["status"] != "ok")]
    failed = failed[[tuple(p) in ran for p in failed[PAIR].to_numpy().tolist()]]
    if len(failed):
        error = str(failed["error"].iloc[0]) if "error" in failed else ""
        finding("failed", f"{len(failed)} of the candidate's runs failed where the baseline's "
                f"ran: {error.splitlines()[-1][:200] if error.strip() else 'no error text'}",
                len(failed))  # fmt: skip
    return out


def check(
    baseline: str | Path,
    candidate: str | Path,
    tolerance: float | dict[str, float] | None = None,
    alpha: float = 0.05,
    k: float = 3.0,
) -> Verdict:
    """Compare two results tables (run folders or results.csv files) cell by cell, by the
    rules of the module docstring.

    Arguments:
        baseline: the reference results.
        candidate: the results under test.
        tolerance: the change tolerated before noise, per noise-rule column (a dict), or a
            number for C2ST's; default: the registry's (C2ST 0.02).
        alpha: family-wise level of the calibration (p-value) tests, Bonferroni-corrected.
        k: how many noise sds a change must exceed (noise and binomial rules).

    Returns:
        A `Verdict`: its ``exit_code`` is 0 (fine), 1 (regressed) or 2 (could not judge).
    """
    if not 0 < alpha < 1 or not k > 0:
        raise ValueError(f"need 0 < alpha < 1 and k > 0, got alpha {alpha}, k {k}")
    judged = _judged()
    tolerances = {c.name: c.rule.tolerance for c, _ in judged if c.rule.kind == "noise"}
    if isinstance(tolerance, dict):
        unknown = sorted(set(tolerance) - set(tolerances))
        if unknown:
            raise ValueError(f"tolerance for {', '.join(unknown)}: not a noise-rule score; "
                             f"those are {', '.join(tolerances)}")  # fmt: skip
        tolerances.update(tolerance)
    elif tolerance is not None:
        tolerances[headline().columns[0].name] = float(tolerance)
    if any(not value >= 0 for value in tolerances.values()):
        raise ValueError(f"tolerances must be >= 0, got {tolerances}")
    for name, path in (("baseline", baseline), ("candidate", candidate)):
        if not Path(path).exists():
            raise FileNotFoundError(f"{name} {path}: no such run folder or results.csv")
    base_table, cand_table = _table(baseline, "baseline"), _table(candidate, "candidate")
    base_cells = dict(iter(base_table.groupby(CELL, sort=True)))
    cand_cells = dict(iter(cand_table.groupby(CELL, sort=True)))
    shared = [key for key in base_cells if key in cand_cells]
    if not shared:
        raise ValueError(
            f"baseline {baseline} and candidate {candidate} share no (task, method, budget) "
            "cell, nothing to compare"
        )

    def ok(table: Any) -> Any:
        return table[table["status"] == "ok"]

    # the p-value rules' Bonferroni count: every test the check makes, over all cells
    tests = {}
    for column, _ in judged:
        if column.rule.kind == "p_value":
            counts = [
                _tests(column, ok(base_cells[key]), ok(cand_cells[key]))
                for key in shared
                if _has(ok(base_cells[key]), column.name) and _has(ok(cand_cells[key]), column.name)
            ]
            tests[column.name] = sum(c for c in counts if not math.isnan(c))
    cells = []
    for key in sorted(set(base_cells) | set(cand_cells)):
        task, method, budget = key

        def finding(score: str, values: tuple) -> None:
            cells.append(Cell(str(task), str(method), int(budget), score, *values))  # noqa: B023

        if key not in cand_cells:
            finding("", (math.nan, math.nan, 0, math.nan, "missing", "no candidate records"))
            continue
        if key not in base_cells:
            finding("", (math.nan, math.nan, 0, math.nan, "new", "only the candidate has it"))
            continue
        base, cand = base_cells[key], cand_cells[key]
        cells += _cell_level(key, base, cand)
        base_ok, cand_ok = ok(base), ok(cand)
        if base_ok.empty:
            verdict = "same" if cand_ok.empty else "improvement"
            finding("", (math.nan, math.nan, 0, math.nan, verdict, "the baseline's runs failed"))
            continue
        if cand_ok.empty:  # every run failed or is missing: said above, no score to compare
            continue
        cells += _unscored(key, base_ok, "baseline", baseline)
        cells += _unscored(key, cand_ok, "candidate", candidate)
        for column, _ in judged:
            name = column.name
            if not _has(base_ok, name):
                if _has(cand_ok, name):
                    finding(name, (math.nan, math.nan, 0, math.nan, "new", "only the candidate has it"))  # fmt: skip
                continue
            if not _has(cand_ok, name):
                finding(name, (math.nan, math.nan, 0, math.nan, "missing", "the candidate does not record it"))  # fmt: skip
                continue
            kind = column.rule.kind
            if kind == "noise":
                finding(name, _noise(column, base_ok, cand_ok, tolerances[name], k))
            elif kind == "binomial":
                finding(name, _binomial(column, base_ok, cand_ok, k))
            else:
                known = not math.isnan(_tests(column, base_ok, cand_ok))
                level = alpha / tests[name] if known and tests[name] > 0 else math.nan
                finding(name, _p_value(column, base_ok, cand_ok, level))
    return Verdict(cells, k, alpha, tolerances)


def _number(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3g}"


def format_verdict(verdict: Verdict) -> str:
    """A table of every finding, and a closing line with the counts and the exit code."""
    rows = [["task", "method", "budget", "score", "baseline", "candidate", "n", "limit", "verdict"]]
    for c in verdict.cells:
        rows.append([c.task, c.method, str(c.budget), c.score or "(cell)", _number(c.baseline),
                     _number(c.candidate), str(c.pairs), _number(c.limit), c.verdict])  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row, cell in zip(rows, [None, *verdict.cells], strict=True):
        text = "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True))
        reason = f"  {cell.reason}" if cell is not None and cell.reason else ""
        lines.append((text + reason).rstrip())
    tolerances = ", ".join(f"{name} {value:g}" for name, value in verdict.tolerance.items())
    lines.append(
        f"{len(verdict.regressions)} regression(s) (failed and missing included), "
        f"{len(verdict.improvements)} improvement(s), {len(verdict.undecided)} cannot judge, "
        f"{len(verdict.new)} new (k {verdict.k:g}, alpha {verdict.alpha:g}, tolerance "
        f"{tolerances or 'none'}); exit code {verdict.exit_code}"
    )
    return "\n".join(lines)
