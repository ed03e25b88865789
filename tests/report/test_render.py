"""Reports: Markdown, self-contained HTML with figures, LaTeX, all with provenance."""

import base64
import re
import shutil
import subprocess
import sys

import pytest

from sbibench.records import load_results
from sbibench.report.render import summary_table, write_report
from sbibench.report.tables import leaderboard, time_table


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

    from sbibench.report.tables import _cell
    from sbibench.report.tables import interval as _interval

    mean, half = _interval([0.5, 0.6])
    assert mean == pytest.approx(0.55)
    assert half == pytest.approx(t.ppf(0.975, 1) * 0.0707107 / 2**0.5, rel=1e-5)  # 12.7 x se
    assert _cell([0.5]) == "0.5" and "±" in _cell([0.5, 0.6])


def _many_methods(tiny_run):
    """The tiny run's records under seventeen method names and five task names, as many as a
    standard leaderboard shows: a layout test needs the count, not new numbers."""
    import pandas

    table = load_results(tiny_run)
    parts = []
    for i in range(17):
        part = table.copy()
        part["method"] = part["method"] + f"_{i:02d}"
        parts.append(part)
    for extra in ("linear_gaussian", "linear_gaussian_vae", "normal_mean_variance"):
        part = parts[0].copy()
        part["task"] = extra
        parts.append(part)
    return pandas.concat(parts, ignore_index=True)


def test_figures_stay_legible_with_seventeen_methods(tiny_run):
    """Five task panels, 51 method labels: no panel's title, ticks or labels overlap another
    panel or the legend once drawn; one legend per figure; a method's colour is the same in
    every figure."""
    import matplotlib.pyplot as plt

    from sbibench.report.figures import all_figures, overlapping_text

    colours = {}
    for title, figure in all_figures(_many_methods(tiny_run), tiny_run):
        assert overlapping_text(figure) == [], title
        assert len(figure.legends) == 1 and all(not a.get_legend() for a in figure.axes)
        for handle in figure.legends[0].legend_handles:
            colour = (
                tuple(handle.get_color())
                if handle.get_label() != "exact posterior's floor"
                else None
            )
            assert colours.setdefault(handle.get_label(), colour) == colour
        plt.close(figure)
    methods = [m for m in colours if m != "exact posterior's floor"]
    assert len(methods) == 51 and len({colours[m] for m in methods}) == 20  # tab20, reused


CHECK_PAGE = """
<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.alt);
  const blocks = [...document.querySelectorAll("h1, h2, ul, table, img")];
  const overlaps = [];
  for (let a = 0; a < blocks.length; a++) {
    for (let b = a + 1; b < blocks.length; b++) {
      const p = blocks[a].getBoundingClientRect(), q = blocks[b].getBoundingClientRect();
      const w = Math.min(p.right, q.right) - Math.max(p.left, q.left);
      const h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
      if (w > 1 && h > 1) overlaps.push(blocks[a].tagName + " / " + blocks[b].tagName);
    }
  }
  const widths = images.map((i) => i.getBoundingClientRect().width);
  document.body.setAttribute("data-check", JSON.stringify({images: images.length, broken, overlaps, widths}));
});
</script>
"""


def test_the_report_renders_in_a_real_browser(tiny_run, tmp_path):
    """report.html in headless Chromium (Debian's package; CI installs it): every embedded
    figure loads and is laid out, and no heading, list, table or figure overlaps another."""
    import json
    import os
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium (apt-get install chromium)")
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    write_report(tiny_run, tmp_path)
    page = tmp_path / "checked.html"
    page.write_text(
        (tmp_path / "report.html").read_text().replace("</body>", CHECK_PAGE + "</body>")
    )
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    found = re.search(r'data-check="([^"]*)"', dom)
    assert found, dom[-2000:]
    check = json.loads(found.group(1).replace("&quot;", '"'))
    assert check["images"] == 4 and check["broken"] == [] and check["overlaps"] == []
    assert min(check["widths"]) > 300


