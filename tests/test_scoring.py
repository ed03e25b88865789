"""The score registry: a score added by one entry reaches suites, evaluation, records, the
report and check; entries are checked; the floor scores match the stored noise floors."""

import json
import math

import pytest
import torch

from sbibench import scoring
from sbibench.records import load_results, record_columns
from sbibench.report.check import check
from sbibench.report.render import write_report
from sbibench.report.tables import leaderboard
from sbibench.run.runner import run_suite
from sbibench.run.suite import SuiteError, load_suite
from sbibench.scoring import Column, Draws, Rule, Score, compute, get_score, register_score
from sbibench.task import get_task


@pytest.fixture
def registry(monkeypatch):
    """The registry as it is, restored after the test."""
    monkeypatch.setattr(scoring, "_REGISTRY", dict(scoring._REGISTRY))
    return scoring._REGISTRY


def median_error(draws: Draws) -> dict:
    """Mean absolute error of the coordinate-wise median, in units of the reference's sd,
    with its noise sd: two sample medians of N points differ by about 1.2533 sd sqrt(2 / N)."""
    scale = draws.reference.std(0)
    error = (draws.samples.median(0).values - draws.reference.median(0).values).abs() / scale
    return {
        "median_error": float(error.mean()),
        "median_error_sd": 1.2533 * math.sqrt(2 / len(draws.samples)),
    }


MEDIAN = Score(
    "median",
    median_error,
    (
        Column("median_error", "median err.", "lower", Rule("noise", "median_error_sd")),
        Column("median_error_sd"),
    ),
    options="coordinate-wise median, |difference| / reference sd, mean over parameters",
)

# A score added by one registry entry, on two cheap methods.
MEDIAN_GRID = {
    "name": "median", "description": "a score added by one registry entry",
    "tasks": ["normal_mean"], "num_posterior_samples": 300, "metrics": ["median"],
    "sbc": (20, 10), "methods": {"exact": {}, "rej_abc": {"num_accepted": 20}},
}  # fmt: skip


def test_a_score_added_by_one_entry_flows_through_everything(registry, tmp_path, suite_file):
    path = suite_file(**MEDIAN_GRID)
    with pytest.raises(SuiteError, match="unknown score.*'median'"):
        load_suite(path)
    register_score(MEDIAN)
    # suite validation
    suite = load_suite(path)
    assert suite.metrics == ("median",)
    # evaluation, in this process: a score registered here is not in a worker process's
    # registry (one from an entry point is)
    run_suite(suite, tmp_path / "run", executor="serial", progress=False)
    table = load_results(tmp_path / "run")
    assert (table["status"] == "ok").all() and table["median_error"].notna().all()
    exact = table[table["method"] == "exact"]["median_error"]
    abc = table[table["method"] == "rej_abc"]["median_error"]
    assert exact.max() < 0.3 and abc.mean() > exact.mean()  # 300 exact draws vs 20 accepted
    assert table["c2st"].isna().all()  # only what the suite asks for
    # the record schema: its columns after the built-in scores, before the timings
    columns = record_columns()
    start = columns.index("coverage_ecdf_p")  # the last built-in column
    assert columns[start + 1 : start + 3] == ["median_error", "median_error_sd"]
    header = (tmp_path / "run" / "results.csv").read_text().splitlines()[0].split(",")
    assert header[: len(columns)] == columns
    # the report: its label in the leaderboard and its direction in the notes
    board = leaderboard(table)["normal_mean"]
    assert "median err." in board[0]
    markdown = write_report(tmp_path / "run", tmp_path / "report")[0].read_text()
    assert "median err." in markdown and "lower is better:" in markdown
    # check: judged by its rule (a paired change against its recorded noise sd) ...
    same = check(tmp_path / "run", tmp_path / "run")
    judged = [c for c in same.cells if c.score == "median_error"]
    assert {c.method for c in judged} == {"exact", "rej_abc"}
    assert {c.verdict for c in judged} == {"same"} and same.exit_code == 0
    worse = table.copy()
    worse.loc[worse["method"] == "rej_abc", "median_error"] += 1.0
    worse.to_csv(tmp_path / "worse.csv", index=False)
    regressed = check(tmp_path / "run", tmp_path / "worse.csv")
    assert {(c.method, c.score) for c in regressed.regressions} == {("rej_abc", "median_error")}
    # ... and not judged without the noise it needs.
    table.drop(columns=["median_error_sd"]).to_csv(tmp_path / "blind.csv", index=False)
    blind = check(tmp_path / "blind.csv", tmp_path / "run")
    assert {c.score for c in blind.undecided} == {"median_error"} and blind.exit_code == 2


