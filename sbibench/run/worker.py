"""Run one job of a suite: fit or run the method, score every observation against the exact
posterior (each score of the registry in `sbibench.scoring` the suite names, floor scores beside
their noise floors), and calibrate amortized methods with the registry's calibration scores."""

from __future__ import annotations

import contextlib
import ctypes
import json
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from sbibench.failures import simulate_or_nan
from sbibench.methods import HasLogProb, HasSampleBatch, HasUnnormalizedLogProb, get_method
from sbibench.methods.base import _plain
from sbibench.records import new_record
from sbibench.reference.build import noise_floors
from sbibench.run.cpus import cpu_name
from sbibench.scoring import Calibration, Draws, compute, mmd_bandwidth, registered
from sbibench.task import Task, get_task

if TYPE_CHECKING:
    from sbibench.run.suite import Job

__all__ = [
    "JobTimeout",
    "RunStopped",
    "calibrate",
    "calibration_data",
    "execute",
    "failed_records",
    "derived_seed",
    "observation_size",
    "run_job",
    "score_observation",
    "task_facts",
]


class JobTimeout(BaseException):  # noqa: N818 - raised into the job's thread
    """A job ran past its time limit. A BaseException, like KeyboardInterrupt, so that the
    handlers that turn a method's errors into failed records do not swallow it."""


class RunStopped(KeyboardInterrupt):
    """The run was stopped (Ctrl-C, SIGTERM): raised by the runner's signal handlers, so that
    a job running in the driver's own process tells it from a KeyboardInterrupt that the
    method raised, which only fails its job."""


