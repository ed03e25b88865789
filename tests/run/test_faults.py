"""What happens when a job, a worker or the driver goes wrong: a job's exit, signal or hang
fails that job alone, a time limit holds against a blocking call, a killed driver takes its
job processes with it, one run holds a folder, and a write that fails names the folder.

No test here depends on the machine's speed: the jobs that must finish have no time limit,
and the ones that must be stopped never finish on their own."""

import os
import signal
import subprocess
import sys
import time

import pytest

from sbibench.records import RecordError, completed_keys, load_results
from sbibench.run.runner import run_suite
from sbibench.run.suite import load_suite
from tests.run.test_runner import _alive


def _by_method(folder):
    table = load_results(folder)
    return {method: rows for method, rows in table.groupby("method")}


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_a_job_that_exits_or_interrupts_itself_fails_alone(tmp_path, small, executor):
    """sys.exit() and a KeyboardInterrupt of the method's own used to end the whole run with
    nothing written; now each fails its job and the grid goes on."""
    suite = small("leave", "interrupt", observations=[1])
    summary = run_suite(suite, tmp_path / "run", executor=executor, workers=1, progress=False)
    rows = _by_method(tmp_path / "run")
    assert (rows["exact"]["status"] == "ok").all() and (rows["rej_abc"]["status"] == "ok").all()
    assert rows["leave"]["error"].tolist() == ["the job called sys.exit(0)"]
    assert rows["interrupt"]["error"].tolist() == ["the job raised KeyboardInterrupt('its own')"]
    assert summary.failed_records == 2 and not summary.lost


def test_a_killed_or_vanished_job_process_costs_only_its_job(tmp_path, small):
    """kill -9 (what the out-of-memory killer does) or os._exit in one job used to break the
    process pool: every other job, running or queued, was reported lost. Now the job's own
    record says what ended it, and the other worker's and the queued jobs finish."""
    suite = small("killed", "vanish")
    summary = run_suite(suite, tmp_path / "run", executor="processes", workers=2, progress=False)
    rows = _by_method(tmp_path / "run")
    assert (rows["exact"]["status"] == "ok").all() and (rows["rej_abc"]["status"] == "ok").all()
    assert rows["killed"]["error"].str.contains("killed by signal SIGKILL").all()
    assert rows["vanish"]["error"].str.contains("exited with code 3").all()
    assert not summary.lost and summary.failed_records == 4  # two observations each


@pytest.mark.parametrize("executor", ["serial", "processes", "dask"])
def test_a_blocking_call_past_the_time_limit_is_stopped(tmp_path, small, executor):
    """time.sleep(10**6) under a 2 s limit: the job used to run on (forever, or to the end of
    its call) while its record claimed it was stopped. The test ending at all is the proof."""
    if executor == "dask":
        pytest.importorskip("dask.distributed")
    suite = small("block", cheap=False, observations=[1], timeout=2)
    summary = run_suite(suite, tmp_path / "run", executor=executor, workers=1, progress=False)
    (error,) = load_results(tmp_path / "run")["error"]
    assert error.startswith("timeout: the job ran past its limit of 2 s")
    assert summary.failed_records == 1


def test_a_time_limit_under_dask_leaves_the_worker_usable(tmp_path, small):
    """A limit used to be raised inside the Dask worker's own thread, and one landing during an
    import poisoned the worker for every later job. Now the job runs in a process of its own
    that is killed, and the same worker runs the next suite's jobs."""
    distributed = pytest.importorskip("dask.distributed")
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True) as cluster,
        distributed.Client(cluster) as client,
    ):
        workers = set(client.run(os.getpid).values())
        blocked = small("block", cheap=False, observations=[1], timeout=2)
        run_suite(blocked, tmp_path / "blocked", executor=client.get_executor(), progress=False)
        job_pids = {int(path.name) for path in (tmp_path / "pids").iterdir()}
        assert job_pids and not job_pids & workers  # the job ran outside the worker
        summary = run_suite(small(), tmp_path / "after", executor=client.get_executor(),
                            progress=False)  # fmt: skip
        assert summary.ok and set(client.run(os.getpid).values()) == workers


def _wait_for(condition, seconds=120):
    """Poll until ``condition()`` holds; the limit only bounds a failing test."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


def _run_command(suite_path, out, *options):
    command = [sys.executable, "-m", "sbibench", "run", "--allow-dirty", str(suite_path), "--out", str(out),
               "--no-progress", *options]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_driver_takes_its_job_processes_with_it(tmp_path, small):
    """SIGKILL of `sbibench run` used to leave its workers running, blocked forever."""
    suite_path = small.file("block")
    driver = _run_command(suite_path, tmp_path / "run", "--workers", "1")
    assert _wait_for(lambda: any((tmp_path / "pids").iterdir()) or driver.poll() is not None)
    (job,) = [int(path.name) for path in (tmp_path / "pids").iterdir()]
    assert _alive(job)
    driver.kill()
    driver.wait()
    assert _wait_for(lambda: not _alive(job)), "the job process outlived its driver"


def test_a_second_run_into_a_busy_folder_is_refused_until_the_first_ends(tmp_path, small):
    """Two runs into one folder used to both go ahead (computing every job twice, or mixing
    two suites); the second is now refused at once, naming the first."""
    suite_path = small.file("block")
    first = _run_command(suite_path, tmp_path / "run", "--workers", "1")
    assert _wait_for(lambda: any((tmp_path / "pids").iterdir()) or first.poll() is not None)
    second = subprocess.run(
        [sys.executable, "-m", "sbibench", "run", "--allow-dirty", str(suite_path),
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert second.returncode == 2
    assert f"{tmp_path / 'run'} is in use by another run (pid {first.pid} on" in second.stderr
    other = small(name="other")  # another suite is refused for the same reason first
    with pytest.raises(RecordError, match="is in use by another run"):
        run_suite(other, tmp_path / "run", progress=False)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) == 130
    # The lock went with the first run: the same suite resumes, its blocked jobs stopped at 1 s.
    summary = run_suite(load_suite(suite_path), tmp_path / "run", timeout=1, progress=False)
    assert (summary.skipped, summary.finished, summary.failed_records) == (3, 2, 2)


def test_resuming_with_another_thread_count_is_refused(tmp_path, small):
    """A resume at --threads 2 over a --threads 1 run used to run every job again beside the
    old records, and tables counted both."""
    run_suite(small(), tmp_path / "run", threads=1, progress=False)
    written = completed_keys(tmp_path / "run")
    with pytest.raises(RecordError, match=r"at --threads 1\); resume with the same --threads"):
        run_suite(small(), tmp_path / "run", threads=2, progress=False)
    assert completed_keys(tmp_path / "run") == written


def test_a_write_that_fails_stops_the_run_naming_it_and_keeps_the_written_records(tmp_path, small):
    """A file-system error on writing (here the records folder replaced by a file) is one line
    naming the job and the folder, exit code 2; the records written before are whole."""
    suite_path = small.file("sabotage")
    out = tmp_path / "run"
    run = subprocess.run(
        [sys.executable, "-m", "sbibench", "run", "--allow-dirty", str(suite_path), "--out", str(out),
         "--no-progress", "--workers", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("sbibench: error")]
    assert (
        f"could not write the records of normal_mean/sabotage/200/obs 1 into {out / 'records'}"
        in line
    )
    assert "Traceback" not in run.stderr
    kept = sorted((out / "records.moved").glob("*.json"))
    assert len(kept) == 3  # exact's fit and rej_abc's two observations, written before
    for path in kept:  # every record written before the failure is whole
        assert path.read_text().endswith("}\n")
