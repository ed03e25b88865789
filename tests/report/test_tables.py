"""The report's tables: leaderboard cells with Student-t intervals, where the time went, the
misspecified, set-size and dimension-ladder tables."""

import pandas as pd
import pytest

from sbibench.records import load_results
from sbibench.report.render import write_report
from sbibench.report.tables import leaderboard, time_table
from sbibench.run.runner import run_suite
from sbibench.run.suite import load_suite

# normal_mean_sets, a small real grid: observations 1, 6 have n = 1; 2, 7 have n = 3.
SETS_GRID = {
    "name": "sets", "description": "normal_mean_sets, a small real grid",
    "tasks": ["normal_mean_sets"], "observations": [1, 2, 6, 7], "sbc": (20, 20),
    "methods": {"exact": {}, "npe": {"embedding": "deepset", "max_epochs": 3},
                "nle": {"max_epochs": 3, "num_chains": 20, "warmup": 10}},
}  # fmt: skip


def test_leaderboard_cells_are_means_with_intervals(tiny_run):
    table = load_results(tiny_run)
    board = leaderboard(table)["normal_mean"]
    header, rows = board[0], {row[0]: row for row in board[1:]}
    values = table[(table["task"] == "normal_mean") & (table["method"] == "npe")]["c2st"]
    mean = f"{values.mean():.3g}"
    assert rows["npe"][header.index("C2ST")].startswith(mean + " ± ")
    assert rows["npe"][header.index("runs")] == "2"


def test_the_excess_over_the_floor_is_in_floor_sds(tiny_run):
    table = load_results(tiny_run)
    assert table["c2st_floor_sd"].gt(0).all()  # every record carries its floor's spread
    board = leaderboard(table)["normal_mean"]
    header, rows = board[0], {row[0]: row for row in board[1:]}
    column = header.index("C2ST excess (floor sd)")
    assert header[column - 1] == "C2ST floor"
    npe = table[(table["task"] == "normal_mean") & (table["method"] == "npe")]
    # in the larger of the floor's sd and the record's own noise sd
    spread = npe[["c2st_floor_sd", "c2st_noise_sd"]].max(axis=1)
    excess = (npe["c2st"] - npe["c2st_floor"]) / spread
    assert rows["npe"][column].startswith(f"{excess.mean():.3g} ± ")
    # records written before floors had an sd show no excess column
    older = table.drop(columns=["c2st_floor_sd", "mmd_floor_sd", "wasserstein_floor_sd"])
    assert "C2ST excess (floor sd)" not in leaderboard(older)["normal_mean"][0]


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


def test_misspecified_tasks_sit_beside_the_task_they_assume(tiny_run):
    """The tiny run's normal_mean records relabelled as normal_mean_misspecified with C2ST
    moved up by 0.1 (a table test needs two tasks' records, not new numbers): each method's
    row holds the well-specified cell, then the misspecified one."""
    import pandas

    from sbibench.report.tables import _cell, misspecification_table

    table = load_results(tiny_run)
    variant = table[table["task"] == "normal_mean"].copy()
    variant["task"], variant["c2st"] = "normal_mean_misspecified", variant["c2st"] + 0.1
    variant["task_assumes"] = "normal_mean"  # as the misspecified task's records say
    both = pandas.concat([table, variant], ignore_index=True)
    rows = misspecification_table(both)
    header, body = rows[0], {row[2]: row for row in rows[1:]}
    assert header[:6] == ["task", "assumes", "method", "budget", "C2ST well-specified",
                          "C2ST misspecified"]  # fmt: skip
    assert set(body) == set(table[table["task"] == "normal_mean"]["method"])
    npe = table[(table["task"] == "normal_mean") & (table["method"] == "npe")]["c2st"]
    assert body["npe"][4:6] == [_cell(npe), _cell(npe + 0.1)]
    assert len(misspecification_table(table)) == 1  # no pair, only the header
    from sbibench.report.render import Page, _markdown
    from sbibench.report.tables import provenance as _provenance
    from sbibench.report.tables import sections as _sections

    sections = _sections(both)
    assert [title for title, _, _ in sections] == ["Misspecified observations"]
    from sbibench.report.tables import titles

    boards = leaderboard(both)
    boards = {titles(boards, both)[task]: rows for task, rows in boards.items()}
    markdown = _markdown(Page(boards, _provenance(both), [], time_table(both), sections))
    assert "## Misspecified observations" in markdown
    assert "## normal_mean_misspecified (misspecified: assumes normal_mean)" in markdown


@pytest.mark.slow  # a real NPE, NLE and exact run on the sets task: 20 s
def test_scores_are_broken_down_by_set_size(tmp_path, suite_file):
    """A real run on normal_mean_sets (observations 1, 6 have n = 1; 2, 7 have n = 3): one
    row per method, budget and n, each the mean of that n's records; in both reports."""
    from sbibench.report.tables import _cell, set_size_table

    run_suite(load_suite(suite_file(**SETS_GRID)), tmp_path / "run", progress=False)
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
    # records of a task whose observations are not sets (no observation_size): no table
    plain = load_results(tmp_path / "run").assign(task="normal_mean", observation_size=None)
    assert len(set_size_table(plain)) == 1
    markdown, page, latex = write_report(tmp_path / "run", tmp_path / "report")
    assert "## Scores by set size" in markdown.read_text()
    assert "<h2>Scores by set size</h2>" in page.read_text()
    assert r"\caption{Scores by set size." in latex.read_text()


