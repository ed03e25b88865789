"""Run a suite's grid on any executor, writing every job's records as it finishes; resume.

The grid runs in-process (``serial``), on a local process pool (``processes``), on a Dask
cluster (``dask``: a new ``LocalCluster``, or an existing scheduler's address), or as SLURM
jobs through submitit (``slurm``). Only this process writes the run folder: workers return
records and the driver writes each job atomically as it completes, so remote workers need no
shared disk and a killed run loses at most the jobs in flight. Workers set torch's threads so
that workers x threads does not exceed the machine's cores.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sbibench.evaluate import execute
from sbibench.results import (
    RecordError,
    completed_keys,
    environment,
    rebuild_table,
    write_atomic,
    write_job,
)
from sbibench.suite import Job, Suite

__all__ = ["EXECUTORS", "RunSummary", "prepare_folder", "run_suite"]

EXECUTORS = ("serial", "processes", "dask", "slurm")


@dataclass
class RunSummary:
    """What `run_suite` did."""

    jobs: int
    skipped: int
    finished: int
    failed_records: int
    table: Path


def prepare_folder(suite: Suite, out: Path) -> None:
    """Make ``out`` a run folder of ``suite``; refuse one that holds another suite's records."""
    out.mkdir(parents=True, exist_ok=True)
    stored = out / "suite.toml"
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


def _threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


@contextlib.contextmanager
def _executor(kind: str, workers: int, scheduler: str | None, out: Path) -> Iterator[Any]:
    """The executor of ``kind``; None for serial. Checked (and connected) before any work."""
    if kind == "serial":
        yield None
    elif kind == "processes":
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # fork after torch's threads can hang
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            yield pool
    elif kind == "dask":
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise ImportError('--executor dask needs dask: pip install "sbibench[dask]"') from None
        if scheduler:
            try:
                client = Client(scheduler, timeout="5s")
            except (OSError, TimeoutError) as error:
                raise ConnectionError(
                    f"the Dask scheduler at {scheduler} does not answer: {error}"
                ) from None
            cluster = None
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)
            client = Client(cluster)
        try:
            yield client.get_executor()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    elif kind == "slurm":
        try:
            import submitit
        except ImportError:
            raise ImportError(
                '--executor slurm needs submitit: pip install "sbibench[slurm]"'
            ) from None
        executor = submitit.AutoExecutor(folder=out / "slurm")
        executor.update_parameters(slurm_array_parallelism=workers, cpus_per_task=_threads(1))
        yield executor
    else:
        raise ValueError(f"unknown executor {kind!r}; choose from {', '.join(EXECUTORS)}")


def _completed(futures: dict) -> Iterator[tuple[Job, Any]]:
    """Yield (job, future) as futures finish: concurrent.futures' own, or submitit's jobs."""
    pending = dict(futures)
    if all(isinstance(f, concurrent.futures.Future) for f in pending):
        for future in concurrent.futures.as_completed(pending):
            yield pending[future], future
        return
    while pending:
        done = [f for f in pending if f.done()]
        for future in done:
            yield pending.pop(future), future
        if not done:
            time.sleep(1.0)


def run_suite(
    suite: Suite,
    out: str | Path,
    executor: str = "serial",
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
) -> RunSummary:
    """Run every job of ``suite`` not yet in ``out``; write records; rebuild results.csv.

    Arguments:
        suite: the checked suite.
        out: the run folder (created; must be this suite's if it exists).
        executor: ``serial``, ``processes``, ``dask`` or ``slurm``.
        workers: parallel workers (processes, Dask workers, concurrent SLURM tasks).
        scheduler: a Dask scheduler address (``tcp://host:port``); default a LocalCluster.
        progress: show a tqdm progress bar over jobs.
    """
    out = Path(out)
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    jobs = suite.jobs()
    prepare_folder(suite, out)
    done = completed_keys(out)
    todo = [job for job in jobs if job.key not in done]
    provenance = {"suite": suite.name, **environment()}
    threads = _threads(workers if executor != "serial" else 1)
    finished = failed = 0
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=f"sbibench {suite.name}", unit="run", disable=not progress)
    with _executor(executor, workers, scheduler, out) as pool:
        if pool is None:
            results = ((job, execute(job, threads)) for job in todo)
        else:
            futures = {pool.submit(execute, job, threads): job for job in todo}
            results = ((job, _result(future)) for job, future in _completed(futures))
        for job, result in results:
            bar.update()
            if result is None:  # the worker died: nothing written, a re-run retries it
                continue
            records, ranks = result
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            records = [{**provenance, **record, "timestamp": stamp} for record in records]
            write_job(out, job.key, records, ranks)
            finished += 1
            failed += sum(record["status"] != "ok" for record in records)
    bar.close()
    table = rebuild_table(out)
    return RunSummary(len(jobs), len(jobs) - len(todo), finished, failed, table)


def _result(future: Any) -> Any:
    """A finished job's result, or None when its worker died (not the method: `execute`
    turns a method's errors into failed records)."""
    try:
        return future.result()
    except Exception as error:  # a lost worker must not stop the grid
        print(f"sbibench: a worker was lost ({type(error).__name__}: {error}); re-run to retry")
        return None
