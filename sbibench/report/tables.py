"""The report's tables from a run's records: per-task leaderboards, the misspecification,
set-size and dimension sections, where the time went, and the run's provenance.

Every cell is the mean over observations and seeds with a 95% interval: mean +- t(0.975, n -
1) standard errors of the values (Student's t), widened for a score whose records carry their
own noise sd (the column its ``noise`` rule needs: C2ST's ``c2st_noise_sd``, with its training
noise) to at least 1.96 sqrt(mean(s²) / n), so that one value, or a few that agree by chance,
is not shown as exact; no interval for a single value of a score without a noise sd. Each
score's columns, labels and directions come from the score registry (`sbibench.scoring`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sbibench.report.calibration import cell
from sbibench.report.ranks import REFERENCES, Ranking, rank_methods
from sbibench.scoring import headline, registered

__all__ = [
    "dimension_ladders",
    "dimension_table",
    "floor_excess",
    "directions",
    "interval",
    "leaderboard",
    "marks",
    "misspecification_table",
    "noise_sds",
    "provenance",
    "rank_sections",
    "sections",
    "set_size_table",
    "time_table",
    "titles",
]


def _reported() -> list[tuple[str, str, bool]]:
    """(column, label, whether one value per job) of every registered score's labelled column
    (`sbibench.scoring`), in registry order; its noise floor is ``<column>_floor``. A
    calibration score's columns are of a whole job (over prior-predictive datasets), repeated
    in each of its records: averaged over jobs (fits), not records, so one fit shows no
    interval."""
    return [
        (column.name, column.label, metric.calibration)
        for metric in registered()
        for column in metric.columns
        if column.label is not None
    ]


def directions() -> str:
    """Which direction is better, per labelled score (from the registry)."""
    labels: dict[str, list[str]] = {"lower": [], "higher": []}
    for metric in registered():
        for column in metric.columns:
            if column.label is not None and column.better is not None:
                labels[column.better].append(column.label)
    return "; ".join(
        f"{side} is better: {', '.join(names)}" for side, names in labels.items() if names
    )


def interval(values: Any, noise: Any = None) -> tuple[float, float]:
    """(mean, 95% half-width) of ``values`` (n,); ``noise`` (n,): each value's own noise sd,
    or None. The half-width is Student's t over the values' spread, at least 1.96 x the
    recorded noise's sd of the mean, sqrt(mean(s²) / n) (the same floor `sbibench check` puts
    under a paired change); NaN for one value without noise."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    if noise is not None:
        noise = np.asarray(noise, dtype=float)[finite]
        noise = noise if len(noise) and np.isfinite(noise).all() else None
    values = values[finite]
    if len(values) == 0:
        return math.nan, math.nan
    known = math.nan if noise is None else 1.96 * math.sqrt(float(np.mean(noise**2)) / len(values))
    if len(values) == 1:
        return float(values[0]), known
    from scipy.stats import t  # scipy loads in a fraction of a second, only when needed

    # Student's t, not 1.96: with 2 observations the 95% half-width is 6.5x the normal one
    half = t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half if math.isnan(known) else max(half, known))


def noise_sds(table: Any, column: str) -> Any:
    """Each record's noise sd for ``column``: the column its ``noise`` rule needs, or the
    rule's fallback in records written before it (C2ST's binomial ``c2st_null_sd``, which
    leaves out the classifier's training); None for a score without one."""
    rule = next(
        (c.rule for m in registered() for c in m.columns if c.name == column and c.rule), None
    )
    if rule is None or rule.kind != "noise":
        return None
    sds = table[rule.needs] if rule.needs in table else None
    if rule.fallback and rule.fallback in table:
        sds = table[rule.fallback] if sds is None else sds.fillna(table[rule.fallback])
    return sds


