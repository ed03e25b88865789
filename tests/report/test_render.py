"""Reports: Markdown, self-contained HTML with figures, LaTeX, all with provenance; rendered in
a real browser; rebuilt from the records when the results table is stale."""

import base64
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest

from sbibench.report.render import summary_table, write_report


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
    # overview, wall time, SBC ECDF bands, coverage (one budget: no against-budget figure)
    assert len(images) == 4
    assert all(base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n" for image in images)
    assert "src='http" not in html  # self-contained
    latex = paths[2].read_text()
    # the ranks at the run's one budget, then one board per task
    assert latex.count(r"\begin{tabular}") == 3 and r"$\pm$" in latex
    assert markdown.index("## Ranks at 200 simulations") < markdown.index("## normal_mean")


def test_summary_table_and_cli(tiny_run, tmp_path):
    assert "normal_mean" in summary_table(tiny_run / "results.csv")
    result = subprocess.run(
        [sys.executable, "-m", "sbibench", "report", str(tiny_run), "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r" / "report.html").is_file()


CHECK_PAGE = """
<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const firstBox = images[0].getBoundingClientRect();  // before anything is opened
  document.querySelectorAll("details").forEach((d) => { d.open = true; });  // check them open
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
  const first = {alt: images[0].alt, top: firstBox.top, bottom: firstBox.bottom};
  document.body.setAttribute("data-check", JSON.stringify({images: images.length, broken, overlaps, widths, first}));
});
</script>
"""


def test_the_report_renders_in_a_real_browser(tiny_run, tmp_path):
    """report.html in headless Chromium (Debian's package; CI installs it): every embedded
    figure loads and is laid out, no heading, list, table or figure overlaps another (with
    every collapsed section opened), and the overview figure is the first, within the first
    screen (1280 x 1000)."""
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
    assert check["first"]["alt"].startswith("Overview") and check["first"]["top"] < 1000
    assert min(check["widths"]) > 300


def test_a_dimension_ladder_gets_a_section_in_every_report(ladder_run, tmp_path):
    markdown, page, latex = write_report(ladder_run, tmp_path / "report")
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
    write_report(run)
    assert table.read_text() == whole


def test_a_report_written_elsewhere_writes_nothing_into_the_run_folder(tiny_run, tmp_path):
    """With --out elsewhere every file of the run folder keeps its inode and modification time
    (results.csv was rewritten, by rename), and a stale results.csv is left as it is."""
    run = shutil.copytree(tiny_run, tmp_path / "run")
    table = run / "results.csv"
    table.write_text(table.read_text().splitlines()[0] + "\n")

    def files():
        return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(run.rglob("*"))}

    before = files()
    write_report(run, tmp_path / "report")
    assert files() == before and (tmp_path / "report" / "LEADERBOARD.md").is_file()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores file permissions")  # fmt: skip
def test_a_report_written_elsewhere_reads_a_read_only_run_folder(tiny_run, tmp_path):
    """With --out elsewhere the report reads the records and writes nothing into the run
    folder (it rebuilt results.csv there, and failed on a read-only folder)."""
    run = shutil.copytree(tiny_run, tmp_path / "run")
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    paths = sorted(run.rglob("*"), reverse=True) + [run]  # files before their folders
    modes = {path: path.stat().st_mode for path in paths}
    try:
        for path in paths:
            path.chmod(modes[path] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        written = write_report(run, tmp_path / "report")
        result = subprocess.run(
            [sys.executable, "-m", "sbibench", "report", str(run), "--out", str(tmp_path / "cli")],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        for path in reversed(paths):  # folders before their files
            path.chmod(modes[path])
    assert all(path.is_file() for path in written)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cli" / "LEADERBOARD.md").is_file()
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before


def test_the_best_row_of_each_budget_is_marked():
    """The competing method with the lowest mean rank at each budget; references never."""
    from sbibench.report.render import best_rows

    rows = [["method", "budget", "runs", "failed", "rank", "C2ST"],
            ["exact", "1000", "2", "0", "reference", "0.5"],
            ["npe", "1000", "2", "0", "1.5 [1.0, 2.0]", "0.6"],
            ["rej_abc", "1000", "2", "0", "1.5 [1.0, 2.0]", "0.7"],
            ["nle", "1000", "2", "0", "2.0 [2.0, 2.0]", "0.8"],
            ["npe", "2000", "2", "0", "2.0 [1.0, 2.0]", "0.6"],
            ["nle", "2000", "2", "0", "1.0 [1.0, 2.0]", "0.7"]]  # fmt: skip
    assert best_rows(rows) == {2, 3, 6}
    assert best_rows([["method", "C2ST"], ["npe", "0.6"]]) == set()
