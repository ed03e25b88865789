"""The report of a run folder: Markdown (LEADERBOARD.md), HTML with figures (report.html),
LaTeX (leaderboard.tex), and the terminal's summary table, from the tables of
`sbibench.report.tables` and the figures of `sbibench.report.figures`.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import math
from pathlib import Path
from typing import Any

from sbibench.records import load_results, rebuild_table
from sbibench.report import calibration, tables
from sbibench.report.figures import all_figures
from sbibench.scoring import headline

__all__ = ["summary_table", "write_report"]


def summary_table(results: str | Path) -> str:
    """A short text table for the terminal: the headline score (`sbibench.scoring.headline`)
    and its floor by task and method."""
    table = load_results(results)
    column = headline().columns[0]
    name, label = column.name, column.label or column.name
    # columns as wide as their longest entry, and a space apart
    tw = max([len("task"), *map(len, table["task"].astype(str))]) + 2
    mw = max([len("method"), *map(len, table["method"].astype(str))]) + 2
    lines = [
        f"{label}: mean over observations and seeds ± the half-width of its 95% Student-t "
        "interval, at least 1.96 x the records' own noise sd of the mean;",
        "floor: what the exact posterior scores at the same sample size.",
        f"{'task':{tw}}{'method':{mw}}{'budget':>8}{label:>16}{'floor':>8}{'failed':>8}",
    ]
    for (task, method, budget), group in table.groupby(["task", "method", "budget"]):
        good = group[group["status"] == "ok"]
        noise = tables.noise_sds(good, name)
        mean, half = tables.interval(good[name], noise) if name in good else (math.nan, 0)
        floor, _ = (
            tables.interval(good[f"{name}_floor"]) if f"{name}_floor" in good else (math.nan, 0)
        )
        score = "–" if math.isnan(mean) else f"{mean:.3f}"
        score += "" if math.isnan(half) else f" ± {half:.3f}"
        failed = int((group["status"] != "ok").sum())
        floor = "–" if math.isnan(floor) else f"{floor:.3f}"
        lines.append(f"{task:{tw}}{method:{mw}}{budget:>8}{score:>16}{floor:>8}{failed:>8}")
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Page:
    """What every rendering of a report shows.

    Attributes:
        boards: per-task leaderboard rows (header first), keyed by the board's title.
        provenance: (name, value) lines of the run's provenance.
        figures: (title, PNG as base64) of each figure.
        times: where the worker time went, rows with a header first.
        sections: (title, what it shows, rows with a header first) beside the boards.
        rule: the calibration verdicts' rule (`sbibench.metrics.verdict.RULE`) where the
            boards show verdicts, else empty.
        ranks: (title, what it shows, rows with a header first) of the ranks per budget
            (`sbibench.report.tables.rank_sections`), shown first.
    """

    boards: dict[str, list[list[str]]]
    provenance: list[tuple[str, str]]
    figures: list[tuple[str, str]]
    times: list[list[str]]
    sections: list[tuple[str, str, list[list[str]]]]
    rule: str = ""
    ranks: list[tuple[str, str, list[list[str]]]] = dataclasses.field(default_factory=list)

    def parts(self) -> tuple:
        return self.boards, self.provenance, self.figures, self.times, self.sections


def _markdown_table(rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return lines + ["| " + " | ".join(row) + " |" for row in rows[1:]]


def _legend() -> str:
    """What the boards' cells mean, for every rendering that has room for it."""
    return (
        "Mean ± 95% interval over observations and seeds; floor: the same score of the exact "
        "posterior at the same sample size (what a perfect method gets, mean over independent "
        "exact draws); excess (floor sd): (score - floor) / the floor's sd, about N(0, 1) for a "
        f"perfect method; {tables.directions()}; provenance (where shown): dirty, some records "
        "were made by code with uncommitted changes; stale, by other code or task data than "
        "today's"
    )


def _markdown(page: Page) -> str:
    boards, provenance, figures, times, sections = page.parts()
    out = ["# sbibench leaderboard", ""]
    out += [f"- **{name}**: {value}" for name, value in provenance]
    out += ["", f"{_legend()}.", ""]
    if page.rule:
        out += [page.rule, ""]
    for title, text, rows in page.ranks:
        out += [f"## {title}", "", text, "", *_markdown_table(rows), ""]
    for title, rows in boards.items():
        out += [f"## {title}", "", *_markdown_table(rows), ""]
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


def _latex(page: Page) -> str:
    boards, provenance, _, _, sections = page.parts()
    out = ["% sbibench leaderboard; " + "; ".join(f"{n}: {v}" for n, v in provenance)]
    rule = " " + _latex_escape(page.rule) if page.rule else ""
    for title, text, rows in page.ranks:
        out += _latex_table(rows, _latex_escape(f"{title}. {text}"))
    for task, rows in boards.items():
        out += _latex_table(rows, _latex_escape(task) + r": mean $\pm$ 95\% interval over "
                            r"observations and seeds; floor: the exact posterior's score; excess: "
                            r"(score $-$ floor) / the floor's sd." + rule)  # fmt: skip
    for title, text, rows in sections:
        out += _latex_table(rows, _latex_escape(f"{title}. {text}"))
    return "\n".join(out) + "\n"


def _html_table(rows: list[list[str]], best: set[int] | None = None) -> list[str]:
    """A table (first row the header); rows whose index is in ``best`` are bold."""
    parts = ["<table><tr>", *(f"<th>{html.escape(c)}</th>" for c in rows[0]), "</tr>"]
    for i, row in enumerate(rows[1:], start=1):
        cells = "".join(f"<td>{html.escape(c)}</td>" for c in row)
        parts.append(
            f"<tr class='best'>{cells}</tr>" if best and i in best else f"<tr>{cells}</tr>"
        )
    return [*parts, "</table>"]


