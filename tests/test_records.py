"""Records: their schema and the run folder's layout, records checked as they are read, and
every published run still loading."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy

from sbibench.records import (
    IDENTITY,
    TRAILER,
    RecordError,
    RunFolder,
    load_results,
    new_record,
    read_job,
    read_ranks,
    rebuild_table,
    record_columns,
    write_job,
)
from sbibench.run.cpus import cpu_name

ROOT = Path(__file__).resolve().parents[1]
# Every published run folder (one with records/) under results/, at any depth.
PUBLISHED = sorted(path.parent for path in (ROOT / "results").rglob("records") if path.is_dir())


def _record(**fields):
    """A whole, ok record of the schema's types."""
    job = {"suite": "s", "task": "normal_mean", "method": "exact", "budget": 1000, "seed": 0,
           "key": "normal_mean-exact-0123456789abcdef"}  # fmt: skip
    return {**new_record(job, 1), **fields}


def test_a_new_record_is_ok_unless_an_error_is_given():
    job = {"task": "normal_mean", "method": "exact", "key": "k"}
    ok = new_record(job, 2, c2st=0.5, time_score=1.5)
    assert ok == {**job, "observation": 2, "status": "ok", "error": "", "c2st": 0.5,
                  "time_score": 1.5}  # fmt: skip
    assert list(ok)[-2:] == ["c2st", "time_score"]  # the fields in the order given
    failed = new_record(job, 3, "RuntimeError: boom")
    assert (failed["status"], failed["error"], failed["observation"]) == (
        "failed", "RuntimeError: boom", 3
    )  # fmt: skip
    assert job == {"task": "normal_mean", "method": "exact", "key": "k"}  # not changed
    for bad in (True, 1.0, "1"):
        with pytest.raises(TypeError, match="observation must be a whole number"):
            new_record(job, bad)


def test_a_run_folder_names_where_each_file_lives(tmp_path):
    run = RunFolder(str(tmp_path))
    assert run.path == tmp_path  # a str is taken as a path
    assert run.records == tmp_path / "records"
    assert run.record("a-b-1") == tmp_path / "records" / "a-b-1.json"
    assert run.ranks("a-b-1") == tmp_path / "records" / "a-b-1.sbc.npz"
    assert (run.suite, run.table) == (tmp_path / "suite.toml", tmp_path / "results.csv")
    assert (run.broken, run.stale) == (tmp_path / "broken", tmp_path / "stale")
    assert (run.running, run.slurm) == (tmp_path / ".running", tmp_path / "slurm")


def test_records_and_ranks_are_written_where_the_folder_says_and_read_back(tmp_path):
    ranks = {"ranks": np.arange(6).reshape(3, 2), "coverage": np.linspace(0, 1, 5)}
    write_job(tmp_path, "k1", [_record(c2st=0.5)], ranks)
    write_job(tmp_path, "k2", [_record()])
    assert read_job(RunFolder(tmp_path).record("k1")) == [_record(c2st=0.5)]
    back = read_ranks(tmp_path, "k1")
    assert set(back) == set(ranks)
    assert all(np.array_equal(back[name], value) for name, value in ranks.items())
    assert read_ranks(tmp_path, "k2") is None  # no calibration, no ranks
    assert read_ranks(tmp_path / "nowhere", "k1") is None


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [("budget", "1000", "int"), ("observation", 1.5, "int"), ("task_dim", True, "int"),
     ("c2st", None, None), ("time_train", "3 s", "float"), ("method", 3, "str"),
     ("cores", 2.0, None)],
)  # fmt: skip
def test_a_record_field_of_the_wrong_type_is_refused_naming_the_file_and_field(
    tmp_path, field, value, kind
):
    """An int may stand for a float, and a whole float for an int; an empty score is None."""
    write_job(tmp_path, "k", [_record(), _record(**{field: value})])
    path = RunFolder(tmp_path).record("k")
    if kind is None:
        assert read_job(path)[1][field] == value
        return
    with pytest.raises(RecordError) as error:
        read_job(path)
    assert str(error.value) == f"{path}: record 1: field {field!r} must be {kind}, got {value!r}"