def test_a_function_writing_an_undeclared_column_is_an_error(registry):
    def sloppy(draws):
        return {"sloppy": 1.0, "extra": 2.0}

    metric = register_score(Score("sloppy", sloppy, (Column("sloppy", "S", "lower"),)))
    draws = Draws(torch.zeros(3, 1), torch.zeros(3, 1), 1.0)
    with pytest.raises(ValueError, match="score 'sloppy' returned undeclared column.*extra"):
        compute(metric, draws)


def test_entries_are_checked(registry):
    with pytest.raises(ValueError, match="registered already"):
        register_score(get_score("c2st"))
    with pytest.raises(ValueError, match="column 'mmd' is written by 'mmd'"):
        register_score(Score("mmd2", median_error, (Column("mmd"),)))
    register_score(Score("status_score", median_error, (Column("status"),)))
    with pytest.raises(ValueError, match="score 'status_score': column 'status' is every record's"):
        record_columns()
    with pytest.raises(ValueError, match="a floor score .* first column is named like it"):
        Score("median", median_error, (Column("median_error"),), floor=True)
    with pytest.raises(ValueError, match="needs a direction"):
        Column("x", "X", rule=Rule("noise", "x_sd"))
    with pytest.raises(ValueError, match="rule kind 'zscore' unknown"):
        Rule("zscore", "x_sd")
    with pytest.raises(ValueError, match="unknown score 'median'; known: c2st, c2st_sbibm, mmd"):
        get_score("median")


def test_a_function_may_be_named_by_module_and_attribute(registry):
    metric = register_score(Score("median", "tests.test_scoring:median_error", MEDIAN.columns))
    draws = Draws(torch.randn(200, 2), torch.randn(200, 2), 1.0)
    assert set(compute(metric, draws)) == {"median_error", "median_error_sd"}


def test_the_floor_scores_are_those_of_the_stored_noise_floors():
    stored = json.loads(
        (get_task("normal_mean").card_path.parent.parent / "reference_posteriors"
         / "normal_mean" / "noise_floors.json").read_text()
    )  # fmt: skip
    assert scoring.SCORE_OPTIONS == stored["options"] == scoring.score_options()
    assert scoring.FLOOR_SCORES == ("c2st", "mmd", "wasserstein")
    assert set(scoring.FLOOR_SCORES) <= set(stored["floors"][0])


def test_old_records_without_a_new_column_still_load(tiny_run, tmp_path):
    """Records of earlier code (no sbc_num_parameters) load, empty there, and are checked."""
    from sbibench.records import read_job, write_job

    for path in sorted((tiny_run / "records").glob("*.json")):
        records = [
            {k: v for k, v in r.items() if k != "sbc_num_parameters"} for r in read_job(path)
        ]
        write_job(tmp_path / "old", path.stem, records)
    table = load_results(tmp_path / "old")
    assert list(table.columns[: len(record_columns())]) == record_columns()
    assert table["sbc_num_parameters"].isna().all() and table["c2st"].notna().all()
    assert check(tmp_path / "old", tiny_run).exit_code == 0


def test_records_name_the_c2st_recipe_by_its_column(tmp_path, make_suite):
    """sbibm's recipe is its own score, ``c2st_sbibm``: a record scored by it says so."""
    recipes = {"name": "recipes", "metrics": ["c2st", "c2st_sbibm"], "methods": {"exact": {}}}
    run_suite(make_suite(**{**MEDIAN_GRID, **recipes}), tmp_path / "run", progress=False)
    table = load_results(tmp_path / "run")
    # the exact posterior against its reference: both recipes near 0.5 (300 per set: null sd
    # 0.5 / sqrt(600) = 0.020, so 0.09 is four and a half of them)
    assert ((table["c2st_sbibm"] - 0.5).abs() < 0.09).all()
    assert ((table["c2st"] - 0.5).abs() < 0.09).all()
    assert (table["c2st_sbibm_null_sd"] == 0.5 / math.sqrt(600)).all()


def test_a_score_only_the_driver_registered_fails_the_workers_jobs_by_name(
    registry, tmp_path, suite_file
):
    """A worker process imports sbibench afresh: a score registered at run time in the
    driver is not in its registry, so its jobs fail naming the score, never leaving its
    columns empty as if it had been computed."""
    register_score(MEDIAN)
    suite = load_suite(suite_file(**{**MEDIAN_GRID, "methods": {"exact": {}}}))
    summary = run_suite(suite, tmp_path / "run", executor="processes", workers=1, progress=False)
    assert not summary.ok
    table = load_results(tmp_path / "run")
    assert (table["status"] == "failed").all()
    assert table["error"].str.contains("median not registered in this worker process").all()
