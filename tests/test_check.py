"""CI regression checks: a degraded method is caught, an unchanged one passes."""

import shutil
import subprocess
import sys

import pandas as pd
import pytest

from sbibench.check import check


def _csv(run, tmp_path, name, edit=None):
    table = pd.read_csv(run / "results.csv")
    if edit is not None:
        table = edit(table)
    path = tmp_path / name
    table.to_csv(path, index=False)
    return path


def test_an_unchanged_candidate_passes(tiny_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    verdict = check(tiny_run, copy)
    assert not verdict.regressions and not verdict.improvements
    assert {c.verdict for c in verdict.cells} == {"same"}


def test_a_degraded_method_is_caught(tiny_run, tmp_path):
    """The candidate's npe is 0.15 worse in C2ST on every observation; with the C2ST's
    binomial spread on 500 vs 500 samples (sd ~0.016) that is far beyond noise."""

    def degrade(table):
        worse = table["method"] == "npe"
        table.loc[worse, "c2st"] = (table.loc[worse, "c2st"] + 0.15).clip(upper=1.0)
        return table

    verdict = check(tiny_run / "results.csv", _csv(tiny_run, tmp_path, "cand.csv", degrade))
    regressed = {(c.task, c.method) for c in verdict.regressions}
    assert regressed == {("normal_mean", "npe"), ("poisson_gamma", "npe")}


def test_a_change_within_noise_is_not_a_regression(tiny_run, tmp_path):
    def nudge(table):
        table["c2st"] = table["c2st"] + 0.005
        return table

    verdict = check(tiny_run / "results.csv", _csv(tiny_run, tmp_path, "cand.csv", nudge))
    assert not verdict.regressions


def test_failed_or_missing_runs_are_regressions(tiny_run, tmp_path):
    def break_rej(table):
        table.loc[table["method"] == "rej_abc", "status"] = "failed"
        return table[table["method"] != "exact"]

    verdict = check(tiny_run / "results.csv", _csv(tiny_run, tmp_path, "cand.csv", break_rej))
    kinds = {(c.method, c.verdict) for c in verdict.regressions}
    assert ("rej_abc", "failed") in kinds and ("exact", "missing") in kinds


def test_cli_exit_codes(tiny_run, tmp_path):
    def degrade(table):
        table["c2st"] = table["c2st"] + 0.2
        return table

    same = subprocess.run(
        [sys.executable, "-m", "sbibench", "check", "--baseline", str(tiny_run), "--candidate", str(tiny_run)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert same.returncode == 0 and "0 regression(s)" in same.stdout
    worse = _csv(tiny_run, tmp_path, "worse.csv", degrade)
    result = subprocess.run(
        [sys.executable, "-m", "sbibench", "check", "--baseline", str(tiny_run), "--candidate", str(worse)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1 and "regression" in result.stdout


def test_a_table_that_is_not_a_results_table(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not an sbibench results table"):
        check(path, path)