def best_rows(rows: list[list[str]]) -> set[int]:
    """Indices of a board's rows (first row the header) with the best mean rank among the
    competing methods at their budget (the rank column's first number; references and rows
    without a rank are never best)."""
    if "rank" not in rows[0] or "budget" not in rows[0]:
        return set()
    rank, budget = rows[0].index("rank"), rows[0].index("budget")
    best: dict[str, tuple[float, set[int]]] = {}
    for i, row in enumerate(rows[1:], start=1):
        try:
            value = float(row[rank].split()[0])
        except (ValueError, IndexError):  # "reference", "–"
            continue
        low, found = best.get(row[budget], (math.inf, set()))
        if value < low:
            best[row[budget]] = (value, {i})
        elif value == low:
            found.add(i)
    return {i for _, found in best.values() for i in found}


_STYLE = (
    "<style>body{font-family:sans-serif;max-width:1280px;margin:auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:0.5em 0 1em}td,th{border:1px solid #ccc;"
    "padding:2px 8px;text-align:right}td:first-child{text-align:left}"
    "tr.best td{font-weight:bold;background:#eef6ee}img{max-width:100%}"
    "details{margin:0.3em 0}summary{cursor:pointer;font-size:1.15em;font-weight:bold}"
    ".legend{font-size:0.9em;color:#333}</style>"
)


def _html(page: Page) -> str:
    """The page opens on the overview (a methods x tasks grid per budget) and the ranks;
    the score against budget follows, then each task's board (collapsed, best row bold), the
    sections, the time, the remaining figures, and the run's provenance (collapsed)."""
    boards, provenance, figures, times, sections = page.parts()
    first = [f for f in figures if f[0].startswith("Overview")]
    budget = [f for f in figures if "against simulation budget" in f[0]]
    rest = [f for f in figures if f not in first and f not in budget]

    def image(title: str, png: str) -> str:
        return (f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
                f"src='data:image/png;base64,{png}'>")  # fmt: skip

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>sbibench report</title>",
        _STYLE + "</head><body>",
        "<h1>sbibench report: " + html.escape(dict(provenance).get("suite", "")) + "</h1>",
    ]
    warnings = [(n, v) for n, v in provenance if n in ("dirty records", "stale records")]
    parts += [f"<p><b>{html.escape(n)}</b>: {html.escape(v)}</p>" for n, v in warnings]
    parts += [image(title, png) for title, png in first]
    parts.append(f"<p class='legend'>{html.escape(_legend())}.</p>")
    for title, text, rows in page.ranks:
        parts += [f"<h2>{html.escape(title)}</h2>", f"<p class='legend'>{html.escape(text)}</p>"]
        parts += _html_table(rows, {1})
    parts += [image(title, png) for title, png in budget]
    parts.append("<h2>Per task</h2>")
    if page.rule:
        parts.append(f"<p class='legend'>{html.escape(page.rule)}</p>")
    for title, rows in boards.items():
        parts += [f"<details><summary>{html.escape(title)}</summary>"]
        parts += [*_html_table(rows, best_rows(rows)), "</details>"]
    for title, text, rows in sections:
        parts += [f"<h2>{html.escape(title)}</h2>", f"<p>{html.escape(text)}</p>"]
        parts += _html_table(rows)
    parts += ["<h2>Where the time went (worker seconds)</h2>", *_html_table(times)]
    parts += [image(title, png) for title, png in rest]
    parts += ["<details><summary>The run: suite, code, versions, machine, dates</summary><ul>"]
    parts += [f"<li><b>{html.escape(n)}</b>: {html.escape(str(v))}</li>" for n, v in provenance]
    parts += ["</ul></details>", "</body></html>"]
    return "\n".join(parts)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def write_report(folder: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write LEADERBOARD.md, report.html (figures embedded) and leaderboard.tex.

    The report is made from the records themselves (read into memory). Written into the run
    folder, it also rebuilds the folder's results.csv, so that the table and the report agree
    even when the run that wrote the records was killed before rebuilding it; written
    elsewhere, it writes nothing into the run folder, which may be read-only.

    Arguments:
        folder: a run folder written by `sbibench run`.
        out: where to write the report (default: the run folder).
    """
    folder = Path(folder)
    out = Path(out) if out is not None else folder
    out.mkdir(parents=True, exist_ok=True)
    table = load_results(folder)
    if table.empty:
        raise ValueError(f"{folder}: no records to report")
    if out.resolve() == folder.resolve():
        rebuild_table(folder)
    from sbibench.metrics.verdict import RULE  # sbibench.metrics loads torch

    verdicts = calibration.verdicts(table, folder)
    boards = tables.leaderboard(table, verdicts)
    titles = tables.titles(boards, table)  # each task, marked where it is misspecified
    page = Page(
        boards={titles[task]: rows for task, rows in boards.items()},
        provenance=tables.provenance(table),
        figures=[(title, _png(figure)) for title, figure in all_figures(table, folder)],
        times=tables.time_table(table),
        sections=tables.sections(table),
        rule=RULE if verdicts else "",
        ranks=tables.rank_sections(table),
    )
    paths = [out / "LEADERBOARD.md", out / "report.html", out / "leaderboard.tex"]
    for path, render in zip(paths, (_markdown, _html, _latex), strict=True):
        path.write_text(render(page))
    return paths
