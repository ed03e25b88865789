"""CI regression checks: a degraded method is caught, an unchanged one passes."""

import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from sbibench.report.check import check, format_verdict


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
    """The candidate's rej_abc is 0.15 worse in C2ST on every observation; with the C2ST's
    binomial spread on 500 vs 500 samples (sd ~0.016) that is far beyond noise. (Its baseline
    C2ST is 0.52-0.82, so the worse values stay below 1; npe, at 3 epochs, is near 0.9.)"""

    def degrade(table):
        worse = table["method"] == "rej_abc"
        table.loc[worse, "c2st"] = table.loc[worse, "c2st"] + 0.15
        return table

    verdict = check(tiny_run / "results.csv", _csv(tiny_run, tmp_path, "cand.csv", degrade))
    regressed = {(c.task, c.method) for c in verdict.regressions}
    assert regressed == {("normal_mean", "rej_abc"), ("poisson_gamma", "rej_abc")}


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
    # a cell whose runs all failed is said once, not once more per score
    assert {c.score for c in verdict.cells if c.method == "rej_abc"} == {""}


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


def _finding(verdict, task, method, score):
    (found,) = [c for c in verdict.cells if (c.task, c.method, c.score) == (task, method, score)]
    return found


def _edit(table, method, column, value, task="normal_mean"):
    rows = (table["task"] == task) & (table["method"] == method)
    table.loc[rows, column] = value
    return table


def test_sbc_regression_uses_a_bonferroni_level_over_fits_and_parameters(tiny_run, tmp_path):
    """Rule: the candidate's smallest SBC p-value falls below alpha / m (m: fits x parameters
    over every compared cell) while the baseline's does not."""
    table = pd.read_csv(tiny_run / "results.csv")
    fits = table.dropna(subset=["sbc_ecdf_p_min"]).drop_duplicates(["task", "method", "seed"])
    level = 0.05 / fits["sbc_num_parameters"].sum()
    assert 0 < level < 0.05 / 2  # more than one test: the level is corrected

    def calibrated(t):
        return _edit(t, "exact", "sbc_ecdf_p_min", 0.5)

    base = _csv(tiny_run, tmp_path, "base.csv", calibrated)

    def rejected(t):
        return _edit(calibrated(t), "exact", "sbc_ecdf_p_min", level / 2)

    verdict = check(base, _csv(tiny_run, tmp_path, "cand.csv", rejected))
    found = _finding(verdict, "normal_mean", "exact", "sbc_ecdf_p_min")
    assert found.verdict == "regression" and found.limit == pytest.approx(level)
    assert verdict.exit_code == 1
    # Below the uncorrected level, above the corrected one: not a regression.
    between = _csv(tiny_run, tmp_path, "between.csv", lambda t: _edit(calibrated(t), "exact", "sbc_ecdf_p_min", 0.04))  # fmt: skip
    assert (
        _finding(check(base, between), "normal_mean", "exact", "sbc_ecdf_p_min").verdict == "same"
    )
    # The baseline rejected too: no change. The candidate recovered: an improvement.
    both = _csv(tiny_run, tmp_path, "both.csv", rejected)
    assert _finding(check(both, both), "normal_mean", "exact", "sbc_ecdf_p_min").verdict == "same"
    better = _finding(check(both, base), "normal_mean", "exact", "sbc_ecdf_p_min")
    assert better.verdict == "improvement"


def test_coverage_regression_beyond_its_binomial_sd(tiny_run, tmp_path):
    """Rule: the mean max coverage deviation grows by more than k binomial sds at level 1/2
    for the recorded number of SBC datasets (one fit a side here)."""
    table = pd.read_csv(tiny_run / "results.csv")
    rows = (table["task"] == "poisson_gamma") & (table["method"] == "exact")
    datasets = table.loc[rows, "sbc_datasets"].iloc[0]
    limit = 3 * (2 * 0.25 / datasets) ** 0.5
    value = table.loc[rows, "coverage_max_deviation"].iloc[0]

    def shift(by):
        return lambda t: _edit(t, "exact", "coverage_max_deviation", value + by, "poisson_gamma")

    worse = check(tiny_run, _csv(tiny_run, tmp_path, "worse.csv", shift(limit + 0.01)))
    found = _finding(worse, "poisson_gamma", "exact", "coverage_max_deviation")
    assert found.verdict == "regression" and found.limit == pytest.approx(limit)
    near = check(tiny_run, _csv(tiny_run, tmp_path, "near.csv", shift(limit - 0.01)))
    assert _finding(near, "poisson_gamma", "exact", "coverage_max_deviation").verdict == "same"


