"""Executors that run a suite's jobs: one built by name, or any executor the caller made.

By name, the runner builds (and afterwards shuts down) one of `EXECUTORS`: ``serial`` (in this
process, one job after the other), ``processes`` (local: ``workers`` jobs at a time, each in a
process of its own), ``dask`` (a new ``LocalCluster``, or a client of the scheduler at an
address) or ``slurm`` (submitit's ``AutoExecutor``). Or the caller passes an executor object:
any ``concurrent.futures.Executor`` (a ``ProcessPoolExecutor``, a Dask
``Client(...).get_executor()``) or anything else with ``submit(fn, *args)`` whose futures have
``done()`` and ``result()`` (submitit's executors). The caller owns it: the runner submits to
it and never shuts it down. Every executor but ``serial`` runs each job in a job process of its
own (`sbibench.run.isolation`), so an exit, a signal or a time limit ends only that job; each
job sets its own torch threads, so every executor gives the same records.

This module imports no torch, Dask or submitit until an executor is built: the command's
``--help`` reads `EXECUTORS` from here.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sbibench.checks import whole
from sbibench.run.cpus import available_cpus
from sbibench.run.isolation import stop_job_processes

__all__ = [
    "EXECUTORS",
    "check_executor",
    "default_workers",
    "is_local",
    "open_executor",
]

EXECUTORS = ("serial", "processes", "dask", "slurm")
SLURM_HOURS = 24  # the time a SLURM job asks for when the suite sets no time limit


def default_workers(executor: str, threads: int = 1, cpus: int | None = None) -> int:
    """The default number of parallel workers: 1 serial, else ``cpus // threads`` (>= 1).

    Arguments:
        executor: ``serial``, ``processes``, ``dask`` or ``slurm``.
        threads: torch threads per worker.
        cpus: the CPUs to fill; default `available_cpus()`.

    Example:
        >>> default_workers("processes", threads=2, cpus=6), default_workers("serial", cpus=6)
        (3, 1)
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    whole(threads, "threads", 1)
    if executor == "serial":
        return 1
    return max(1, (available_cpus() if cpus is None else cpus) // threads)


def _is_object(executor: Any) -> bool:
    """True for an executor object (not a name): it has a ``submit`` method."""
    return not isinstance(executor, str) and callable(getattr(executor, "submit", None))


def check_executor(executor: Any, workers: int | None = None, scheduler: str | None = None) -> None:
    """Raise unless ``executor`` is a known name or an executor object, with options that apply.

    Arguments:
        executor: a name from `EXECUTORS`, or an object with ``submit(fn, *args)``.
        workers: the workers to start; only for a name (an object is sized by its maker).
        scheduler: a Dask scheduler's address; only with ``dask``.

    Raises:
        ValueError: an unknown name, or ``workers``/``scheduler`` where they do not apply.
        TypeError: neither a name nor an object with ``submit``.

    Example:
        >>> check_executor("processes", workers=2)
        >>> check_executor("thread")
        Traceback (most recent call last):
        ...
        ValueError: unknown executor 'thread'; choose from serial, processes, dask, slurm
    """
    if isinstance(executor, str):
        if executor not in EXECUTORS:
            raise ValueError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
        if scheduler is not None and executor != "dask":
            raise ValueError(f"a scheduler address needs executor 'dask', not {executor!r}")
        return
    if not _is_object(executor):
        raise TypeError(
            f"executor must be one of {', '.join(EXECUTORS)} or an object with "
            f"submit(fn, *args) (a concurrent.futures.Executor), got {executor!r}"
        )
    for name, value in (("workers", workers), ("scheduler", scheduler)):
        if value is not None:
            raise ValueError(
                f"{name} applies to an executor sbibench builds by name; "
                f"{type(executor).__name__} is yours: set it up when you make it"
            )


def is_local(executor: Any, scheduler: str | None = None) -> bool:
    """True when ``executor``'s workers run on this machine, seeing its CPUs and disk.

    Named executors: ``serial``, ``processes`` and ``dask`` without a ``scheduler`` are local.
    Objects: the standard library's process and thread pools are; any other (a Dask client's
    executor, submitit's) may run elsewhere, so it counts as remote.

    Example:
        >>> is_local("dask"), is_local("dask", "tcp://head:8786"), is_local("slurm")
        (True, False, False)
    """
    if isinstance(executor, str):
        return executor in ("serial", "processes") or (executor == "dask" and not scheduler)
    local = (concurrent.futures.ProcessPoolExecutor, concurrent.futures.ThreadPoolExecutor)
    return isinstance(executor, local)


@contextlib.contextmanager
def open_executor(
    executor: Any,
    workers: int | None = None,
    threads: int = 1,
    scheduler: str | None = None,
    folder: str | Path = "slurm",
    timeout: float | None = None,
) -> Iterator[Any]:
    """The executor to submit jobs to, for the length of the block; None for ``serial``.

    A name builds one, checked (and connected) before any work and shut down afterwards. An
    object is yielded as it is and left running: its maker owns it.

    Arguments:
        executor: a name from `EXECUTORS`, or an executor object.
        workers: processes, Dask workers or concurrent SLURM tasks to start (names only);
            default `default_workers`.
        threads: torch threads per job: SLURM's ``cpus_per_task`` (each job sets its own).
        scheduler: with ``dask``, the address of a running scheduler; default a LocalCluster.
        folder: with ``slurm``, where submitit keeps its job files and logs.
        timeout: with ``slurm``, the jobs' own limit in seconds: each SLURM job asks for it
            and 5 minutes more (for its start), else for `SLURM_HOURS` hours.

    Raises:
        ImportError: ``dask`` or ``slurm`` without its optional dependency.
        ConnectionError: the Dask scheduler at ``scheduler`` does not answer.

    Example:
        >>> import concurrent.futures
        >>> with concurrent.futures.ThreadPoolExecutor(1) as pool:
        ...     with open_executor(pool) as opened:
        ...         opened is pool
        ...     opened.submit(abs, -2).result()  # still open: the caller shuts it down
        True
        2
    """
    check_executor(executor, scheduler=scheduler)
    if not isinstance(executor, str):
        yield executor
        return
    if workers is None:
        workers = default_workers(executor, threads)
    if executor == "serial":
        yield None
    elif executor == "processes":
        # Each job runs in a process of its own (`sbibench.run.isolation`); these threads only
        # start those processes and wait on them, so a dead job process costs only its job.
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="sbibench") as pool:
            try:
                yield pool
            except BaseException:  # an error, Ctrl-C, SIGTERM: stop the jobs still running
                pool.shutdown(wait=False, cancel_futures=True)
                stop_job_processes()
                raise
    elif executor == "dask":
        with _dask(workers, scheduler) as pool:
            yield pool
    else:
        yield _slurm(workers, threads, Path(folder), timeout)


@contextlib.contextmanager
def _dask(workers: int, scheduler: str | None) -> Iterator[Any]:
    """A Dask client's executor: on the scheduler at ``scheduler``, else a new LocalCluster."""
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
        # One job at a time per worker process; the job itself sets its torch threads.
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)
        client = Client(cluster)
    try:
        yield client.get_executor()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _slurm(workers: int, threads: int, folder: Path, timeout: float | None) -> Any:
    """submitit's AutoExecutor (SLURM where there is one, else local processes), each job
    asking for the time it may take: submitit's own default (2 minutes locally, 5 on SLURM)
    stopped ordinary jobs midway."""
    try:
        import submitit
    except ImportError:
        raise ImportError(
            '--executor slurm needs submitit: pip install "sbibench[slurm]"'
        ) from None
    executor = submitit.AutoExecutor(folder=folder)
    minutes = SLURM_HOURS * 60 if timeout is None else math.ceil(timeout / 60) + 5
    executor.update_parameters(
        slurm_array_parallelism=workers, cpus_per_task=threads, timeout_min=minutes
    )
    return executor