def floor_excess(table: Any, column: str) -> Any:
    """Each record's excess over its noise floor in floor sds, (score - floor mean) / sd,
    the sd the larger of the floor's and the record's own noise sd where the score has one
    (`sbibench.reference.build.excess_sd`): about N(0, 1) or less for the exact posterior,
    so 3 or more is a method measurably off at that sample size. None where the records
    carry no floor sd (those written before floors were distributions)."""
    sd = f"{column}_floor_sd"
    if sd not in table or not table[sd].notna().any():
        return None
    spread = table[sd]
    noise = noise_sds(table, column)
    if noise is not None:
        spread = np.maximum(spread, noise)
    return (table[column] - table[f"{column}_floor"]) / spread


def _cell(values: Any, noise: Any = None) -> str:
    mean, half = interval(values, noise)
    if math.isnan(mean):
        return "–"
    return f"{mean:.3g}" if math.isnan(half) else f"{mean:.3g} ± {half:.2g}"


def marks(table: Any) -> Any:
    """Per record, what may make its numbers untraceable or out of date: "dirty" where the
    code that made it had uncommitted changes (its ``git_revision`` ends in "-dirty"),
    "stale" where today's code or task data differ from those that made it (the provenance
    the runner checks before reusing a record, `sbibench.run.provenance`), both joined by
    ", ", or "". A record whose method or task is not known here (a method registered only
    in the run's own process) is not marked stale: that cannot be told."""
    import pandas as pd

    from sbibench.records import PROVENANCE
    from sbibench.run.provenance import job_provenance

    today: dict[tuple[str, str], dict | None] = {}
    for task, name in table[["task", "method_name"]].drop_duplicates().itertuples(index=False):
        if not isinstance(name, str):  # a record from before the method's name was kept
            continue
        try:
            today[task, name] = job_provenance(task, name)
        except (KeyError, ValueError, LookupError, OSError):
            today[task, name] = None

    def mark(record: Any) -> str:
        found = []
        if str(record.get("git_revision", "")).endswith("-dirty"):
            found.append("dirty")
        now = today.get((record["task"], record["method_name"]))
        if now is not None and any(
            isinstance(record.get(f), str) and record.get(f) != now[f] for f in PROVENANCE
        ):
            found.append("stale")
        return ", ".join(found)

    if table.empty:
        return pd.Series([], dtype=str)
    return table.apply(mark, axis=1)


def leaderboard(table: Any, verdicts: dict[str, Any] | None = None) -> dict[str, list[list[str]]]:
    """Per task, rows [method, budget, runs, failed, metric cells...] (first row: header),
    and a last column "calibration" with each cell's fits' verdicts where ``verdicts``
    ({job key: verdict}, `sbibench.report.calibration.verdicts`) holds any. A score with a
    floor is followed by its floor and, where the records carry the floor's sd, by the
    excess over the floor in floor sds (`floor_excess`). Where any record is dirty or stale
    (`marks`), a last column "provenance" names which of each row's records are."""
    boards = {}
    ranked = _task_ranks(table)
    marked = marks(table)
    any_marked = bool((marked != "").any())
    ok = table[table["status"] == "ok"]
    for task in sorted(table["task"].unique()):
        header = ["method", "budget", "runs", "failed", "rank"]
        present = [m for m in _reported() if m[0] in table and table[m[0]].notna().any()]
        for column, label, _ in present:
            floor = f"{column}_floor"
            header.append(label)
            if floor in table and table[floor].notna().any():
                header.append(f"{label} floor")
                if floor_excess(table, column) is not None:
                    header.append(f"{label} excess (floor sd)")
        if verdicts:
            header.append("calibration")
        if any_marked:
            header.append("provenance")
        rows = [header]
        groups = table[table["task"] == task].groupby(["method", "budget"], sort=True)
        for (method, budget), group in groups:
            good = ok[(ok["task"] == task) & (ok["method"] == method) & (ok["budget"] == budget)]
            row = [str(method), str(budget), str(len(group)), str((group["status"] != "ok").sum())]
            row.append(ranked.get((task, budget, method), "–"))
            for column, _, per_job in present:
                values = good.drop_duplicates("key") if per_job else good
                row.append(_cell(values[column], noise_sds(values, column)))
                floor = f"{column}_floor"
                if floor in table and table[floor].notna().any():
                    row.append(_cell(good[floor]))
                    if floor_excess(table, column) is not None:
                        row.append(_cell(floor_excess(good, column)))
            if verdicts:
                row.append(cell(group["key"], verdicts))
            if any_marked:
                kinds = sorted({kind for m in marked[group.index] if m for kind in m.split(", ")})
                row.append(", ".join(kinds))
            rows.append(row)
        boards[task] = rows
    return boards


