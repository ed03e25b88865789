"""Leaderboards (Markdown, HTML, LaTeX) and figures (seaborn) from a run folder.

Every table gives, per task, each metric by method and budget as the mean over observations
and seeds with a 95% Student-t interval (mean +- t(0.975, n - 1) standard errors; no interval
for a single value), the
exact posterior's noise floor beside the sample-based scores, and the provenance of the run.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from sbibench.records import load_results, rebuild_table

__all__ = [
    "leaderboard",
    "misspecification_table",
    "set_size_table",
    "summary_table",
    "time_table",
    "write_report",
]


def _reported() -> list[tuple[str, str, bool]]:
    """(column, label, whether one value per job) of every registered score's labelled column
    (`sbibench.scoring`), in registry order; its noise floor is ``<column>_floor``. A
    calibration score's columns are of a whole job (over prior-predictive datasets), repeated
    in each of its records: averaged over jobs (fits), not records, so one fit shows no
    interval."""
    from sbibench.scoring import registered

    return [
        (column.name, column.label, metric.calibration)
        for metric in registered()
        for column in metric.columns
        if column.label is not None
    ]


def _directions() -> str:
    """Which direction is better, per labelled score (from the registry)."""
    from sbibench.scoring import registered

    labels: dict[str, list[str]] = {"lower": [], "higher": []}
    for metric in registered():
        for column in metric.columns:
            if column.label is not None and column.better is not None:
                labels[column.better].append(column.label)
    return "; ".join(
        f"{side} is better: {', '.join(names)}" for side, names in labels.items() if names
    )


def _interval(values: Any) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), math.nan
    from scipy.stats import t

    # Student's t, not 1.96: with 2 observations the 95% half-width is 6.5x the normal one
    half = t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


def _cell(values: Any) -> str:
    mean, half = _interval(values)
    if math.isnan(mean):
        return "–"
    return f"{mean:.3g}" if math.isnan(half) else f"{mean:.3g} ± {half:.2g}"


def leaderboard(table: Any) -> dict[str, list[list[str]]]:
    """Per task, rows [method, budget, runs, failed, metric cells...] (first row: header)."""
    boards = {}
    ok = table[table["status"] == "ok"]
    for task in sorted(table["task"].unique()):
        header = ["method", "budget", "runs", "failed"]
        present = [m for m in _reported() if m[0] in table and table[m[0]].notna().any()]
        for column, label, _ in present:
            floor = f"{column}_floor"
            header.append(label)
            if floor in table and table[floor].notna().any():
                header.append(f"{label} floor")
        rows = [header]
        groups = table[table["task"] == task].groupby(["method", "budget"], sort=True)
        for (method, budget), group in groups:
            good = ok[(ok["task"] == task) & (ok["method"] == method) & (ok["budget"] == budget)]
            row = [str(method), str(budget), str(len(group)), str((group["status"] != "ok").sum())]
            for column, _, per_job in present:
                values = good.drop_duplicates("key") if per_job else good
                row.append(_cell(values[column]))
                floor = f"{column}_floor"
                if floor in table and table[floor].notna().any():
                    row.append(_cell(good[floor]))
            rows.append(row)
        boards[task] = rows
    return boards


def _known_tasks(names: Any) -> dict[str, Any]:
    """{name: Task} for the names that are known tasks (a run's cards may since have gone)."""
    from sbibench.task import get_task

    tasks = {}
    for name in map(str, names):
        try:
            tasks[name] = get_task(name)
        except ValueError:
            continue
    return tasks


def _assumed_tasks(names: Any) -> dict[str, str]:
    """{misspecified task: the well-specified task it assumes} among ``names``."""
    return {n: t.assumes for n, t in _known_tasks(names).items() if t.assumes is not None}


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
    for task, assumed in sorted(_assumed_tasks(table["task"].unique()).items()):
        if assumed not in set(table["task"]):
            continue
        for (method, budget), group in ok[ok["task"] == task].groupby(["method", "budget"]):
            twin = ok[(ok["task"] == assumed) & (ok["method"] == method) & (ok["budget"] == budget)]
            row = [task, assumed, str(method), str(budget)]
            for column, _ in present:
                row += [_cell(twin[column]), _cell(group[column])]
            rows.append(row)
    return rows


def _observation_sizes(names: Any) -> dict[str, tuple[int, ...]]:
    """{task: n of observations 1..K} for the tasks among ``names`` whose observations are
    i.i.d. sets of stated sizes (``padded_sets``)."""
    known = _known_tasks(names).items()
    return {n: t.model.observation_sizes for n, t in known if t.padded_sets}


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
    for task, sizes in sorted(_observation_sizes(table["task"].unique()).items()):
        records = ok[ok["task"] == task]
        size = records["observation"].map(lambda k, sizes=sizes: sizes[int(k) - 1])
        groups = records.assign(_n=size).groupby(["method", "budget", "_n"], sort=True)
        for (method, budget, n), group in groups:
            row = [task, str(method), str(budget), str(n), str(len(group))]
            for column, _ in present:
                row.append(_cell(group[column]))
                if f"{column}_floor" in table and table[f"{column}_floor"].notna().any():
                    row.append(_cell(group[f"{column}_floor"]))
            rows.append(row)
    return rows


def dimension_ladders(names: Any) -> dict[str, dict[str, int]]:
    """{family: {task: parameter dimension D}, ordered by D} for each model family that the
    tasks among ``names`` run at three or more dimensions (the dimension ladder's cards)."""
    families: dict[str, dict[str, int]] = {}
    for name, task in _known_tasks(names).items():
        families.setdefault(task.family, {})[name] = task.dim_parameters
    return {
        family: dict(sorted(dims.items(), key=lambda item: item[1]))
        for family, dims in sorted(families.items())
        if len(set(dims.values())) >= 3
    }


def dimension_table(table: Any) -> list[list[str]]:
    """Each method's C2ST and fit-plus-sampling wall time along a dimension ladder (first row:
    header; only the header when the run has no ladder): rows [family, method, one cell per
    dimension D], a cell "C2ST mean · seconds" over that rung's records, "stopped" where its
    jobs there ran past the time limit, "failed" where they failed otherwise, blank where it
    did not run."""
    ladders = dimension_ladders(table["task"].unique())
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
                    seconds = ok[["time_train", "time_propose", "time_sample"]].fillna(0).sum(1)
                    c2st = f"{ok['c2st'].mean():.3f} · " if "c2st" in ok else ""
                    cells[d] = f"{c2st}{seconds.mean():.0f} s"
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


def summary_table(results: str | Path) -> str:
    """A short text table for the terminal: C2ST (and its floor) by task and method."""
    table = load_results(results)
    # columns as wide as their longest entry, and a space apart
    tw = max([len("task"), *map(len, table["task"].astype(str))]) + 2
    mw = max([len("method"), *map(len, table["method"].astype(str))]) + 2
    lines = [
        "C2ST: mean over observations and seeds ± the half-width of its 95% Student-t interval "
        "(none for one value);",
        "floor: what the exact posterior scores at the same sample size (0.5 is chance).",
        f"{'task':{tw}}{'method':{mw}}{'budget':>8}{'C2ST':>16}{'floor':>8}{'failed':>8}",
    ]
    for (task, method, budget), group in table.groupby(["task", "method", "budget"]):
        good = group[group["status"] == "ok"]
        mean, half = _interval(good["c2st"]) if "c2st" in good else (math.nan, 0)
        floor, _ = _interval(good["c2st_floor"]) if "c2st_floor" in good else (math.nan, 0)
        c2st = "–" if math.isnan(mean) else f"{mean:.3f}"
        c2st += "" if math.isnan(half) else f" ± {half:.3f}"
        failed = int((group["status"] != "ok").sum())
        floor = "–" if math.isnan(floor) else f"{floor:.3f}"
        lines.append(f"{task:{tw}}{method:{mw}}{budget:>8}{c2st:>16}{floor:>8}{failed:>8}")
    return "\n".join(lines)


def _provenance(table: Any) -> list[tuple[str, str]]:
    def values(column: str) -> str:
        if column not in table:
            return "–"
        found = table[column].dropna().unique()
        numbers = all(isinstance(v, int | float | np.integer | np.floating) for v in found)
        return ", ".join(str(v) for v in sorted(found, key=None if numbers else str))

    return [
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
    "mean C2ST and mean seconds of training and sampling per observation (a fit shared by "
    "the observations of an amortized method counted in each), per rung."
)


def _sections(table: Any) -> list[tuple[str, str, list[list[str]]]]:
    """The report's sections beside the per-task boards, those with rows: (title, what it
    shows, rows with a header first)."""
    sections = [
        ("Misspecified observations", _MISSPECIFIED, misspecification_table(table)),
        ("Scores by set size", _BY_SIZE, set_size_table(table)),
        ("Scores by dimension", _BY_DIMENSION, dimension_table(table)),
    ]
    return [section for section in sections if len(section[2]) > 1]


def _titles(boards: dict) -> dict[str, str]:
    """Each board's heading: its task, marked where the task is a misspecified variant."""
    assumed = _assumed_tasks(boards)
    return {t: f"{t} (misspecified: assumes {assumed[t]})" if t in assumed else t for t in boards}


def _markdown_table(rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return lines + ["| " + " | ".join(row) + " |" for row in rows[1:]]


def _markdown(
    boards: dict,
    provenance: list,
    figures: list[tuple[str, str]],
    times: list[list[str]],
    sections: list[tuple[str, str, list[list[str]]]],
) -> str:
    out = ["# sbibench leaderboard", ""]
    out += [f"- **{name}**: {value}" for name, value in provenance]
    out += ["", "Mean ± 95% interval over observations and seeds; *floor*: the same score of "
            "the exact posterior at the same sample size (what a perfect method gets); "
            f"{_directions()}.", ""]  # fmt: skip
    titles = _titles(boards)
    for task, rows in boards.items():
        out += [f"## {titles[task]}", "", *_markdown_table(rows), ""]
    for title, text, rows in sections:
        out += [f"## {title}", "", text, "", *_markdown_table(rows), ""]
    out += ["## Where the time went", "", "Worker seconds per method and phase, summed over "
            "the run (a fit counted once however many observations it serves).", ""]  # fmt: skip
    out += _markdown_table(times)
    out += ["", "Figures: see `report.html` (" + ", ".join(t for t, _ in figures) + ")."]
    return "\n".join(out) + "\n"


def _latex_escape(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("#", r"\#"),
        ("±", r"$\pm$"),
        ("²", r"$^2$"),
        ("θ*", r"$\theta^*$"),
        ("·", r"$\cdot$"),
    ):
        text = text.replace(a, b)
    return text


def _latex_table(rows: list[list[str]], caption: str) -> list[str]:
    """A booktabs table (first row the header), its caption already LaTeX."""
    out = [r"\begin{table}[t]", r"\centering", r"\small"]
    out.append(r"\begin{tabular}{" + "l" + "r" * (len(rows[0]) - 1) + "}")
    out += [r"\toprule", " & ".join(_latex_escape(c) for c in rows[0]) + r" \\", r"\midrule"]
    out += [" & ".join(_latex_escape(c) for c in row) + r" \\" for row in rows[1:]]
    return [
        *out,
        r"\bottomrule",
        r"\end{tabular}",
        r"\caption{" + caption + "}",
        r"\end{table}",
        "",
    ]


def _latex(boards: dict, provenance: list, sections: list[tuple[str, str, list[list[str]]]]) -> str:
    out = ["% sbibench leaderboard; " + "; ".join(f"{n}: {v}" for n, v in provenance)]
    for task, rows in boards.items():
        out += _latex_table(rows, _latex_escape(task) + r": mean $\pm$ 95\% interval over "
                            r"observations and seeds; floor: the exact posterior's score.")  # fmt: skip
    for title, text, rows in sections:
        out += _latex_table(rows, _latex_escape(f"{title}. {text}"))
    return "\n".join(out) + "\n"


def _html_table(rows: list[list[str]]) -> list[str]:
    parts = ["<table><tr>", *(f"<th>{html.escape(c)}</th>" for c in rows[0]), "</tr>"]
    for row in rows[1:]:
        parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return [*parts, "</table>"]


def _html(
    boards: dict,
    provenance: list,
    figures: list[tuple[str, str]],
    times: list[list[str]],
    sections: list[tuple[str, str, list[list[str]]]],
) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>sbibench report</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:2px 8px;text-align:right}td:first-child{text-align:left}</style></head><body>",
        "<h1>sbibench report</h1><ul>",
    ]
    parts += [f"<li><b>{html.escape(n)}</b>: {html.escape(str(v))}</li>" for n, v in provenance]
    parts.append("</ul>")
    titles = _titles(boards)
    for task, rows in boards.items():
        parts += [f"<h2>{html.escape(titles[task])}</h2>", *_html_table(rows)]
    for title, text, rows in sections:
        parts += [f"<h2>{html.escape(title)}</h2>", f"<p>{html.escape(text)}</p>"]
        parts += _html_table(rows)
    parts += ["<h2>Where the time went (worker seconds)</h2>", *_html_table(times)]
    for title, png in figures:
        parts.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
                     f"src='data:image/png;base64,{png}' style='max-width:100%'>")  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def write_report(folder: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write LEADERBOARD.md, report.html (figures embedded) and leaderboard.tex.

    The run folder's results.csv is rebuilt from its records first, so that the table and the
    report agree even when the run that wrote the records was killed before rebuilding it.

    Arguments:
        folder: a run folder written by `sbibench run`.
        out: where to write the report (default: the run folder).
    """
    from sbibench.report.figures import all_figures

    folder = Path(folder)
    out = Path(out) if out is not None else folder
    out.mkdir(parents=True, exist_ok=True)
    table = load_results(folder)
    if table.empty:
        raise ValueError(f"{folder}: no records to report")
    rebuild_table(folder)
    boards = leaderboard(table)
    provenance = _provenance(table)
    figures = [(title, _png(figure)) for title, figure in all_figures(table, folder)]
    paths = [out / "LEADERBOARD.md", out / "report.html", out / "leaderboard.tex"]
    times = time_table(table)
    sections = _sections(table)
    paths[0].write_text(_markdown(boards, provenance, figures, times, sections))
    paths[1].write_text(_html(boards, provenance, figures, times, sections))
    paths[2].write_text(_latex(boards, provenance, sections))
    return paths