def _the_jobs(error: BaseException) -> bool:
    """True for what a job's own code raised (any Exception, ``sys.exit``, a KeyboardInterrupt
    of its own): it fails the job and the grid goes on. False for the run being stopped or
    the job's time running out."""
    if isinstance(error, (RunStopped, JobTimeout)):
        return False
    return isinstance(error, (Exception, SystemExit, KeyboardInterrupt))


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise `JobTimeout` in this thread once ``seconds`` have passed inside the block.

    In the main thread a SIGALRM timer raises it, which also ends a blocking call such as
    ``time.sleep``; in another thread a timer thread raises it asynchronously
    (``PyThreadState_SetAsyncExc``), at the next Python instruction. Neither stops a C call
    that never returns: `sbibench.run.isolation` kills the job's process instead.
    """
    if seconds is None:
        yield
        return
    if threading.current_thread() is threading.main_thread():
        with _alarm(seconds):
            yield
        return
    target, lock, state = threading.get_ident(), threading.Lock(), {"fired": False, "open": True}

    def expire() -> None:
        with lock:
            if state["open"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(target), ctypes.py_object(JobTimeout)
                )

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["open"] = False
            timer.cancel()
            if state["fired"]:  # clear it, should it still be pending
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), None)


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise JobTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def derived_seed(*parts: Any) -> int:
    """A seed (0..2**56-1) derived from ``parts`` (a job's key and what it draws for), so that
    draws are reproducible per job, observation and purpose."""
    import hashlib

    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:7], "little")


def score_observation(task: Task, k: int, posterior: Any, job: Job) -> dict[str, Any]:
    """The suite's scores of observation k (`sbibench.scoring`) for ``job.num_posterior_samples``
    draws of ``posterior`` (seeded by the job's key), each floor score's noise floor beside it.
    The scoring of every record, a run's or one scored from files (`sbibench.run.from_files`)."""
    x = task.observation(k)
    n = job.num_posterior_samples
    samples = posterior.sample(n, x, seed=derived_seed("sample", job.key, k))
    reference = task.reference_samples(k)
    selected = [metric for metric in registered(calibration=False) if metric.name in job.metrics]
    missing = sorted(set(job.metrics) - {metric.name for metric in selected})
    if missing:  # registered in the driver only: a worker process never saw it
        raise ValueError(
            f"score(s) {', '.join(missing)} not registered in this worker process; register "
            "them in a module the workers import, or under the sbibench.scores entry-point group"
        )
    # stored with the references, looked up outside the scoring time
    floors = noise_floors(task, k, n) if any(metric.floor for metric in selected) else {}
    start = time.perf_counter()
    mean, covariance = task.reference_moments(k)
    density = posterior.log_prob if isinstance(posterior, HasLogProb) else None
    draws = Draws(
        reference=reference[:n],
        samples=samples,
        bandwidth=mmd_bandwidth(reference),
        mean=mean,
        covariance=covariance,
        true_parameters=task.true_parameters(k),
        log_prob=(lambda theta: density(theta, x)) if density is not None else None,
    )
    scores: dict[str, Any] = {}
    for metric in selected:
        scores.update(compute(metric, draws))
        if metric.floor:
            scores[f"{metric.name}_floor"] = floors[metric.name]
            scores[f"{metric.name}_floor_sd"] = floors[f"{metric.name}_sd"]
    scores["time_score"] = time.perf_counter() - start
    return scores


def calibration_data(task: Task, num_datasets: int, seed: int) -> tuple[Tensor, Tensor]:
    """The valid (theta, x) pairs, (N, D) and (N, M) float64, of ``num_datasets`` draws from
    the prior predictive, all from one generator seeded with ``seed``: a failing task's failed
    rows are dropped (N <= ``num_datasets``), padded sets keep their padding."""
    generator = torch.Generator().manual_seed(seed)
    theta = task.sample_prior(num_datasets, generator)
    x = simulate_or_nan(task.simulate, theta, generator)  # a failing task's failed rows NaN
    valid = task.valid(x)
    return theta[valid], x[valid]


def _calibrate(task: Task, posterior: Any, job: Job) -> tuple[dict, dict]:
    """SBC over ``sbc_datasets`` prior-predictive datasets (`calibration_data`), by
    `calibrate`."""
    theta, x = calibration_data(task, job.sbc_datasets, derived_seed("sbc", job.key))
    return calibrate(posterior, theta, x, job.sbc_samples, derived_seed("sbc-draws", job.key))


def calibrate(
    posterior: Any, theta: Tensor, x: Tensor, num_samples: int, seed: int
) -> tuple[dict, dict]:
    """Every calibration score of the registry (SBC ranks, expected coverage: HPD where the
    posterior has a density, TARP otherwise) of ``num_samples`` posterior draws for each of
    the N datasets x (N, M) whose true parameters are theta (N, D); their summary columns and
    the arrays to keep. The calibration of every record, a run's or one scored from files."""
    # MCMC and ODE posteriors draw for every dataset in one vectorised run (seeded per batch,
    # not per observation): a seeded `sample` would run one MCMC or ODE solve per dataset.
    draw = posterior.sample_batch if isinstance(posterior, HasSampleBatch) else posterior.sample
    samples = draw(num_samples, x, seed=seed)
    samples = samples.transpose(0, 1)  # (N, L, D)
    # HPD regions need the density only up to a constant per dataset: an unnormalised one
    # (NLE, NRE: likelihood or ratio times prior) ranks the samples just as well.
    log_prob = None
    if isinstance(posterior, HasUnnormalizedLogProb):  # paired rows: a few batched calls
        unnormalized = posterior.unnormalized_log_prob

        def log_prob(values: torch.Tensor) -> torch.Tensor:
            # (N, M, D) flattened, each row paired with its dataset's x
            n, k, d = values.shape
            flat, rows = values.reshape(n * k, d), x.repeat_interleave(k, 0)
            parts = zip(flat.split(2**17), rows.split(2**17), strict=True)
            return torch.cat([unnormalized(*part) for part in parts]).reshape(n, k)

    elif isinstance(posterior, HasLogProb):
        density = posterior.log_prob

        def log_prob(values: torch.Tensor) -> torch.Tensor:
            return torch.stack([density(v, row) for v, row in zip(values, x, strict=True)])

    inputs = Calibration(theta, samples, num_samples, log_prob)
    summary: dict[str, Any] = {}
    kept: dict[str, Any] = {"num_samples": num_samples}
    for metric in registered(calibration=True):
        values = compute(metric, inputs)
        kept.update(
            {name: np.asarray(values.pop(name)) for name in metric.arrays if name in values}
        )
        summary.update(values)
    return summary, kept


def _error_text(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"the job called sys.exit({error.code!r})"
    if isinstance(error, KeyboardInterrupt):
        return f"the job raised KeyboardInterrupt({', '.join(map(repr, error.args))})"
    lines = traceback.format_exception_only(type(error), error)
    return "".join(lines).strip()[-2000:]


def execute(job: Job, report: Callable[[str], None] | None = None) -> tuple[list[dict], dict]:
    """Run a job in this process (the ``serial`` executor); return its records (one per
    observation) and the SBC ranks to keep.

    Like `run_job`, and past ``job.timeout`` seconds the job is stopped and its records say
    so. In this process nothing can stop ``os._exit`` or a C call that never returns: other
    executors run each job in a process of its own (`sbibench.run.isolation`).
    """
    try:
        with _time_limit(job.timeout):
            return run_job(job, report)
    except JobTimeout:
        error = f"timeout: the job ran past its limit of {job.timeout:g} s and was stopped"
        return failed_records(job, error)


def run_job(job: Job, report: Callable[[str], None] | None = None) -> tuple[list[dict], dict]:
    """Run a job; return its records (one per observation) and the SBC ranks to keep.

    Times per record: ``time_simulate``, ``time_train`` and ``time_propose`` (a sequential
    method's proposals in rounds after the first) are the fit's (shared by the observations of
    an amortized fit), ``time_sample`` this observation's scoring draws and ``time_score`` the
    metrics' time (noise floors are looked up, not computed, outside it).

    What the method or simulator raises (an error, ``sys.exit``, a KeyboardInterrupt of its
    own) does not propagate: its records say ``status = "failed"`` with the error text, so the
    grid goes on. Sets torch's threads in this process to ``job.threads``, whichever executor
    runs it: results depend on the thread count.

    ``report``, where given, is called with each phase as it starts (fitting, scoring an
    observation, calibrating), for the runner's progress line.
    """
    torch.set_num_threads(job.threads)
    return _execute(job, report or (lambda phase: None))


def failed_records(job: Job, error: BaseException | str) -> tuple[list[dict], dict]:
    """The records of a job that failed as a whole: one per observation, with the error."""
    text = error if isinstance(error, str) else _error_text(error)
    return [new_record(_base(job), k, text) for k in job.observations], {}


def _base(job: Job) -> dict[str, Any]:
    """The fields every record of the job shares, the CPU of the worker running it included
    (on a cluster, the node's, not the driver's)."""
    return {
        "task": job.task, "method": job.method, "method_name": job.method_name,
        "config_hash": job.config_hash, "config": _json(job.config), "budget": job.budget,
        "seed": job.seed, "num_posterior_samples": job.num_posterior_samples, "key": job.key,
        "threads": job.threads, "cpu": cpu_name(),
    }  # fmt: skip


def task_facts(task: Task) -> dict[str, Any]:
    """The task's facts every record carries, so a report needs no task card to group by
    them: its model family, parameter dimension and the task it assumes (misspecified)."""
    return {
        "task_family": task.family,
        "task_dim": task.dim_parameters,
        "task_assumes": task.assumes or "",
    }


def observation_size(task: Task, k: int) -> int | None:
    """The set size n of observation k of a task of i.i.d. sets of stated sizes, else None."""
    return task.model.observation_sizes[k - 1] if task.padded_sets else None


def _execute(job: Job, report: Callable[[str], None]) -> tuple[list[dict], dict]:
    base = _base(job)
    try:
        task = get_task(job.task)
        base.update(task_facts(task))
        method = get_method(job.method_name, **job.config)
        report("fitting" if job.amortized else "running the method")
        if job.amortized:
            fitted = method.fit(task, job.budget, job.seed)
            posteriors = dict.fromkeys(job.observations, fitted)
        else:
            posteriors = {
                k: method.run(task, task.observation(k), job.budget, job.seed)
                for k in job.observations
            }
    except BaseException as error:  # a failing method fails its run, not the grid
        if not _the_jobs(error):
            raise
        return [new_record(base, k, _error_text(error)) for k in job.observations], {}
    records = []
    for i, (k, posterior) in enumerate(posteriors.items()):
        report(f"scoring observation {k} ({i + 1} of {len(posteriors)})")
        record = new_record(base, k, observation_size=observation_size(task, k))
        sampled_before = posterior.timings.sample
        try:
            record.update(score_observation(task, k, posterior, job))
        except BaseException as error:  # e.g. NaN samples: the run failed, the grid goes on
            if not _the_jobs(error):
                raise
            record.update(status="failed", error=_error_text(error))
        timings = posterior.timings
        record.update(
            num_simulations_used=posterior.num_simulations_used,
            num_invalid_simulations=posterior.num_invalid_simulations,
            time_simulate=timings.simulate,
            time_train=timings.train,
            time_propose=timings.propose,
            time_sample=timings.sample - sampled_before,  # this observation's draws
        )
        records.append(record)
    kept: dict = {}
    if job.amortized and job.sbc_datasets > 0 and all(r["status"] == "ok" for r in records):
        try:
            report(f"calibrating on {job.sbc_datasets} datasets")
            start = time.perf_counter()
            summary, kept = _calibrate(task, next(iter(posteriors.values())), job)
            summary["time_calibrate"] = time.perf_counter() - start
            for record in records:
                record.update(summary)
        except BaseException as error:  # calibration failing marks the records, keeps the scores
            if not _the_jobs(error):
                raise
            for record in records:
                record.update(status="failed", error="calibration: " + _error_text(error))
    return records, kept


def _json(config: dict) -> str:
    return json.dumps(config, sort_keys=True, default=_plain)
