"""Reports: Markdown, self-contained HTML with figures, LaTeX, all with provenance."""

import base64
import re
import subprocess
import sys

import pytest

from sbibench.report import leaderboard, summary_table, time_table, write_report
from sbibench.results import load_results


def test_report_files_hold_tables_figures_and_provenance(tiny_run, tmp_path):
    paths = write_report(tiny_run, tmp_path)
    assert [p.name for p in paths] == ["LEADERBOARD.md", "report.html", "leaderboard.tex"]
    markdown = paths[0].read_text()
    for text in ("## normal_mean", "## poisson_gamma", "| exact | 200 |", "| rej_abc | 200 |",
                 "C2ST floor", "**sbibench**", "**git revision**", "**machine (CPU, cores)**",
                 "**seeds**: 0", "**budgets**: 200"):  # fmt: skip
        assert text in markdown, text
    html = paths[1].read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) == 4  # budget, wall time, SBC ECDF bands, coverage
    assert all(base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n" for image in images)
    assert "src='http" not in html  # self-contained
    latex = paths[2].read_text()
    assert latex.count(r"\begin{tabular}") == 2 and r"$\pm$" in latex


def test_leaderboard_cells_are_means_with_intervals(tiny_run):
    table = load_results(tiny_run)
    board = leaderboard(table)["normal_mean"]
    header, rows = board[0], {row[0]: row for row in board[1:]}
    values = table[(table["task"] == "normal_mean") & (table["method"] == "npe")]["c2st"]
    mean = f"{values.mean():.3g}"
    assert rows["npe"][header.index("C2ST")].startswith(mean + " ± ")
    assert rows["npe"][header.index("runs")] == "2"


def test_summary_table_and_cli(tiny_run, tmp_path):
    assert "normal_mean" in summary_table(tiny_run / "results.csv")
    result = subprocess.run(
        [sys.executable, "-m", "sbibench", "report", str(tiny_run), "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r" / "report.html").is_file()


def test_time_table_counts_a_fit_once_and_every_scoring(tiny_run):
    table = load_results(tiny_run)
    times = time_table(table)
    header, rows = times[0], {row[0]: row for row in times[1:]}
    npe = table[table["method"] == "npe"]
    # npe: one fit per task serves its two observations: train time once per job ...
    train = npe.groupby("key")["time_train"].first().sum()
    assert rows["npe"][header.index("jobs")] == "2"
    assert rows["npe"][header.index("train (s)")] == f"{train:.0f}"
    # ... scoring once per record; the total is the sum of the phases.
    assert rows["npe"][header.index("score (s)")] == f"{npe['time_score'].sum():.0f}"
    shares = [float(row[-1].rstrip("%")) for row in times[1:]]
    assert abs(sum(shares) - 100) <= len(shares)  # rounded percentages
    assert "## Where the time went" in write_report(tiny_run, tiny_run.parent / "r")[0].read_text()


def test_intervals_are_student_t_and_absent_for_one_value():
    from scipy.stats import t

    from sbibench.report import _cell, _interval

    mean, half = _interval([0.5, 0.6])
    assert mean == pytest.approx(0.55)
    assert half == pytest.approx(t.ppf(0.975, 1) * 0.0707107 / 2**0.5, rel=1e-5)  # 12.7 x se
    assert _cell([0.5]) == "0.5" and "±" in _cell([0.5, 0.6])