def test_a_dimension_ladder_gets_a_table(ladder_run):
    """A real run on three rungs (D = 2, 5, 10): one row per method with a cell per D (its
    C2ST and seconds); a run on fewer than three dimensions of a family has none."""
    from sbibench.report.tables import dimension_ladders, dimension_table

    table = load_results(ladder_run)
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
    broken = table.copy()
    at_d2 = (broken["task"] == "linear_gaussian_d2") & (broken["method"] == "rej_abc")
    broken.loc[at_d2, "status"], broken.loc[at_d2, "error"] = "failed", "timeout: past 600 s"
    assert {r[1]: r[2] for r in dimension_table(broken)[1:]}["rej_abc"] == "stopped"
    broken.loc[at_d2, "error"] = "ValueError: NaN in the samples"
    assert {r[1]: r[2] for r in dimension_table(broken)[1:]}["rej_abc"] == "failed"
    two_rungs = table[table["task"] != "linear_gaussian"]
    assert dimension_ladders(two_rungs) == {}
    assert len(dimension_table(two_rungs)) == 1


def test_task_facts_come_from_the_records_not_todays_cards(tiny_run, tmp_path):
    """Records carry their task's facts: a task whose card no longer exists still reports as
    misspecified and by set size, and an empty fact read back from results.csv (NaN) means
    none, not "ask the card"."""
    from sbibench.report.tables import _assumed_tasks, _observation_sizes, dimension_ladders

    table = load_results(tiny_run)
    gone = table[table["task"] == "normal_mean"].copy()
    gone["task"], gone["task_assumes"] = "a_task_since_removed", "normal_mean"
    gone["observation_size"] = gone["observation"] * 10
    assert _assumed_tasks(gone) == {"a_task_since_removed": "normal_mean"}
    assert list(_observation_sizes(gone)) == list(gone["observation"] * 10.0)
    table.to_csv(tmp_path / "results.csv", index=False)
    back = load_results(tmp_path / "results.csv")
    assert back["task_assumes"].isna().all()  # "" comes back from CSV as empty
    assert _assumed_tasks(back) == {} and _observation_sizes(back).isna().all()
    assert dimension_ladders(back) == {}
    # what a record says wins over today's card of the same name
    renamed = back.assign(task="normal_mean_sets")  # its card states set sizes; these records none
    assert _observation_sizes(renamed).isna().all()
    # records written before the task facts existed fall back on today's cards
    older = back.drop(columns=["task_family", "task_dim", "task_assumes", "observation_size"])
    assert _assumed_tasks(older) == {} and _observation_sizes(older).isna().all()


def test_intervals_are_at_least_the_recorded_noise():
    """A score whose records carry a noise sd: the half-width is at least 1.96 sqrt(mean(s²) /
    n), so one value, or values that agree by chance, get an interval; records written before
    c2st_noise_sd use their binomial c2st_null_sd."""
    from sbibench.report.tables import _cell, interval, noise_sds

    assert interval([0.7], [0.01]) == pytest.approx((0.7, 1.96 * 0.01))
    assert interval([0.7, 0.7], [0.01, 0.02])[1] == pytest.approx(1.96 * (0.00025 / 2) ** 0.5)
    assert interval([0.5, 0.6], [0.001, 0.001]) == interval([0.5, 0.6])  # the spread is wider
    assert _cell([0.7], [0.01]) == "0.7 ± 0.02"
    both = pd.DataFrame({"c2st_noise_sd": [0.02, None], "c2st_null_sd": [0.01, 0.01]})
    assert noise_sds(both, "c2st").tolist() == [0.02, 0.01]
    assert noise_sds(both.drop(columns="c2st_noise_sd"), "c2st").tolist() == [0.01, 0.01]
    assert noise_sds(both, "mmd") is None


def test_dirty_and_stale_records_are_marked(tiny_run):
    """A record made by uncommitted code, or by other code than today's, is named in the
    provenance and marks its method on the board; today's records are not marked."""
    from sbibench.report.tables import marks, provenance

    table = load_results(tiny_run)
    table["git_revision"] = "abc1234"  # committed code (the fixture's is the checkout's own)
    assert set(marks(table)) == {""}  # the fixture's run was made by today's code
    assert not [name for name, _ in provenance(table) if name.endswith("records")]
    assert "provenance" not in leaderboard(table)["normal_mean"][0]
    npe = table.index[(table["method"] == "npe") & (table["task"] == "normal_mean")]
    exact = table.index[table["method"] == "exact"]
    table.loc[npe, "git_revision"] = "abc1234-dirty"
    table.loc[exact[:1], "code_digest"] = "0" * 16  # made by other code
    found = marks(table)
    assert set(found[npe]) == {"dirty"} and found[exact[0]] == "stale"
    assert (found.drop([*npe, exact[0]]) == "").all()
    lines = dict(provenance(table))
    assert lines["dirty records"].startswith(f"{len(npe)} of {len(table)}, made by code with")
    assert lines["stale records"].startswith(f"1 of {len(table)}, made by other code")
    board = leaderboard(table)
    column = {task: rows[0].index("provenance") for task, rows in board.items()}
    marked = {(task, row[0]): row[column[task]] for task, rows in board.items() for row in rows[1:]}
    assert marked["normal_mean", "npe"] == "dirty" and marked["poisson_gamma", "npe"] == ""
    exact_task = table.loc[exact[0], "task"]
    assert marked[exact_task, "exact"] == "stale"