def test_a_record_of_an_unknown_status_is_refused(tmp_path):
    write_job(tmp_path, "k", [{**_record(), "status": "done"}])
    with pytest.raises(RecordError, match=r"k.json: record 0: status must be one of"):
        read_job(RunFolder(tmp_path).record("k"))


def test_the_columns_are_identity_then_scores_then_trailer():
    columns = record_columns()
    for name in ("cpu", "task_family", "task_dim", "task_assumes", "observation_size"):
        assert name in columns, name
    assert columns[: len(IDENTITY)] == list(IDENTITY)
    assert columns[-len(TRAILER) :] == list(TRAILER)
    assert "c2st" in columns[len(IDENTITY) : -len(TRAILER)]
    assert len(columns) == len(set(columns))


def test_a_folder_without_records_is_not_a_run_folder(tmp_path):
    with pytest.raises(RecordError, match=f"{tmp_path}: not a run folder"):
        load_results(tmp_path)


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_published_run_loads(folder):
    """Records written by earlier code (before the task facts and the CPU were recorded)
    still load and check, with their columns in schema order."""
    table = load_results(folder)
    assert len(table) >= len(list((folder / "records").glob("*.json"))) > 0  # 1+ per file
    assert list(table.columns[: len(record_columns())]) == record_columns()
    assert set(table["status"]) <= {"ok", "failed"}


def test_records_are_whole_json_files_with_provenance(tiny_run):
    for path in (tiny_run / "records").glob("*.json"):
        content = json.loads(path.read_text())
        for record in content["records"]:
            assert record["suite"] == "tiny" and record["sbibench_version"]
            assert record["torch_version"] and record["timestamp"] and record["cores"] >= 1
            assert record["numpy_version"] == np.__version__
            assert record["scipy_version"] == scipy.__version__
            assert record["threads"] == 1
            assert record["cpu"] == cpu_name()  # stamped in the worker that ran the job


def test_revisions_are_sbibenchs_only_from_its_checkout_and_the_projects_by_name(tmp_path):
    """An installed sbibench inside a user's repository must not record the user's commit as
    its own: a copy of the package in a fresh git repository records only the commit its wheel
    was built from (none for a copy of a source checkout), and names the repository the run
    started in as project_revision."""
    import shutil

    import sbibench

    project = tmp_path / "project"
    shutil.copytree(os.path.dirname(sbibench.__file__), project / "site" / "sbibench")
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=u", "-c", "user.email=u@u",
                                                 "commit", "-qm", "user code"]):  # fmt: skip
        subprocess.run(["git", *command], cwd=project, check=True)
    user_commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=project, capture_output=True, text=True
    ).stdout.strip()
    code = "from sbibench.records import environment as e; r = e(); print(r['git_revision'], '|', r['project_revision'])"
    env = {**os.environ, "PYTHONPATH": str(project / "site")}
    out = subprocess.run([sys.executable, "-c", code], cwd=project, env=env, capture_output=True,
                         text=True, check=True).stdout.split("|")  # fmt: skip
    built = project / "site" / "sbibench" / "_data" / "REVISION"
    assert out[0].strip() == (built.read_text().strip() if built.is_file() else "")
    assert out[1].strip() == user_commit


def test_the_table_has_a_parquet_copy_where_pyarrow_is_installed(tiny_run, tmp_path, monkeypatch):
    """results.parquet holds what results.csv holds; without pyarrow an earlier copy, which
    would be stale, is removed."""
    import shutil

    import pandas as pd

    run = shutil.copytree(tiny_run, tmp_path / "run")
    table = rebuild_table(run)
    csv, parquet = pd.read_csv(table), pd.read_parquet(run / "results.parquet")
    assert list(parquet.columns) == list(csv.columns) and len(parquet) == len(csv) > 0
    for column in ("c2st", "key", "git_revision", "numpy_version"):
        assert parquet[column].astype(str).tolist() == csv[column].astype(str).tolist()
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now fails
    rebuild_table(run)
    assert (run / "results.csv").is_file() and not (run / "results.parquet").exists()