def _headline_ranking(table: Any) -> Ranking | None:
    """`rank_methods` of ``table`` (one budget) by the headline score, in its direction."""
    column = headline().columns[0]
    if column.name not in table:
        return None
    return rank_methods(table, column.name, lower_better=column.better != "higher")


def _rank_cell(ranking: Ranking, i: int) -> str:
    return f"{ranking.mean_rank[i]:.1f} [{ranking.low[i]:.1f}, {ranking.high[i]:.1f}]"


def _task_ranks(table: Any) -> dict[tuple, str]:
    """(task, budget, method) -> its mean rank and bootstrap interval among the competing
    methods on that task and budget ("reference" for a reference, `REFERENCES`)."""
    cells = {}
    for (task, budget), records in table.groupby(["task", "budget"]):
        ranking = _headline_ranking(records)
        if ranking is not None:
            for i, method in enumerate(ranking.methods):
                cells[task, budget, method] = _rank_cell(ranking, i)
        for method in records.loc[records["method_name"].isin(REFERENCES), "method"].unique():
            cells[task, budget, method] = "reference"
    return cells


_RANKS = (
    "The competing methods by mean rank of {label} over every task's observations at this "
    "budget (1 is best; a failed or missing run ranks last), with a 95% bootstrap interval "
    "(observations resampled within each task, seeds within each observation). {test} "
    "Methods run on some tasks only are listed after them, unranked, with their mean over "
    "those tasks; references, which use the exact posterior or likelihood, last."
)


def rank_sections(table: Any) -> list[tuple[str, str, list[list[str]]]]:
    """Per budget, the headline ranks (`sbibench.report.ranks`): (title, what it shows, rows
    [method, mean rank, 95% interval, group, mean score] with a header first), for budgets
    with at least two competing methods."""
    column = headline().columns[0]
    label = column.label or column.name
    out = []
    for budget, records in table.groupby("budget"):
        ranking = _headline_ranking(records)
        if ranking is None:
            continue
        if ranking.friedman_p < 0.05:
            test = (
                f"Friedman's test rejects equal ranks (p = {ranking.friedman_p:.2g}, "
                f"{ranking.blocks} observations); methods sharing a group letter differ by "
                f"less than Nemenyi's critical difference ({ranking.cd:.2f}) and cannot be "
                "told apart."
            )
        else:
            test = (
                f"Friedman's test does not reject equal ranks (p = {ranking.friedman_p:.2g}, "
                f"{ranking.blocks} observations): the data cannot order these methods, so "
                "all are one group."
            )
        rows = [["method", "mean rank", "95% interval", "group", f"mean {label}"]]
        for i, method in enumerate(ranking.methods):
            rows.append([
                method, f"{ranking.mean_rank[i]:.1f}",
                f"{ranking.low[i]:.1f} – {ranking.high[i]:.1f}", ranking.groups[i],
                f"{ranking.score[i]:.3f}",
            ])  # fmt: skip
        good = records[records["status"] == "ok"]
        for method in ranking.partial:
            on = good.loc[good["method"] == method]
            rows.append([method, f"on {on['task'].nunique()} of {records['task'].nunique()} "
                         "tasks", "", "", f"{on[column.name].mean():.3f}"])  # fmt: skip
        for method, group in good[good["method_name"].isin(REFERENCES)].groupby("method"):
            rows.append([method, "reference", "", "", f"{group[column.name].mean():.3f}"])
        title = f"Ranks at {budget:,} simulations"
        out.append((title, _RANKS.format(label=label, test=test), rows))
    return out


