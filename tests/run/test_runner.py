"""The runner: a grid run serially and resumed, a killed or stopped run that keeps its
finished records, failures that do not stop the grid, progress, and bad input caught up front."""

import concurrent.futures
import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas
import pytest

from sbibench.records import RecordError, completed_keys, load_results, read_records
from sbibench.run.cpus import available_cpus
from sbibench.run.runner import _warn_oversubscribed, run_suite
from sbibench.run.suite import load_suite

# Columns that are a pure function of the configuration and seeds (not of time or place).
RESULT_COLUMNS = [
    "task", "method", "budget", "seed", "observation", "status", "num_simulations_used",
    "c2st", "c2st_floor", "mmd", "wasserstein", "mean_error", "covariance_error",
    "nll_true_parameters", "sbc_chi2_p_min", "sbc_ecdf_p_min", "coverage_max_deviation", "key",
]  # fmt: skip


def _results(folder):
    table = load_results(folder).sort_values(["key", "observation"]).reset_index(drop=True)
    return table[RESULT_COLUMNS]


def test_serial_run_writes_one_record_per_observation_and_resumes(tmp_path, make_suite):
    suite = make_suite()
    out = tmp_path / "run"
    # exact and npe: one fit per task; rej_abc: one run per observation.
    assert len(suite.jobs()) == 2 * (1 + 1 + 2)
    summary = run_suite(suite, out, progress=False)
    assert (summary.finished, summary.skipped, summary.failed_records) == (8, 0, 0)
    table = load_results(out)
    assert len(table) == 2 * 3 * 2 and (table["status"] == "ok").all()
    assert table[table["method"] == "exact"]["c2st"].between(0.4, 0.6).all()
    assert table["c2st_floor"].notna().all()
    # SBC ran for the amortized methods only, and its ranks are kept beside the records.
    amortized = table["method"].isin(["exact", "npe"])
    assert table[amortized]["sbc_datasets"].eq(40).all()
    assert table[~amortized]["sbc_datasets"].isna().all()
    assert len(list((out / "records").glob("*.sbc.npz"))) == 4
    assert (out / "results.csv").read_text().count("\n") == 13
    stamps = {p: p.stat().st_mtime_ns for p in (out / "records").iterdir()}
    again = run_suite(suite, out, progress=False)
    assert (again.finished, again.skipped) == (0, 8)
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "records").iterdir()}


def test_pieces_of_a_grid_add_up_to_the_whole_run(tmp_path, make_suite, suite_file):
    suite = make_suite(budgets=(200, 300))
    out = tmp_path / "run"
    first = run_suite(suite, out, progress=False, only={"method": ["rej_abc"], "budget": [300]})
    # rej_abc is one job per observation: 2 tasks x 2 observations at budget 300.
    assert (first.jobs, first.skipped, first.finished) == (16, 0, 4)
    assert set(load_results(out)["method"]) == {"rej_abc"}
    second = run_suite(suite, out, progress=False, only={"task": ["poisson_gamma"]})
    assert (second.skipped, second.finished) == (4, 6)  # 2 of its 8 jobs were in the first
    rest = run_suite(suite, out, progress=False)
    assert (rest.skipped, rest.finished) == (10, 6)
    # The same records as one whole run: a job's key does not depend on the piece it ran in.
    run_suite(suite, tmp_path / "whole", progress=False)
    pandas.testing.assert_frame_equal(_results(out), _results(tmp_path / "whole"), check_exact=True)
    # A piece the suite does not have is refused before any work, naming what it has.
    for only, named in (({"task": ["two_moons"]}, "no task 'two_moons'"),
                        ({"budget": [1000]}, "no budget 1000"),
                        ({"seed": [1]}, "no field 'seed'")):  # fmt: skip
        with pytest.raises(ValueError, match=named):
            run_suite(suite, tmp_path / "refused", progress=False, only=only)
    assert not (tmp_path / "refused").exists()
    command = [sys.executable, "-m", "sbibench", "run", "--allow-dirty", str(suite_file(budgets=(200, 300))),
               "--out", str(out), "--no-progress", "--tasks", "normal_mean", "--budgets", "200"]  # fmt: skip
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "(tasks ['normal_mean']; budgets [200])" in again.stdout
    assert "16 runs: 16 already done, 0 finished, 0 not run yet" in again.stdout


def test_a_killed_run_resumes_with_every_record_once_and_intact(tmp_path, suite_file):
    suite_path = suite_file()
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "sbibench",
        "run",
        "--allow-dirty",
        str(suite_path),
        "--out",
        str(out),
        "--no-progress",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(completed_keys(out)) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = len(completed_keys(out))
    assert 2 <= written < 8
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{written} already done" in resumed.stdout
    records = read_records(out)
    keys = [(r["key"], r["observation"]) for r in records]
    assert len(keys) == len(set(keys)) == 12
    assert not [p for p in (out / "records").iterdir() if p.name.startswith(".")]
    # The same numbers as an uninterrupted run.
    run_suite(load_suite(suite_path), tmp_path / "clean", progress=False)
    pandas.testing.assert_frame_equal(_results(out), _results(tmp_path / "clean"), check_exact=True)