def test_misspecified_tasks_sit_beside_the_task_they_assume(tiny_run):
    """The tiny run's normal_mean records relabelled as normal_mean_misspecified with C2ST
    moved up by 0.1 (a table test needs two tasks' records, not new numbers): each method's
    row holds the well-specified cell, then the misspecified one."""
    import pandas

    from sbibench.report.tables import _cell, misspecification_table

    table = load_results(tiny_run)
    variant = table[table["task"] == "normal_mean"].copy()
    variant["task"], variant["c2st"] = "normal_mean_misspecified", variant["c2st"] + 0.1
    both = pandas.concat([table, variant], ignore_index=True)
    rows = misspecification_table(both)
    header, body = rows[0], {row[2]: row for row in rows[1:]}
    assert header[:6] == ["task", "assumes", "method", "budget", "C2ST well-specified",
                          "C2ST misspecified"]  # fmt: skip
    assert set(body) == set(table[table["task"] == "normal_mean"]["method"])
    npe = table[(table["task"] == "normal_mean") & (table["method"] == "npe")]["c2st"]
    assert body["npe"][4:6] == [_cell(npe), _cell(npe + 0.1)]
    assert len(misspecification_table(table)) == 1  # no pair, only the header
    from sbibench.report.render import _markdown
    from sbibench.report.tables import provenance as _provenance
    from sbibench.report.tables import sections as _sections

    sections = _sections(both)
    assert [title for title, _, _ in sections] == ["Misspecified observations"]
    from sbibench.report.tables import titles

    boards = leaderboard(both)
    boards = {titles(boards, both)[task]: rows for task, rows in boards.items()}
    markdown = _markdown(boards, _provenance(both), [], time_table(both), sections)
    assert "## Misspecified observations" in markdown
    assert "## normal_mean_misspecified (misspecified: assumes normal_mean)" in markdown


SETS_SUITE = """\
name = "sets"
description = "normal_mean_sets, a small real grid"
tasks = ["normal_mean_sets"]
budgets = [200]
seeds = [0]
observations = [1, 2, 6, 7]
num_posterior_samples = 500
metrics = ["c2st", "mmd", "wasserstein", "moments", "nll"]

[sbc]
num_datasets = 20
num_posterior_samples = 20

[methods.exact]
[methods.npe]
embedding = "deepset"
max_epochs = 3
[methods.nle]
max_epochs = 3
num_chains = 20
warmup = 10
"""


@pytest.mark.slow  # a real NPE, NLE and exact run on the sets task: 20 s
def test_scores_are_broken_down_by_set_size(tmp_path):
    """A real run on normal_mean_sets (observations 1, 6 have n = 1; 2, 7 have n = 3): one
    row per method, budget and n, each the mean of that n's records; in both reports."""
    from sbibench.report.tables import _cell, set_size_table
    from sbibench.run.runner import run_suite
    from sbibench.run.suite import load_suite

    (tmp_path / "sets.toml").write_text(SETS_SUITE)
    run_suite(load_suite(tmp_path / "sets.toml"), tmp_path / "run", progress=False)
    table = load_results(tmp_path / "run")
    assert (table["status"] == "ok").all(), table["error"].tolist()
    assert (table["num_invalid_simulations"] == 0).all()  # padding is not invalid
    assert table["sbc_ks_pvalue" if "sbc_ks_pvalue" in table else "c2st"].notna().all()
    rows = set_size_table(table)
    header, body = rows[0], rows[1:]
    assert header[:6] == ["task", "method", "budget", "n", "records", "C2ST"]
    assert {(row[1], row[3]) for row in body} == {
        (m, n) for m in ("exact", "npe", "nle") for n in ("1", "3")
    }
    assert all(row[4] == "2" for row in body)
    exact = table[(table["method"] == "exact") & table["observation"].isin([2, 7])]["c2st"]
    row = next(row for row in body if row[1] == "exact" and row[3] == "3")
    assert row[5] == _cell(exact)
    assert len(set_size_table(load_results(tmp_path / "run").assign(task="normal_mean"))) == 1
    markdown, page, latex = write_report(tmp_path / "run", tmp_path / "report")
    assert "## Scores by set size" in markdown.read_text()
    assert "<h2>Scores by set size</h2>" in page.read_text()
    assert r"\caption{Scores by set size." in latex.read_text()


