"""Run a suite's grid on any executor, writing every job's records as it finishes; resume.

The grid runs on an executor named in `sbibench.run.executors` (``serial``, ``processes``, ``dask``,
``slurm``), which the runner builds and shuts down, or on the caller's own executor object (a
``concurrent.futures.ProcessPoolExecutor``, a Dask ``Client(...).get_executor()``, submitit's),
which it only submits to. Only this process writes the run folder: workers return records and
the driver writes each job atomically as it completes, so remote workers need no shared disk and
a killed run loses at most the jobs in flight. Every executor gives each job ``threads`` torch
threads (default 1, part of the job's key; the job sets them in its worker); local workers
default to the CPUs this process may use (affinity mask, cgroup quota) divided by ``threads``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sbibench.checks import whole
from sbibench.paths import write_atomic
from sbibench.records import (
    DirtyPackageError,
    RecordError,
    RunFolder,
    StaleRecordsError,
    completed_keys,
    environment,
    package_changes,
    read_job,
    rebuild_table,
    record_columns,
    scan_records,
    set_aside_stale,
    write_job,
)
from sbibench.run.cpus import available_cpus
from sbibench.run.executors import (
    check_executor,
    default_workers,
    is_local,
    open_executor,
)
from sbibench.run.isolation import run_isolated
from sbibench.run.provenance import job_provenance
from sbibench.run.suite import Job, Suite
from sbibench.run.worker import RunStopped, execute

__all__ = ["RunSummary", "folder_held", "prepare_folder", "run_suite"]


@dataclass
class RunSummary:
    """What `run_suite` did, and the state of the whole folder afterwards.

    Attributes:
        jobs: jobs in the grid.
        skipped: jobs already done (whole, ok, made by today's code and data).
        finished: jobs run now.
        failed_records: records in the folder whose run failed (this run's and earlier ones').
        failures: (record file, the error's last line) of each failed job in the folder.
        lost: keys of the jobs whose worker died: no record, a re-run retries them.
        broken: unreadable record files moved aside (their jobs were run again).
        stale_moved: where stale records were moved, with ``rerun_stale``; else None.
        table: the rebuilt results.csv (None where it could not be written).
    """

    jobs: int
    skipped: int
    finished: int
    failed_records: int
    table: Path | None
    failures: list[tuple[Path, str]] = dataclasses.field(default_factory=list)
    lost: list[str] = dataclasses.field(default_factory=list)
    broken: list[Path] = dataclasses.field(default_factory=list)
    stale_moved: Path | None = None

    @property
    def ok(self) -> bool:
        """True when every job of the grid has a record and none failed."""
        return not (self.failed_records or self.lost)


def prepare_folder(suite: Suite, out: Path) -> None:
    """Make ``out`` a run folder of ``suite``; refuse one that holds another suite's records."""
    out.mkdir(parents=True, exist_ok=True)
    stored = RunFolder(out).suite
    if stored.exists():
        if stored.read_text() != suite.text:
            raise RecordError(
                f"{out} holds records of another suite (its suite.toml differs from "
                f"{suite.name!r}); choose another --out"
            )
    elif completed_keys(out):
        raise RecordError(f"{out} holds records but no suite.toml; choose another --out")
    else:
        write_atomic(stored, suite.text.encode())


def _warn_oversubscribed(executor: str, workers: int, threads: int, remote: bool) -> None:
    """One line on stderr when the local workers x threads exceed the CPUs we may use."""
    if remote:  # a Dask scheduler's or SLURM's workers run elsewhere
        return
    workers = 1 if executor == "serial" else workers
    cpus = available_cpus()
    if workers * threads > cpus:
        print(
            f"sbibench: warning: {workers} worker(s) x {threads} thread(s) exceed the {cpus} "
            "CPU(s) this process may use; jobs will run much slower (lower --workers or --threads)",
            file=sys.stderr,
        )


@contextlib.contextmanager
def _callers_threads_kept() -> Iterator[None]:
    """Restore torch's thread count afterwards: serial jobs set it in this process."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM (``kill``, a batch system's time limit) stop the run: pending jobs
    are cancelled, job processes killed, finished records kept. Both raise `RunStopped`, so a
    job running in this process (``serial``) tells them from a KeyboardInterrupt its method
    raised, which fails only that job."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return

    def stop(signum: int, frame: Any) -> None:
        raise RunStopped(f"signal {signum}")

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def folder_held(out: Path) -> Iterator[None]:
    """Hold ``out``'s run lock for the block: a second run into the same folder is refused
    (two runs would compute every job twice, or mix two suites). The lock is the operating
    system's (``flock``), so it goes with the process that held it, however that ends."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): nothing to hold
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    path = RunFolder(out).lock
    with open(path, "a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            raise RecordError(
                f"{out} is in use by another run ({holder}); wait for it to finish, or "
                "choose another --out"
            ) from None
        file.seek(0)
        file.truncate()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        file.write(f"pid {os.getpid()} on {socket.gethostname()}, since {stamp}\n")
        file.flush()
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


@contextlib.contextmanager
def _cancelled_when_left(futures: dict) -> Iterator[None]:
    """Cancel the jobs not yet started when the block stops early (an error, Ctrl-C), so that
    an executor the caller owns, which stays running, does not go on with them."""
    try:
        yield
    except BaseException:
        for future in futures:
            if isinstance(future, concurrent.futures.Future):
                future.cancel()
        raise


def _label(job: Job) -> str:
    """task/method/budget[/observation] of a job, as the progress line shows it."""
    where = f"/obs {job.observations[0]}" if len(job.observations) == 1 else ""
    return f"{job.task}/{job.method}/{job.budget}{where}"


@dataclass(frozen=True)
class PhaseFiles:
    """Where local workers say which phase their job is in: one small file per running job
    in ``folder`` (picklable, so it travels to worker processes; remote workers get none)."""

    folder: Path

    def reporter(self, job: Job) -> Any:
        return functools.partial(self.write, job.key)

    def write(self, key: str, phase: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / key, phase.encode())

    def read(self, key: str) -> str:
        try:
            return (self.folder / key).read_text()
        except OSError:
            return ""

    def clear(self, key: str) -> None:
        (self.folder / key).unlink(missing_ok=True)


def _running_line(futures: dict, started: dict, phases: PhaseFiles | None) -> str:
    """Which jobs are running now, for how long since each started, and in which phase
    ("normal_mean/npe/1000 (200 s): scoring observation 3 (3 of 10)"; concurrent.futures
    know, submitit's jobs don't say)."""
    now = time.monotonic()
    running = []
    for future, job in futures.items():
        if isinstance(future, concurrent.futures.Future) and future.running():
            phase = phases.read(job.key) if phases else ""
            if phases and not phase:  # queued in a worker, not started
                continue
            started.setdefault(job.key, now)
            line = f"{_label(job)} ({now - started[job.key]:.0f} s)"
            running.append(f"{line}: {phase}" if phase else line)
    if not running:
        return ""
    return "running: " + ", ".join(running[:4]) + (" ..." if len(running) > 4 else "")


def _completed(futures: dict, bar: Any, phases: PhaseFiles | None) -> Iterator[tuple[Job, Any]]:
    """Yield (job, future) as futures finish (concurrent.futures' own, or submitit's jobs),
    showing the running jobs on the progress bar every couple of seconds."""
    pending, started = dict(futures), {}
    while pending:
        if all(isinstance(f, concurrent.futures.Future) for f in pending):
            done, _ = concurrent.futures.wait(
                pending, timeout=2.0, return_when=concurrent.futures.FIRST_COMPLETED
            )
        else:  # submitit's jobs: poll
            done = [f for f in pending if f.done()]
            if not done:
                time.sleep(1.0)
        for future in done:
            job = pending.pop(future)
            if phases:
                phases.clear(job.key)
            yield job, future
        bar.set_postfix_str(_running_line(pending, started, phases), refresh=True)


def _serial(todo: list[Job], bar: Any) -> Iterator[tuple[Job, Any]]:
    for job in todo:

        def report(phase: str, job: Job = job) -> None:
            bar.set_postfix_str(f"running: {_label(job)} {phase}", refresh=True)

        yield job, execute(job, report)


def run_suite(
    suite: Suite,
    out: str | Path,
    executor: str | concurrent.futures.Executor = "serial",
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    threads: int = 1,
    rerun_stale: bool = False,
    timeout: float | None = None,
    only: dict[str, list] | None = None,
    allow_dirty: bool = True,
) -> RunSummary:
    """Run every job of ``suite`` not yet done in ``out``; write records; rebuild results.csv.

    A job is done when its record file is whole, every record is ok, and it was made by
    today's sbibench version, code and task data (`sbibench.run.provenance`). Failed jobs and
    unreadable record files (moved to ``out/broken/``) are run again. Records made by other
    code or data stop the run before any work, naming them, unless ``rerun_stale``: then they
    move to ``out/stale/<time>/`` and are run again.

    Arguments:
        suite: the checked suite.
        out: the run folder (created; must be this suite's if it exists).
        executor: ``serial``, ``processes``, ``dask`` or ``slurm``, built here and shut down
            at the end (default ``serial``: this process, where methods and scores registered
            at run time are known; the command line's default is ``processes``); or
            your own executor (any ``concurrent.futures.Executor``, such as a
            ``ProcessPoolExecutor`` or a Dask ``Client(...).get_executor()``, or an object with
            ``submit(fn, *args)`` whose futures have ``done()`` and ``result()``, such as
            ``submitit.AutoExecutor``): jobs are submitted to it and it is left running (jobs
            not yet started are cancelled if the run stops early). See `sbibench.run.executors`.
        workers: parallel workers (processes, Dask workers, concurrent SLURM tasks) of a named
            executor; default `default_workers`: 1 serial, else the CPUs this process may use
            // ``threads``. Not with your own executor: you sized it.
        scheduler: a Dask scheduler address (``tcp://host:port``) for ``dask``; default a
            LocalCluster.
        progress: show a tqdm progress bar over jobs, with the jobs running now (task,
            method, budget, observation, seconds so far).
        threads: torch threads per job, whichever executor runs it (each job sets them in its
            worker; SLURM's cpus_per_task when built by name).
            One is fastest on a shared machine, and it is part of the job's key: results
            depend on it (the order of floating-point sums).
        rerun_stale: set stale records aside and run their jobs again.
        timeout: seconds after which a job is stopped and recorded as failed (default: the
            suite's ``timeout`` field, else none).
        only: run a piece of the grid: the jobs whose ``task``, ``method`` (the suite's label)
            and ``budget`` are among those listed, e.g. ``{"task": ["two_moons"], "budget":
            [1000]}``. Records are the same as a whole run's (a job's key does not depend on
            the piece), so pieces add up to the grid; stale records are checked over the whole
            folder.

    Raises:
        StaleRecordsError: stale records and not ``rerun_stale``; nothing was run.
    """
    out = Path(out)
    check_executor(executor, workers, scheduler)
    record_columns()  # a score column named like a record's own is refused before any work
    named = isinstance(executor, str)
    whole(threads, "threads", 1)
    if named and workers is None:
        workers = default_workers(executor, threads)
    if named:
        whole(workers, "workers", 1)
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    if not allow_dirty:
        _refuse_dirty_package(out)
    jobs = suite.jobs(threads, timeout)
    chosen = _piece(suite, jobs, only or {})
    with folder_held(out):
        return _run_held(
            suite, out, jobs, chosen, executor, workers, scheduler, progress, rerun_stale
        )


def _refuse_dirty_package(out: Path) -> None:
    """DirtyPackageError naming the package's uncommitted changes, if it has any."""
    changes = package_changes()
    if not changes:
        return
    shown = ", ".join(changes[:5])
    more = f" and {len(changes) - 5} more" if len(changes) > 5 else ""
    raise DirtyPackageError(
        f"{out}: sbibench runs from a checkout whose package has uncommitted changes "
        f"({shown}{more}), so its records could not be traced to a commit; commit or stash "
        "them, or pass --allow-dirty (the records then name the revision '<commit>-dirty')"
    )


def _piece(suite: Suite, jobs: list[Job], only: dict[str, list]) -> set[str]:
    """The keys of the jobs in the piece that ``only`` names; ValueError naming a field or a
    value that the suite does not have."""
    grid = {"task": suite.tasks, "method": tuple(suite.methods), "budget": suite.budgets}
    for field, values in only.items():
        if field not in grid:
            raise ValueError(f"no field {field!r} to choose a piece by; choose among {list(grid)}")
        unknown = [value for value in values if value not in grid[field]]
        if unknown:
            raise ValueError(
                f"suite {suite.name!r} has no {field} {unknown[0]!r}; its {field}s: "
                f"{', '.join(map(str, grid[field]))}"
            )
    return {
        job.key
        for job in jobs
        if all(getattr(job, field) in values for field, values in only.items())
    }


def _run_held(
    suite: Suite,
    out: Path,
    jobs: list[Job],
    chosen: set[str],
    executor: Any,
    workers: int | None,
    scheduler: str | None,
    progress: bool,
    rerun_stale: bool,
) -> RunSummary:
    """`run_suite` once the folder's lock is held: set the folder up, run what is not done
    among the ``chosen`` keys."""
    prepare_folder(suite, out)
    _check_threads(out, jobs)
    expected = {job.key: _provenance(job.task, job.method_name) for job in jobs}
    state = scan_records(out, expected)
    stale_moved = None
    if state.stale and not rerun_stale:
        raise StaleRecordsError(_stale_message(out, state.stale))
    if state.stale:
        stale_moved = set_aside_stale(out, sorted(state.stale))
    todo = [job for job in jobs if job.key in chosen and job.key not in state.done]
    provenance = {"suite": suite.name, **environment()}
    local = is_local(executor, scheduler)  # remote workers may not share our CPUs or disk
    named = isinstance(executor, str)
    threads = jobs[0].threads if jobs else 1
    if named:
        _warn_oversubscribed(executor, workers, threads, remote=not local)
    finished, lost = 0, []
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=f"sbibench {suite.name}", unit="run", disable=not progress)
    futures: dict = {}
    phases = PhaseFiles(RunFolder(out).running) if local and progress else None
    try:
        with (
            _stopped_by_signals(),
            _callers_threads_kept(),
            open_executor(
                executor,
                workers,
                threads,
                scheduler,
                RunFolder(out).slurm,
                jobs[0].timeout if jobs else None,
            ) as pool,
            _cancelled_when_left(futures),
        ):
            if pool is None:
                results = _serial(todo, bar)
            else:  # every job in a process of its own, wherever the executor runs it
                for job in todo:
                    report = phases.reporter(job) if phases else None
                    futures[pool.submit(run_isolated, job, report)] = job
                completed = _completed(futures, bar, phases)
                results = ((job, _result(future)) for job, future in completed)
            for job, result in results:
                bar.update()
                if result is None:  # the worker died: nothing written, a re-run retries it
                    lost.append(job.key)
                    continue
                records, ranks = result
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                fields = {**provenance, **expected[job.key], "timestamp": stamp}
                _write(out, job, [{**fields, **record} for record in records], ranks)
                finished += 1
    finally:  # also when stopped: the bar ends its line, results.csv holds what is finished
        bar.close()
        if phases:
            with contextlib.suppress(OSError):  # left behind only by jobs whose worker died
                phases.folder.rmdir()
        table = _rebuilt(out)
    failures = _failures(out, set(expected))
    return RunSummary(
        len(jobs), len(state.done), finished, sum(n for _, _, n in failures), table,
        [(path, error) for path, error, _ in failures], lost, state.broken, stale_moved,
    )  # fmt: skip


def _check_threads(out: Path, jobs: list[Job]) -> None:
    """Refuse to resume a folder at another ``threads`` than its records': the jobs' keys
    differ, so every job would run again beside the old records, and tables would count both
    as observations."""
    if not jobs:
        return
    keys = completed_keys(out) - {job.key for job in jobs}  # jobs not of this grid
    found: dict[int, int] = {}
    for key in sorted(keys):
        with contextlib.suppress(RecordError):  # an unreadable file is dealt with elsewhere
            for record in read_job(RunFolder(out).record(key))[:1]:
                found[record["threads"]] = found.get(record["threads"], 0) + 1
    others = {threads: n for threads, n in found.items() if threads != jobs[0].threads}
    if others:
        held = ", ".join(f"{n} job(s) at --threads {t}" for t, n in sorted(others.items()))
        raise RecordError(
            f"{out} holds records run with another thread count ({held}); resume with the same "
            f"--threads, or choose another --out for --threads {jobs[0].threads}"
        )


def _write(out: Path, job: Job, records: list[dict], ranks: dict) -> None:
    """Write a job's records; a file-system error stops the run, naming the job and the
    folder (records written before stay whole: each is written atomically)."""
    try:
        write_job(out, job.key, records, ranks)
    except OSError as error:
        raise OSError(
            f"could not write the records of {_label(job)} into {RunFolder(out).records}: "
            f"{error}; the records written before are kept, and re-running resumes"
        ) from None


def _rebuilt(out: Path) -> Path | None:
    """results.csv rebuilt from the records; None, with one line on stderr, where it cannot
    be written (the records are the source: the next run or report rebuilds it)."""
    try:
        return rebuild_table(out)
    except OSError as error:
        print(f"sbibench: could not rebuild {RunFolder(out).table}: {error}", file=sys.stderr)
        return None


_provenance_cache: dict[tuple[str, str], dict] = {}


def _provenance(task: str, method_name: str) -> dict:
    if (task, method_name) not in _provenance_cache:
        _provenance_cache[task, method_name] = job_provenance(task, method_name)
    return _provenance_cache[task, method_name]


def _stale_message(out: Path, stale: dict[str, str]) -> str:
    shown = "\n".join(
        f"  {out / 'records' / key}.json: {why}" for key, why in list(stale.items())[:5]
    )
    more = f"\n  ... and {len(stale) - 5} more" if len(stale) > 5 else ""
    return (
        f"{len(stale)} record file(s) in {out} were made by other code or data than today's:\n"
        f"{shown}{more}\nRe-run them with --rerun-stale (they move to {out / 'stale'}/), "
        "or choose another --out"
    )


def _failures(out: Path, keys: set[str]) -> list[tuple[Path, str, int]]:
    """(record file, the error's last line, failed records) of each failed job of the grid."""
    found = []
    for key in sorted(completed_keys(out) & keys):
        path = RunFolder(out).record(key)
        failed = [r for r in read_job(path) if r["status"] != "ok"]
        if failed:
            lines = str(failed[0].get("error") or "no error text").strip().splitlines()
            found.append((path, lines[-1] if lines else "no error text", len(failed)))
    return found


def _result(future: Any) -> Any:
    """A finished job's result, or None when its worker died (not the method: `execute`
    turns a method's errors into failed records)."""
    try:
        return future.result()
    except Exception as error:  # a lost worker must not stop the grid
        print(f"sbibench: a worker was lost ({type(error).__name__}: {error}); re-run to retry")
        return None
