"""Each job in a process of its own, so that nothing a job does can end or poison the grid.

`run_isolated` runs one job in a fresh job process and waits for its records. Whatever the
job does there (raises, calls ``sys.exit`` or ``os._exit``, raises ``KeyboardInterrupt``, is
killed by a signal or the out-of-memory killer, blocks in a call that never returns), it ends
as that job's failed record, saying what happened, and the process that asked goes on with the
next job. A time limit kills the job process, so it holds whatever the job is doing, and a job
process exits when the process that started it dies (its pipe closes), so a killed driver
leaves no job computing on.

Job processes are forked from multiprocessing's fork server, which has imported torch and the
worker once; a job process starts in about 0.1 s and needs no imports of its own
(``benchmarks/bench_run.py`` times it). Where there is no fork server (Windows), they are
spawned, at the cost of the imports per job.

The ``processes`` executor runs `run_isolated` in ``workers`` threads of the driver; Dask,
SLURM and your own executors run it in their workers, which then supervise one job process
each.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import multiprocessing
import os
import pkgutil
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sbibench.run.suite import Job

__all__ = ["run_isolated", "stop_job_processes"]

# Imported once by the fork server, so that no job process imports them again: the worker, the
# packages a job's method and scores come from, and what torch and the scores import on first
# use (the optimisers import torch._dynamo). Without them a job process spent about 2.5 s on
# imports before its work.
PRELOAD_PACKAGES = ("sbibench.methods", "sbibench.metrics", "sbibench.models", "sbibench.nn")
PRELOAD_MODULES = ("sbibench.run.worker", "torch._dynamo", "scipy.stats", "ot")

_live: set[Any] = set()  # job processes running now, for `stop_job_processes`
_live_lock = threading.Lock()
_daemon_lock = threading.Lock()


def _context() -> Any:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_preload())
        return context
    return multiprocessing.get_context("spawn")


@functools.cache
def _preload() -> list[str]:
    """The modules the fork server imports (one that fails to import is skipped there)."""
    names = list(PRELOAD_MODULES)
    for package in PRELOAD_PACKAGES:
        path = importlib.import_module(package).__path__
        names += [f"{package}.{info.name}" for info in pkgutil.iter_modules(path)]
    return [name for name in names if not name.endswith("sbi_adapter")]  # imports sbi: optional


@contextlib.contextmanager
def _children_allowed() -> Iterator[None]:
    """Let a daemonic process (a Dask worker's, by default) start the job process.

    multiprocessing refuses children to daemonic processes because they are killed without
    a chance to stop their own children; a job process stops itself when its starter dies
    (`_exit_when_orphaned`), so the refusal does not apply. The flag is set back at once.
    """
    config = multiprocessing.current_process()._config  # noqa: SLF001 - no public switch
    with _daemon_lock:  # a Dask worker may start jobs from several threads
        daemon = config.pop("daemon", None)
        try:
            yield
        finally:
            if daemon is not None:
                config["daemon"] = daemon


def run_isolated(job: Job, report: Callable[[str], None] | None = None) -> tuple[list[dict], dict]:
    """Run ``job`` in a job process of its own; return its records and SBC ranks.

    Never raises for what the job does: an exit, a signal or ``job.timeout`` seconds passing
    (the job process is killed then) give failed records naming the cause.

    Arguments:
        job: the job.
        report: called in the job process with each phase as it starts; must be picklable.
    """
    from sbibench.run.worker import failed_records

    context = _context()
    results, results_end = context.Pipe(duplex=False)
    alive_end, alive = context.Pipe(duplex=False)  # never written: closing it is the signal
    process = context.Process(
        target=_job_main,
        args=(job, report, results_end, alive_end, dict(os.environ)),
        name=f"sbibench {job.key}",
    )
    with _children_allowed():
        process.start()
    results_end.close()
    alive_end.close()
    with _live_lock:
        _live.add(process)
    try:
        if not results.poll(job.timeout):
            process.kill()
            process.join()
            return failed_records(job, _timeout_text(job))
        try:
            return results.recv()
        except EOFError:  # the process ended without sending its records
            process.join()
            return failed_records(job, _death_text(process.exitcode))
    finally:
        with _live_lock:
            _live.discard(process)
        alive.close()
        results.close()
        if process.is_alive():
            process.kill()
        process.join()


def stop_job_processes() -> None:
    """Kill every job process this process started and is still waiting on (a stopped run):
    the threads waiting on them then return at once."""
    with _live_lock:
        for process in list(_live):
            with contextlib.suppress(OSError, ValueError):
                process.kill()


def _job_main(job: Job, report: Any, results: Any, alive: Any, environ: dict) -> None:
    """The job process: run the job, send its records, exit without waiting on anything the
    method may have left running (threads, atexit hooks)."""
    from sbibench.run.worker import failed_records, run_job

    # The fork server's environment is the one it started with; the job gets today's.
    os.environ.clear()
    os.environ.update(environ)
    # Ctrl-C reaches the whole process group; stopping the run is the driver's to do, and it
    # kills its job processes then. A KeyboardInterrupt seen here is the method's own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(alive,), daemon=True).start()
    try:
        result = run_job(job, report or (lambda phase: None))
    except BaseException as error:  # noqa: BLE001 - whatever escapes is this job's failure
        result = failed_records(job, error)
    results.send(result)
    results.close()
    os._exit(0)


def _exit_when_orphaned(alive: Any) -> None:
    """Block on the pipe that only the starting process holds open; once it dies, exit."""
    try:
        alive.recv()
    except (EOFError, OSError):
        pass
    os._exit(70)


def _timeout_text(job: Job) -> str:
    return f"timeout: the job ran past its limit of {job.timeout:g} s and its process was killed"


def _death_text(code: int | None) -> str:
    """Why a job process ended without its records, from its exit code."""
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        hint = " (the out-of-memory killer sends it)" if -code == signal.SIGKILL else ""
        return f"the job's process was killed by signal {name}{hint}; its records were lost"
    return f"the job's process exited with code {code} before sending its records (os._exit?)"