LADDER_SUITE = """\
name = "rungs"
description = "three rungs of the dimension ladder"
tasks = ["linear_gaussian_d2", "linear_gaussian_d5", "linear_gaussian"]
budgets = [300]
seeds = [0]
observations = [1]
num_posterior_samples = 500
metrics = ["c2st"]

[sbc]
num_datasets = 0
num_posterior_samples = 10

[methods.exact]
[methods.rej_abc]
num_accepted = 30
"""


def test_a_dimension_ladder_gets_a_table_and_a_figure(tmp_path):
    """A real run on three rungs (D = 2, 5, 10): one row per method with a cell per D (its
    C2ST and seconds), and a figure of C2ST, training and sampling time against D; a run on
    fewer than three dimensions of a family has neither."""
    from sbibench.report.figures import all_figures, overlapping_text
    from sbibench.report.tables import dimension_ladders, dimension_table
    from sbibench.run.runner import run_suite
    from sbibench.run.suite import load_suite

    (tmp_path / "rungs.toml").write_text(LADDER_SUITE)
    run_suite(load_suite(tmp_path / "rungs.toml"), tmp_path / "run", progress=False)
    table = load_results(tmp_path / "run")
    assert (table["status"] == "ok").all(), table["error"].tolist()
    ladder = {"linear_gaussian_d2": 2, "linear_gaussian_d5": 5, "linear_gaussian": 10}
    assert dimension_ladders(table) == {"linear_gaussian": ladder}
    rows = dimension_table(table)
    assert rows[0] == ["family", "method", "D = 2", "D = 5", "D = 10"]
    cells = {row[1]: row[2:] for row in rows[1:]}
    assert set(cells) == {"exact", "rej_abc"}
    for d, cell in zip((2, 5, 10), cells["rej_abc"], strict=True):
        task = next(name for name, dim in ladder.items() if dim == d)
        c2st = table[(table["task"] == task) & (table["method"] == "rej_abc")]["c2st"].mean()
        assert cell.startswith(f"{c2st:.3f} · ") and cell.endswith(" s")
    # 500 vs 500 samples: the exact posterior's C2ST is within a few sd (about 0.02) of 0.5
    assert all(abs(float(cell.split(" · ")[0]) - 0.5) < 0.1 for cell in cells["exact"])
    figures = dict(all_figures(table, tmp_path / "run"))
    figure = figures["C2ST, training and sampling time against the parameter dimension"]
    titles = [axis.get_title() for axis in figure.axes if axis.get_visible()]
    assert titles == [
        "linear_gaussian: C2ST",
        "linear_gaussian: training seconds",
        "linear_gaussian: sampling seconds",
    ]
    assert all(axis.get_xscale() == "log" for axis in figure.axes if axis.get_visible())
    assert overlapping_text(figure) == []
    broken = table.copy()
    at_d2 = (broken["task"] == "linear_gaussian_d2") & (broken["method"] == "rej_abc")
    broken.loc[at_d2, "status"], broken.loc[at_d2, "error"] = "failed", "timeout: past 600 s"
    assert {r[1]: r[2] for r in dimension_table(broken)[1:]}["rej_abc"] == "stopped"
    broken.loc[at_d2, "error"] = "ValueError: NaN in the samples"
    assert {r[1]: r[2] for r in dimension_table(broken)[1:]}["rej_abc"] == "failed"
    two_rungs = table[table["task"] != "linear_gaussian"]
    assert dimension_ladders(two_rungs) == {}
    assert len(dimension_table(two_rungs)) == 1
    markdown, page, latex = write_report(tmp_path / "run", tmp_path / "report")
    assert "## Scores by dimension" in markdown.read_text()
    assert "<h2>Scores by dimension</h2>" in page.read_text()
    tex = latex.read_text()
    assert r"\caption{Scores by dimension." in tex and r"D = 10 \\" in tex
    assert r" $\cdot$ " in tex  # the cells' separator


def test_a_report_rebuilds_a_stale_results_table(tiny_run, tmp_path):
    # A run killed before its end leaves results.csv behind its records; the report rebuilds it.
    # A copy, so that the shared run folder stays whole for the other tests.
    run = shutil.copytree(tiny_run, tmp_path / "run")
    table = run / "results.csv"
    whole = table.read_text()
    table.write_text(whole.splitlines()[0] + "\n")
    write_report(run, tmp_path / "report")
    assert table.read_text() == whole
