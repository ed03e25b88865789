"""Resuming a run folder: only whole, ok records made by today's code and data are reused;
stale ones stop the run (or are set aside), failed and unreadable ones run again."""

import json
import os
import subprocess
import sys

import pytest

from sbibench.records import RecordError, StaleRecordsError, load_results
from sbibench.run.runner import run_suite


def _edit_records(path, **fields):
    content = json.loads(path.read_text())
    for record in content["records"]:
        record.update(fields)
    path.write_text(json.dumps(content))


def test_records_from_other_code_stop_the_run_naming_them(tmp_path, small):
    suite, out = small(), tmp_path / "run"
    run_suite(suite, out, progress=False)
    record = sorted((out / "records").glob("normal_mean-rej_abc-*.json"))[0]
    _edit_records(record, code_digest="0123456789abcdef")  # as written by other code
    before = {p.name: p.read_bytes() for p in (out / "records").iterdir()}
    with pytest.raises(StaleRecordsError, match="code_digest '0123456789abcdef', today") as error:
        run_suite(suite, out, progress=False)
    assert str(record) in str(error.value) and "--rerun-stale" in str(error.value)
    assert before == {p.name: p.read_bytes() for p in (out / "records").iterdir()}

    summary = run_suite(suite, out, progress=False, rerun_stale=True)
    assert (summary.finished, summary.skipped) == (1, 2)
    assert (summary.stale_moved / record.name).exists()  # kept, out of the table
    assert json.loads(record.read_text())["records"][0]["code_digest"] != "0123456789abcdef"


def test_records_of_another_task_card_or_version_are_stale(tmp_path, small):
    suite, out = small(), tmp_path / "run"
    run_suite(suite, out, progress=False)
    for path in (out / "records").glob("*.json"):
        _edit_records(path, task_digest="fedcba9876543210")
    with pytest.raises(StaleRecordsError, match="(?s)3 record file.*task_digest"):
        run_suite(suite, out, progress=False)
    assert run_suite(suite, out, progress=False, rerun_stale=True).finished == 3
    json_path = next((out / "records").glob("*.json"))
    content = json.loads(json_path.read_text())
    content["records"][0].pop("sbibench_version")
    json_path.write_text(json.dumps(content))
    with pytest.raises(StaleRecordsError, match="sbibench_version None"):
        run_suite(suite, out, progress=False)


def test_a_failed_job_runs_again_once_its_cause_is_fixed(tmp_path, small):
    suite = small("flaky")
    out = tmp_path / "run"
    first = run_suite(suite, out, progress=False)
    assert first.failed_records == 2 and not first.ok
    assert [error for _, error in first.failures] == [
        "RuntimeError: the simulator's licence server is down"
    ] * 2
    (tmp_path / "fixed").touch()
    again = run_suite(suite, out, progress=False)
    assert (again.finished, again.skipped, again.failed_records) == (2, 3, 0) and again.ok
    assert (load_results(out)["status"] == "ok").all()


def test_the_exit_code_reflects_the_whole_folder(tmp_path, small):
    """A second run that has nothing to do still fails while the folder holds failed records,
    and prints each failure's reason and record file."""
    suite = small("flaky")
    run_suite(suite, tmp_path / "run", progress=False)
    command = [sys.executable, "-m", "sbibench", "run", "--allow-dirty", str(tmp_path / "small.toml"),
               "--out", str(tmp_path / "run"), "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 1
    assert "2 failed records" in result.stdout
    assert "failed: " in result.stderr and "licence server is down" in result.stderr
    assert str(tmp_path / "run" / "records" / "normal_mean-flaky-") in result.stderr


def test_a_truncated_record_is_moved_aside_and_its_job_run_again(tmp_path, small):
    suite, out = small(), tmp_path / "run"
    run_suite(suite, out, progress=False)
    path = next((out / "records").glob("normal_mean-exact-*.json"))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    summary = run_suite(suite, out, progress=False)
    assert summary.broken == [out / "broken" / path.name]
    assert (out / "broken" / path.name).read_bytes() == whole[: len(whole) // 2]
    assert (summary.finished, summary.skipped) == (1, 2)
    assert json.loads(path.read_text())["records"][0]["status"] == "ok"


def test_a_record_missing_a_field_is_named_when_loading(tmp_path, small):
    suite, out = small(), tmp_path / "run"
    run_suite(suite, out, progress=False)
    path = next((out / "records").glob("normal_mean-exact-*.json"))
    content = json.loads(path.read_text())
    content["records"][1].pop("budget")
    path.write_text(json.dumps(content))
    with pytest.raises(RecordError, match=f"{path}: record 1 lacks field.*budget"):
        load_results(out)
