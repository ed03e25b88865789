"""`sbibench report --format sbibm`: a run's records in sbibm's results columns, merging with
sbibm's published rows of the same task, budget, algorithm and observation."""

import math
import shutil
import subprocess
import sys

import pandas
import pytest

from sbibench.records import load_results
from sbibench.report.sbibm_format import ALGORITHMS, COLUMNS, budget_label, sbibm_table


@pytest.fixture(scope="module")
def sbibm_run(tmp_path_factory, suite_text):
    """A small run of a suite named sbibm: REJ-ABC and the exact posterior on linear_gaussian
    at 100 simulations, one observation, scored by sbibm's C2ST recipe."""
    from sbibench.run.runner import run_suite
    from sbibench.run.suite import load_suite

    folder = tmp_path_factory.mktemp("sbibm")
    text = suite_text(
        "sbibm", tasks=["linear_gaussian"], budgets=[100], observations=[1],
        num_posterior_samples=300, metrics=["c2st_sbibm", "nll"], sbc=None,
        methods={"rej_abc": {"num_accepted": 20}, "exact": {}},
    )  # fmt: skip
    (folder / "sbibm.toml").write_text(text)
    run_suite(load_suite(folder / "sbibm.toml"), folder / "run", progress=False)
    return folder / "run"


def test_the_records_become_sbibms_rows_with_its_names(sbibm_run):
    table = load_results(sbibm_run)
    rows = sbibm_table(table)
    assert tuple(rows.columns) == COLUMNS and len(rows) == len(table) == 2
    assert set(rows["task"]) == {"gaussian_linear"}  # sbibm's name of the task
    assert set(rows["num_simulations"]) == {"10²"}  # as sbibm's tables write budgets
    assert set(rows["algorithm"]) == {"REJ-ABC", "exact"}  # sbibm's name; ours where none
    ours = table.set_index(["method", "observation"])
    for row in rows.itertuples():
        method = {v: k for k, v in ALGORITHMS.items()}.get(row.algorithm, row.algorithm)
        record = ours.loc[(method, row.num_observation)]
        assert row.C2ST == record["c2st_sbibm"]
        nltp = record["nll_true_parameters"]  # REJ-ABC has no density: none
        assert row.NLTP == nltp or (math.isnan(row.NLTP) and math.isnan(nltp))
        seconds = sum(record[f"time_{p}"] for p in ("simulate", "train", "propose", "sample"))
        assert row.RT == pytest.approx(seconds / 60)
        assert row.folder == record["key"] and math.isnan(row.MMD)


def test_it_merges_with_sbibms_published_rows(sbibm_run):
    """Rows of sbibm's main_paper.csv (its format: budgets as "10³", gaussian_linear) and
    ours concatenate into one table grouped by the same keys."""
    published = pandas.DataFrame({
        "task": ["gaussian_linear"] * 2, "num_simulations": ["10²"] * 2, "num_observation": [1, 2],
        "algorithm": ["REJ-ABC"] * 2, "C2ST": [0.9, 0.92], "MMD": [0.1, 0.1],
        "MEDDIST": [1.0, 1.0], "NLTP": [math.nan] * 2, "RT": [0.1, 0.1], "KSD": [math.nan] * 2,
        "folder": ["a", "b"],
    })  # fmt: skip
    both = pandas.concat([published, sbibm_table(load_results(sbibm_run))])
    cells = both.groupby(["task", "num_simulations", "algorithm", "num_observation"]).size()
    assert cells[("gaussian_linear", "10²", "REJ-ABC", 1)] == 2  # theirs beside ours


def test_a_failed_record_is_a_row_without_scores(sbibm_run, tmp_path):
    table = load_results(sbibm_run)
    table.loc[0, "status"] = "failed"
    rows = sbibm_table(table)
    failed = rows[(rows["folder"] == table.loc[0, "key"])
                  & (rows["num_observation"] == table.loc[0, "observation"])]  # fmt: skip
    assert len(rows) == len(table) and len(failed) == 1
    assert rows["C2ST"].notna().sum() == len(table) - 1
    assert failed[["C2ST", "NLTP", "RT"]].isna().all(axis=None)


def test_the_command_writes_sbibm_csv_elsewhere_and_leaves_the_run_alone(sbibm_run, tmp_path):
    run = shutil.copytree(sbibm_run, tmp_path / "run")
    before = sorted(p.name for p in run.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "sbibench", "report", str(run), "--format", "sbibm",
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {tmp_path / 'out' / 'sbibm.csv'}"
    written = pandas.read_csv(tmp_path / "out" / "sbibm.csv")
    assert tuple(written.columns) == COLUMNS and len(written) == 2
    assert sorted(p.name for p in run.iterdir()) == before


@pytest.mark.parametrize(
    ("budget", "label"),
    [(1000, "10³"), (10000, "10⁴"), (100000, "10⁵"), (1, "10⁰"), (2000, "2000")],
)
def test_budgets_are_written_as_sbibm_writes_them(budget, label):
    assert budget_label(budget) == label