def _carried(table: Any) -> Any:
    """Which records carry their task's facts (``task_family`` and the columns beside it):
    those written since the records have held them. A bool per record."""
    if "task_family" in table:
        return table["task_family"].notna()
    return table["task"].isna()  # none do: all False


def _facts(table: Any, column: str, of_card: Any) -> dict[str, Any]:
    """{task: its value in ``column``} for every task of the table: the value its records
    carry (None where they carry it empty), else, for records written before the task facts,
    ``of_card(task)`` of today's card where the task still exists."""
    found = {}
    carried = _carried(table)
    for name, group in table.groupby("task", sort=True):
        own = group[carried[group.index]]
        if len(own):
            values = own[column].dropna()
            found[str(name)] = values.iloc[0] if len(values) else None
            continue
        from sbibench.task import get_task  # only for older records: cards load torch

        try:
            found[str(name)] = of_card(get_task(str(name)))
        except ValueError:  # the task's card has gone since
            continue
    return found


def _assumed_tasks(table: Any) -> dict[str, str]:
    """{misspecified task: the well-specified task it assumes} among the table's tasks."""
    assumed = _facts(table, "task_assumes", lambda task: task.assumes or "")
    return {name: str(value) for name, value in assumed.items() if value}


def _per_record_scores(table: Any) -> list[tuple[str, str]]:
    """(column, label) of the labelled per-observation scores the table holds."""
    return [
        (column, label)
        for column, label, per_job in _reported()
        if not per_job and column in table and table[column].notna().any()
    ]


def misspecification_table(table: Any) -> list[list[str]]:
    """Each method's scores on a misspecified task beside the same scores on the
    well-specified task it assumes (same model, same method settings and budget), for every
    pair of tasks both in the run (first row: header; only the header when there is none).

    Misspecified observations come from another process than the model; both are scored
    against the assumed model's exact posterior, so the gap is what misspecification costs.
    """
    present = _per_record_scores(table)
    header = ["task", "assumes", "method", "budget"]
    for _, label in present:
        header += [f"{label} well-specified", f"{label} misspecified"]
    rows = [header]
    ok = table[table["status"] == "ok"]
    for task, assumed in sorted(_assumed_tasks(table).items()):
        if assumed not in set(table["task"]):
            continue
        for (method, budget), group in ok[ok["task"] == task].groupby(["method", "budget"]):
            twin = ok[(ok["task"] == assumed) & (ok["method"] == method) & (ok["budget"] == budget)]
            row = [task, assumed, str(method), str(budget)]
            for column, _ in present:
                row += [
                    _cell(twin[column], noise_sds(twin, column)),
                    _cell(group[column], noise_sds(group, column)),
                ]
            rows.append(row)
    return rows


def _observation_sizes(table: Any) -> Any:
    """Each record's set size n where its task's observations are i.i.d. sets of stated
    sizes (``padded_sets``), else NaN: the record's own, or today's card's for a record
    written before the task facts."""
    carried = _carried(table)
    sizes = table["observation_size"].astype(float) if "observation_size" in table else None
    sizes = sizes.where(carried) if sizes is not None else table["observation"] * float("nan")
    if carried.all():
        return sizes
    from sbibench.task import get_task  # only for older records: cards load torch

    def of_card(row: Any) -> float:
        try:
            task = get_task(str(row["task"]))
        except ValueError:
            return float("nan")
        if not task.padded_sets:
            return float("nan")
        return task.model.observation_sizes[int(row["observation"]) - 1]

    older = table[~carried]
    return sizes.where(carried, older.apply(of_card, axis=1) if len(older) else sizes)