def test_without_recorded_noise_the_verdict_is_cannot_judge(tiny_run, tmp_path):
    """No invented variance: a baseline without any C2ST noise sd (c2st_noise_sd nor its
    binomial stand-in c2st_null_sd) cannot judge C2ST (exit 2); without sbc_datasets coverage
    cannot be judged; the SBC count is taken from either side."""
    drop = ["c2st_noise_sd", "c2st_null_sd"]
    base = _csv(tiny_run, tmp_path, "base.csv", lambda t: t.drop(columns=drop))
    verdict = check(base, tiny_run)
    c2st = [c for c in verdict.cells if c.score == "c2st"]
    assert c2st and {c.verdict for c in c2st} == {"cannot judge"}
    assert "c2st_noise_sd" in c2st[0].reason and verdict.exit_code == 2
    result = subprocess.run(
        [sys.executable, "-m", "sbibench", "check", "--baseline", str(base), "--candidate", str(tiny_run)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2 and "cannot judge" in result.stdout
    # Old records lacking sbc_num_parameters: judged with the candidate's count ...
    old = _csv(tiny_run, tmp_path, "old.csv", lambda t: t.drop(columns=["sbc_num_parameters"]))
    judged = check(old, tiny_run)
    assert judged.exit_code == 0 and not judged.undecided
    # ... and not at all when neither side has it; no dataset count, no coverage verdict.
    blind = check(old, old)
    assert {c.score for c in blind.undecided} == {"sbc_ecdf_p_min"}

    # One task's fits without the count: those cells are not judged, the others are, at a
    # level corrected for the tests made.
    def forget(t):
        return t.assign(
            sbc_num_parameters=t["sbc_num_parameters"].where(t["task"] != "normal_mean")
        )

    part = _csv(tiny_run, tmp_path, "part.csv", forget)
    mixed = check(part, part)
    assert {(c.task, c.score) for c in mixed.undecided} == {("normal_mean", "sbc_ecdf_p_min")}
    judged = [c for c in mixed.cells if c.score == "sbc_ecdf_p_min" and c.verdict == "same"]
    counted = pd.read_csv(part).dropna(subset=["sbc_num_parameters"]).drop_duplicates("key")
    assert {c.task for c in judged} == {"poisson_gamma"}
    assert judged[0].limit == pytest.approx(0.05 / counted["sbc_num_parameters"].sum())
    nodata = _csv(tiny_run, tmp_path, "nodata.csv", lambda t: t.drop(columns=["sbc_datasets"]))
    assert {c.score for c in check(nodata, tiny_run).undecided} == {"coverage_max_deviation"}


def test_cells_on_one_side_only_are_listed(tiny_run, tmp_path):
    """A baseline cell the candidate lacks fails; a candidate-only cell is listed as new and
    does not; records the candidate lacks within a cell are missing."""

    def add_cell(t):
        extra = t[t["method"] == "npe"].copy()
        extra["method"] = "npe_new"
        return pd.concat([t, extra], ignore_index=True)

    grown = check(tiny_run, _csv(tiny_run, tmp_path, "grown.csv", add_cell))
    assert {(c.task, c.method) for c in grown.new} == {
        ("normal_mean", "npe_new"),
        ("poisson_gamma", "npe_new"),
    }
    assert grown.exit_code == 0 and not grown.regressions
    shrunk = check(_csv(tiny_run, tmp_path, "base.csv", add_cell), tiny_run)
    assert {(c.method, c.verdict) for c in shrunk.regressions} == {("npe_new", "missing")}
    assert shrunk.exit_code == 1

    def lose_observation(t):
        return t[~((t["method"] == "rej_abc") & (t["observation"] == 2))]

    lost = check(tiny_run, _csv(tiny_run, tmp_path, "lost.csv", lose_observation))
    missing = [c for c in lost.regressions if c.verdict == "missing"]
    assert {(c.method, c.score) for c in missing} == {("rej_abc", "")}
    assert all("obs 2 seed 0" in c.reason for c in missing)


def test_the_verdict_table_names_every_rule_and_the_exit_code(tiny_run):
    text = format_verdict(check(tiny_run, tiny_run))
    for needle in ("c2st", "sbc_ecdf_p_min", "coverage_max_deviation", "noise sd",
                   "Bonferroni", "binomial sd", "exit code 0"):  # fmt: skip
        assert needle in text, needle


def test_c2st_regression_beyond_tolerance_plus_k_noise_sds(tiny_run, tmp_path):
    """Rule: the mean paired change exceeds tolerance + k x sqrt(mean(s_b² + s_c²) / n), s the
    recorded c2st_noise_sd (a constant shift has no sample variance of its own)."""
    table = pd.read_csv(tiny_run / "results.csv")
    rows = table[(table["task"] == "normal_mean") & (table["method"] == "exact")]
    assert (rows["c2st_noise_sd"] >= rows["c2st_null_sd"]).all()
    sd = ((2 * rows["c2st_noise_sd"] ** 2).mean() / len(rows)) ** 0.5
    limit = 0.02 + 3 * sd

    def shift(by):
        return lambda t: _edit(t, "exact", "c2st", rows["c2st"].to_numpy() + by)

    over = check(tiny_run, _csv(tiny_run, tmp_path, "over.csv", shift(limit + 0.002)))
    found = _finding(over, "normal_mean", "exact", "c2st")
    assert found.verdict == "regression" and found.limit == pytest.approx(limit)
    under = check(tiny_run, _csv(tiny_run, tmp_path, "under.csv", shift(limit - 0.002)))
    assert _finding(under, "normal_mean", "exact", "c2st").verdict == "same"
    wider = check(tiny_run, _csv(tiny_run, tmp_path, "over2.csv", shift(limit + 0.002)), k=4)
    assert _finding(wider, "normal_mean", "exact", "c2st").verdict == "same"


def test_records_before_the_noise_sd_are_judged_by_their_binomial_sd(tiny_run, tmp_path):
    """Records written before c2st_noise_sd existed still load and are judged: their binomial
    c2st_null_sd stands in for it (on one side or both), and the reason says how many records
    did so; a record that has c2st_noise_sd is judged by it, the larger sd."""
    table = pd.read_csv(tiny_run / "results.csv")
    rows = table[(table["task"] == "normal_mean") & (table["method"] == "exact")]
    old = _csv(tiny_run, tmp_path, "old.csv", lambda t: t.drop(columns=["c2st_noise_sd"]))
    for base, cand, sides in [(old, tiny_run, ["baseline"]), (tiny_run, old, ["candidate"]),
                              (old, old, ["baseline", "candidate"])]:  # fmt: skip
        verdict = check(base, cand)
        assert verdict.exit_code == 0 and not verdict.undecided
        found = _finding(verdict, "normal_mean", "exact", "c2st")
        for side in sides:
            assert f"of the {side}'s {len(rows)} record(s) predate c2st_noise_sd" in found.reason
        assert "c2st_null_sd stands in" in found.reason
    # the limit follows the sd each side carries: binomial on the old side, the new one on
    # the other (a constant shift has no sample variance of its own)
    found = _finding(check(old, tiny_run), "normal_mean", "exact", "c2st")
    variance = (rows["c2st_null_sd"] ** 2 + rows["c2st_noise_sd"] ** 2).mean() / len(rows)
    assert found.limit == pytest.approx(0.02 + 3 * variance**0.5)
    # a results table that mixes both kinds of record: only the older ones stand in
    first = rows.index[0]
    mixed = _csv(tiny_run, tmp_path, "mixed.csv", lambda t: t.assign(
        c2st_noise_sd=t["c2st_noise_sd"].where(t.index != first)))  # fmt: skip
    found = _finding(check(mixed, tiny_run), "normal_mean", "exact", "c2st")
    assert "1 of the baseline's" in found.reason and "candidate's" not in found.reason


def _cli_check(baseline, candidate):
    return subprocess.run(
        [sys.executable, "-m", "sbibench", "check", "--baseline", str(baseline), "--candidate", str(candidate)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_nothing_to_compare_is_an_error_naming_the_folder(tiny_run, tmp_path):
    """A baseline folder with no records, the header-only results.csv of a run whose jobs were
    all lost, or records that all failed: no ok record on a side is an error (it passed with
    exit 0), on either side, and so is a pair of tables that share no cell."""
    empty = tmp_path / "empty"
    (empty / "records").mkdir(parents=True)
    header = tmp_path / "header.csv"
    header.write_text((tiny_run / "results.csv").read_text().splitlines()[0] + "\n")
    failed = _csv(tiny_run, tmp_path, "failed.csv", lambda t: t.assign(status="failed"))
    for base, cand, side in [(empty, tiny_run, "baseline"), (tiny_run, empty, "candidate"),
                             (header, tiny_run, "baseline"), (tiny_run, header, "candidate"),
                             (tiny_run, failed, "candidate")]:  # fmt: skip
        bad = base if side == "baseline" else cand
        with pytest.raises(ValueError, match=f"^{side} {re.escape(str(bad))}: no ok records"):
            check(base, cand)
    result = _cli_check(empty, tiny_run)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"sbibench: error: baseline {empty}: no ok records (0 record(s) in all), nothing to compare\n"  # fmt: skip
    other = _csv(tiny_run, tmp_path, "other.csv", lambda t: t.assign(method=t["method"] + "_other"))
    with pytest.raises(ValueError, match="share no \\(task, method, budget\\) cell"):
        check(tiny_run, other)
    assert _cli_check(tiny_run, other).returncode == 2


def test_an_ok_record_without_c2st_is_a_cannot_judge_finding(tiny_run, tmp_path):
    """It was dropped in silence; now it is listed with the folder, cell, observation and
    seed, the other pairs are still judged, and the exit code is 2."""

    def lose(t):
        rows = (t["task"] == "normal_mean") & (t["method"] == "exact") & (t["observation"] == 2)
        t.loc[rows, "c2st"] = float("nan")
        return t

    cand = _csv(tiny_run, tmp_path, "cand.csv", lose)
    verdict = check(tiny_run, cand)
    (found,) = [c for c in verdict.undecided if c.score == "c2st"]
    assert (found.task, found.method, found.budget, found.pairs) == ("normal_mean", "exact", 200, 1)
    assert found.reason.startswith(f"candidate {cand}: 1 ok record(s) without c2st (NaN)")
    assert "obs 2 seed 0" in found.reason
    (judged,) = [c for c in verdict.cells if c.score == "c2st" and c.verdict == "same"
                 and (c.task, c.method) == ("normal_mean", "exact")]  # fmt: skip
    assert judged.pairs == 1  # the other pair, still judged
    assert verdict.exit_code == 2 and "1 cannot judge" in format_verdict(verdict)
    assert check(cand, tiny_run).undecided[0].reason.startswith(f"baseline {cand}:")


def test_duplicated_records_are_refused_in_the_shared_loader(tiny_run, tmp_path):
    """A record twice in a folder (a run resumed under another job key) counted twice in the
    check; the loader that the check and the report share refuses it, naming the duplicate."""
    from sbibench.records import RecordError, load_results
    from sbibench.report.render import write_report

    run = shutil.copytree(tiny_run, tmp_path / "run")
    (source,) = [p for p in (run / "records").glob("normal_mean-rej_abc-*.json")
                 if '"observation": 1' in p.read_text()]  # fmt: skip
    shutil.copy(source, run / "records" / "normal_mean-rej_abc-0000000000000000.json")
    message = (f"^{re.escape(str(run))}: 1 record\\(s\\) appear more than once: task normal_mean, "
               "method rej_abc, budget 200, seed 0, observation 1 \\(keys ")  # fmt: skip
    for read in (load_results, lambda f: check(f, tiny_run), lambda f: check(tiny_run, f),
                 lambda f: write_report(f, tmp_path / "report")):  # fmt: skip
        with pytest.raises(RecordError, match=message):
            read(run)
    twice = _csv(tiny_run, tmp_path, "twice.csv", lambda t: pd.concat([t, t.iloc[:1]]))
    with pytest.raises(RecordError, match=f"^{re.escape(str(twice))}: 1 record"):
        check(tiny_run, twice)
    assert _cli_check(tiny_run, twice).returncode == 2