def test_a_failing_method_fails_its_runs_and_the_grid_goes_on(
    tmp_path, monkeypatch, tiny_suite, make_suite
):
    module = tmp_path / "broken_methods.py"
    module.write_text(
        textwrap.dedent("""
        def explode(task, observation, num_simulations, seed):
            raise RuntimeError("simulator exploded at theta=3")
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    text = (
        tiny_suite + '[methods.broken]\nmethod = "external"\nfunction = "broken_methods:explode"\n'
    )
    suite = make_suite(text)
    summary = run_suite(suite, tmp_path / "run", progress=False)
    table = load_results(tmp_path / "run")
    broken = table[table["method"] == "broken"]
    assert summary.failed_records == len(broken) == 4
    assert broken["error"].str.contains("RuntimeError: simulator exploded at theta=3").all()
    assert (table[table["method"] != "broken"]["status"] == "ok").all()


def test_a_folder_of_another_suite_is_refused(make_suite, tiny_run):
    other = make_suite(budgets=[300])
    before = sorted(p.name for p in (tiny_run / "records").iterdir())
    with pytest.raises(RecordError, match="holds records of another suite"):
        run_suite(other, tiny_run, progress=False)
    assert sorted(p.name for p in (tiny_run / "records").iterdir()) == before


def test_progress_names_each_running_job_and_its_phase(tmp_path, make_suite):
    """Workers write their job's phase where the driver reads it for the progress line; the
    files go when the jobs are done."""
    from sbibench.run.runner import PhaseFiles, _running_line

    suite = make_suite()
    job = next(j for j in suite.jobs() if j.method == "rej_abc")
    phases = PhaseFiles(tmp_path / ".running")
    phases.reporter(job)("scoring observation 1 (1 of 1)")

    future = concurrent.futures.Future()
    future.set_running_or_notify_cancel()
    line = _running_line({future: job}, {}, phases)
    # the seconds are the job's since it started, the phase is what it does now
    expected = r"running: normal_mean/rej_abc/200/obs 1 \(\d+ s\): scoring observation 1 \(1 of 1\)"
    assert re.fullmatch(expected, line), line
    run_suite(suite, tmp_path / "run", executor="processes", workers=2, progress=True)
    assert not (tmp_path / "run" / ".running").exists()


def _descendants(pid):
    """The pids of a process's children, theirs, and so on (Linux /proc)."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):  # a thread's children are listed under it
        with contextlib.suppress(FileNotFoundError):
            children += [int(child) for child in (task / "children").read_text().split()]
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().split(")")[-1].split()[0] != "Z"  # a zombie has finished
    except FileNotFoundError:
        return False


@pytest.mark.slow  # a real process-pool run, stopped and resumed: 20 s
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_stops_the_run_and_its_workers_and_keeps_finished_records(tmp_path, suite_file):
    """`kill` (SIGTERM) on a process-pool run: it exits as Ctrl-C does (status 130, the
    interrupted line and no traceback), results.csv holds the finished jobs, no job process
    goes on computing, and a re-run resumes."""
    suite_path = suite_file()
    out = tmp_path / "run"
    command = [sys.executable, "-m", "sbibench", "run", "--allow-dirty", str(suite_path), "--out", str(out),
               "--no-progress", "--executor", "processes", "--workers", "2"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while len(completed_keys(out)) < 1 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be stopped"
    workers = _descendants(process.pid)
    # two job processes (children of multiprocessing's fork server), the fork server itself
    assert len(workers) >= 3
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=60) == 130
    stderr = process.stderr.read().decode()
    assert "interrupted; finished records are kept" in stderr
    assert "Traceback" not in stderr, stderr  # Python 3.11's pool raised InvalidStateError
    assert set(load_results(out / "results.csv")["key"]) == set(completed_keys(out))
    deadline = time.time() + 120  # bounds a failing test only
    while any(_alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)]
    written = len(completed_keys(out))
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{written} already done" in resumed.stdout


def test_a_thread_or_worker_count_below_one_fails_before_any_work(tmp_path, make_suite):
    with pytest.raises(ValueError, match="threads must be a whole number >= 1, got 0"):
        run_suite(make_suite(), tmp_path / "run", executor="serial", threads=0, progress=False)
    with pytest.raises(ValueError, match="workers must be a whole number >= 1, got 0"):
        run_suite(make_suite(), tmp_path / "run", executor="processes", workers=0, progress=False)
    assert not (tmp_path / "run").exists()


def test_more_workers_than_cpus_is_one_line_of_warning(capsys):
    cpus = available_cpus()
    _warn_oversubscribed("processes", cpus, 1, remote=False)
    _warn_oversubscribed("serial", 99, 1, remote=False)  # serial runs one worker
    _warn_oversubscribed("dask", cpus + 1, 1, remote=True)  # a remote cluster's own CPUs
    assert capsys.readouterr().err == ""
    _warn_oversubscribed("processes", cpus, 2, remote=False)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{cpus} worker(s) x 2 thread(s) exceed the {cpus} CPU(s)" in err