def set_size_table(table: Any) -> list[list[str]]:
    """Each method's per-observation scores on a task of i.i.d. sets of varying size, broken
    down by the set size n of the observations (the card's ``observation_sizes``): rows
    [task, method, budget, n, records, score cells (and floors)...], mean over the
    observations of that size and the seeds (first row: header; only the header when no
    such task is in the run). Calibration scores, over prior-predictive datasets of every n,
    are not broken down.
    """
    present = _per_record_scores(table)
    header = ["task", "method", "budget", "n", "records"]
    for column, label in present:
        header.append(label)
        if f"{column}_floor" in table and table[f"{column}_floor"].notna().any():
            header.append(f"{label} floor")
    rows = [header]
    ok = table[table["status"] == "ok"]
    ok = ok.assign(_n=_observation_sizes(ok))
    ok = ok[ok["_n"].notna()]
    cells = ["task", "method", "budget", "_n"]
    for (task, method, budget, n), group in ok.groupby(cells, sort=True):
        row = [task, str(method), str(budget), str(int(n)), str(len(group))]
        for column, _ in present:
            row.append(_cell(group[column], noise_sds(group, column)))
            if f"{column}_floor" in table and table[f"{column}_floor"].notna().any():
                row.append(_cell(group[f"{column}_floor"]))
        rows.append(row)
    return rows


def dimension_ladders(table: Any) -> dict[str, dict[str, int]]:
    """{family: {task: parameter dimension D}, ordered by D} for each model family that the
    table's tasks run at three or more dimensions (the dimension ladder's cards)."""
    family = _facts(table, "task_family", lambda task: task.family)
    dim = _facts(table, "task_dim", lambda task: task.dim_parameters)
    families: dict[str, dict[str, int]] = {}
    for name in family.keys() & dim.keys():
        families.setdefault(str(family[name]), {})[name] = int(dim[name])
    return {
        family: dict(sorted(dims.items(), key=lambda item: item[1]))
        for family, dims in sorted(families.items())
        if len(set(dims.values())) >= 3
    }


def dimension_table(table: Any) -> list[list[str]]:
    """Each method's headline score (C2ST) and fit-plus-sampling wall time along a dimension ladder (first row:
    header; only the header when the run has no ladder): rows [family, method, one cell per
    dimension D], a cell "C2ST mean · seconds" over that rung's records, "stopped" where its
    jobs there ran past the time limit, "failed" where they failed otherwise, blank where it
    did not run."""
    column = headline().columns[0].name
    ladders = dimension_ladders(table)
    dims = sorted({d for ladder in ladders.values() for d in ladder.values()})
    rows = [["family", "method", *(f"D = {d}" for d in dims)]]
    for family, ladder in ladders.items():
        runs = table[table["task"].isin(list(ladder))]
        for method, group in runs.groupby("method", sort=True):
            cells = {}
            for task, d in ladder.items():
                rung = group[group["task"] == task]
                ok = rung[rung["status"] == "ok"]
                if not ok.empty:
                    seconds = (
                        ok[["time_train", "time_propose", "time_sample"]].fillna(0).sum(axis=1)
                    )
                    score = f"{ok[column].mean():.3f} · " if column in ok else ""
                    cells[d] = f"{score}{seconds.mean():.0f} s"
                elif not rung.empty:  # stopped at the suite's time limit, or failed
                    timed_out = rung["error"].fillna("").str.startswith("timeout").all()
                    cells[d] = "stopped" if timed_out else "failed"
            rows.append([family, str(method), *(cells.get(d, "") for d in dims)])
    return rows


_PHASES = ("simulate", "train", "propose", "sample", "score", "calibrate")


def time_table(table: Any) -> list[list[str]]:
    """Where the worker time went, per method, from the records' own timings (first row:
    header): jobs, seconds per phase summed over the run, the total and its share.

    A job's fit (``time_simulate``, ``time_train``, ``time_propose``: a sequential method's
    proposals) and calibration are shared by the
    records of its observations and counted once; sampling and scoring are per record.
    Worker seconds, so the wall time of a run is about the total over the workers.
    """
    columns = {phase: f"time_{phase}" for phase in _PHASES}
    per_job = [c for p, c in columns.items() if p in ("simulate", "train", "propose", "calibrate")]
    rows = []
    for method, group in table.groupby("method", sort=True):
        jobs = group.groupby("key").first()
        seconds = {
            phase: float((jobs if column in per_job else group)[column].fillna(0).sum())
            if column in group
            else 0.0
            for phase, column in columns.items()
        }
        rows.append((str(method), len(jobs), seconds, sum(seconds.values())))
    grand = sum(total for *_, total in rows) or 1.0
    out = [["method", "jobs", *(f"{p} (s)" for p in _PHASES), "total (s)", "share"]]
    for method, jobs, seconds, total in sorted(rows, key=lambda row: -row[3]):
        cells = [f"{seconds[p]:.0f}" for p in _PHASES]
        out.append([method, str(jobs), *cells, f"{total:.0f}", f"{total / grand:.0%}"])
    return out


def provenance(table: Any) -> list[tuple[str, str]]:
    def values(column: str) -> str:
        if column not in table:
            return "–"
        found = table[column].dropna().unique()
        numbers = all(isinstance(v, int | float | np.integer | np.floating) for v in found)
        return ", ".join(str(v) for v in sorted(found, key=None if numbers else str))

    marked = marks(table)
    lines = [
        ("suite", values("suite")),
        ("sbibench", values("sbibench_version")),
        ("git revision", values("git_revision") or "–"),
        ("torch / python", f"{values('torch_version')} / {values('python_version')}"),
        ("budgets", values("budget")),
        ("seeds", values("seed")),
        ("observations", values("observation")),
        ("posterior samples per observation", values("num_posterior_samples")),
        ("machine (CPU, cores)", f"{values('machine')}, {values('cores')}"),
        (
            "date",
            f"{table['timestamp'].min()} – {table['timestamp'].max()}"
            if "timestamp" in table
            else "–",
        ),
    ]
    for kind, what in (
        ("dirty", "made by code with uncommitted changes (a '-dirty' revision): not traceable"),
        ("stale", "made by other code or task data than today's: `sbibench run` would redo them"),
    ):
        count = int(marked.str.contains(kind).sum())
        if count:
            lines.append((f"{kind} records", f"{count} of {len(table)}, {what}"))
    return lines


_MISSPECIFIED = (
    "Each method on tasks whose observations come from another process than the model "
    "(the task's card says which), beside the same method on the well-specified task that "
    "assumes the same model; both scored against the assumed model's exact posterior."
)

_BY_SIZE = (
    "Tasks whose observations are i.i.d. sets of varying size n (NaN-padded): each method's "
    "scores over the observations of each n (the exact posterior narrows as n grows), one "
    "amortized fit serving every n."
)


_BY_DIMENSION = (
    "One model family at several parameter dimensions D (the dimension ladder): each method's "
    "mean {label} and mean seconds of training and sampling per observation (a fit shared by "
    "the observations of an amortized method counted in each), per rung."
)


def sections(table: Any) -> list[tuple[str, str, list[list[str]]]]:
    """The report's sections beside the per-task boards, those with rows: (title, what it
    shows, rows with a header first)."""
    found = [
        ("Misspecified observations", _MISSPECIFIED, misspecification_table(table)),
        ("Scores by set size", _BY_SIZE, set_size_table(table)),
        (
            "Scores by dimension",
            _BY_DIMENSION.format(label=headline().columns[0].label),
            dimension_table(table),
        ),
    ]
    return [section for section in found if len(section[2]) > 1]


def titles(boards: dict, table: Any) -> dict[str, str]:
    """Each board's heading: its task, marked where the task is a misspecified variant."""
    assumed = _assumed_tasks(table)
    return {t: f"{t} (misspecified: assumes {assumed[t]})" if t in assumed else t for t in boards}
