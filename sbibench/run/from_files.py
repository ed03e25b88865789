"""Score posterior samples from files (`sbibench score`): a method that ran outside sbibench's
process, on an export (`sbibench.run.export`), gets the records a run would write.

The samples are served by `FilePosterior` to the worker's own scoring and calibration
(`sbibench.run.worker.score_observation`, `sbibench.run.worker.calibrate`), so the records
have a run's columns, noise floors and calibration arrays, and `sbibench report` and
`sbibench check` read them like any other. Every file is checked before anything is written:
a bad one raises a ValueError naming the file, the observation and what was expected, and the
records already in the folder stay as they were.

Samples files (`sbibench.run.array_files` reads them): for the observations, one file per
observation, (N, D), in the export's order, or one file (K, N, D); for calibration, one file
(L, S, D), the calibration datasets in the export's order. N and S are the export's
``num_posterior_samples`` and ``calibration.num_posterior_samples``, exactly.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sbibench.checks import FILE_NAME_RULE, is_file_name
from sbibench.methods.base import Timings, same_data
from sbibench.models import FAMILIES
from sbibench.records import (
    RunFolder,
    environment,
    new_record,
    read_records,
    rebuild_table,
    write_job,
)
from sbibench.run.array_files import read_values
from sbibench.run.export import check_meta, check_values, read_ledger, withheld
from sbibench.run.provenance import code_digest, task_digest
from sbibench.run.suite import Job, load_suite
from sbibench.run.worker import (
    calibrate,
    derived_seed,
    observation_size,
    score_observation,
    task_facts,
)
from sbibench.task import Task, get_task

__all__ = ["METHOD_NAME", "FilePosterior", "score_files"]

METHOD_NAME = "files"  # the records' method_name: scored from files, fitted elsewhere


class FilePosterior:
    """Posterior samples from files served as a `sbibench.methods.Posterior`.

    ``sample(n, x)`` returns the samples given for the observation or dataset x (M,) (or for
    each row of x (B, M), as (n, B, D)); n must be the number of samples given. Its seed is
    ignored: the samples are what they are.

    Arguments:
        xs: (B, M) the observations or datasets the samples answer.
        samples: (B, N, D) float64, the samples for each of them.
        used, invalid: the simulations the method was handed, and those invalid.
    """

    def __init__(self, xs: Tensor, samples: Tensor, used: int, invalid: int) -> None:
        self.xs, self.samples = xs, samples
        self.num_simulations_used, self.num_invalid_simulations = used, invalid
        self.timings = Timings()

    def _one(self, x: Tensor) -> Tensor:
        for row, samples in zip(self.xs, self.samples, strict=True):
            if same_data(row, x):
                return samples
        raise ValueError("no samples were given for this observation")

    def sample(self, n: int, x: Tensor, seed: int | None = None) -> Tensor:
        if n != self.samples.shape[1]:
            raise ValueError(f"{n} samples asked for, {self.samples.shape[1]} given")
        if x.ndim == 1:
            return self._one(x)
        return torch.stack([self._one(row) for row in x], dim=1)


def _read_samples(
    paths: list[Path], task: Task, groups: list[int], size: int, group: str, ledger: dict
) -> Tensor:
    """The samples (G, size, D) of ``paths``, one group (observation, dataset) each or one
    file of all; ValueError naming the file and the group for any fault."""
    d, count = task.dim_parameters, len(groups)
    if len(paths) > 1 and len(paths) != count:
        raise ValueError(
            f"{len(paths)} samples files for {count} {group}s ({_span(groups)}); give one file "
            f"per {group}, in that order, or one file of all"
        )
    parts = []
    for i, path in enumerate(paths):
        expected = groups if len(paths) == 1 else [groups[i]]
        found = read_values(path, "samples", task.parameter_names, group)
        check_meta(path, found.meta, task.name, ledger["budget"], ledger["seed"])
        values = found.values
        if values.ndim not in (2, 3) or values.shape[-1] != d:
            raise ValueError(
                f"{path}: samples must have shape (N, {d}) or ({group}s, N, {d}) for task "
                f"{task.name!r} ({', '.join(task.parameter_names)}), found {values.shape}"
                + ("; a file for another task?" if values.ndim in (2, 3) else "")
            )
        values = values if values.ndim == 3 else values[None]
        if values.shape[0] != len(expected):
            raise ValueError(
                f"{path}: samples for {values.shape[0]} {group}(s), expected {len(expected)} "
                f"({group}s {_span(expected)})"
            )
        if found.groups is not None:
            named = [int(g) for g in np.asarray(found.groups).reshape(-1)]
            if named != expected:
                raise ValueError(f"{path}: holds {group}s {named}, expected {expected}")
        if values.shape[1] != size:
            where = f"{group} {expected[0]}" if len(expected) == 1 else f"each {group}"
            raise ValueError(
                f"{path}: {where}: {values.shape[1]} samples, expected exactly {size} (the "
                "export's manifest says how many)"
            )
        for number, block in zip(expected, values, strict=True):
            check_values(path, task, torch.from_numpy(block), "sample", f"{group} {number}")
        parts.append(values)
    return torch.from_numpy(np.concatenate(parts))


def _span(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers)) if len(numbers) <= 6 else f"{numbers[0]}..{numbers[-1]}"


def _refuse_duplicate(run: Path, task: str, method: str, budget: int, seed: int) -> None:
    if not RunFolder(run).records.is_dir():
        return
    for record in read_records(run):
        if (record["task"], record["method"], record["budget"], record["seed"]) == (
            task, method, budget, seed,
        ):  # fmt: skip
            raise ValueError(
                f"{run} already holds records of method {method!r} on {task} at budget "
                f"{budget}, seed {seed} ({RunFolder(run).record(record['key'])}); choose "
                "another --method name, or move that file out of records/"
            )


def score_files(
    task_name: str,
    budget: int,
    seed: int,
    run: str | Path,
    method: str,
    samples: list[str | Path],
    calibration: str | Path | None = None,
) -> list[dict]:
    """Score posterior samples from files into the records of run folder ``run``; return them.

    Arguments:
        task_name, budget, seed: the export the samples answer (`sbibench.run.export.export`);
            the budget is the one declared, checked against what the export handed out.
        run: the run folder holding the export; the records are written there.
        method: the method's name in the records (a label: `sbibench.checks.FILE_NAME_RULE`).
        samples: one file per observation of the export, in order, or one file of all.
        calibration: a file of samples for the export's calibration datasets, or None.

    Raises:
        ValueError: a bad name or file (what and where), no such export, or ``run`` already
            holds records of this method, task, budget and seed. Nothing is written then.
    """
    from sbibench.run.runner import folder_held

    if not is_file_name(method):
        raise ValueError(f"method name {method!r} cannot name a record; a name is {FILE_NAME_RULE}")
    if not samples:
        raise ValueError("no samples files given")
    task, run = get_task(task_name), Path(run)
    paths = [Path(path) for path in samples]
    with folder_held(run):
        ledger = read_ledger(run, task.name, budget, seed)
        suite = load_suite(RunFolder(run).suite)
        if suite.sha256 != ledger["suite_sha256"] or task.card_sha256 != ledger["card_sha256"]:
            raise ValueError(
                f"{run}: its suite.toml or task {task.name!r}'s card changed since the export; "
                "export again into a fresh run folder"
            )
        _refuse_duplicate(run, task.name, method, budget, seed)
        observations = ledger["observations"]
        n = ledger["num_posterior_samples"]
        values = _read_samples(paths, task, observations, n, "observation", ledger)
        xs = torch.stack([task.observation(k) for k in observations])
        posterior = FilePosterior(xs, values, ledger["used"], ledger["invalid"])
        cal = ledger["calibration"]
        files = {path.name: _sha256(path) for path in paths}
        if calibration is not None:
            if cal["num_datasets"] == 0:
                raise ValueError(f"the export of suite {suite.name!r} has no calibration datasets")
            theta, x = map(torch.from_numpy, withheld(run, task.name, budget, seed))
            numbers = list(range(1, cal["num_datasets"] + 1))
            draws = _read_samples(
                [Path(calibration)], task, numbers, cal["num_posterior_samples"], "dataset", ledger
            )
            files[f"calibration:{Path(calibration).name}"] = _sha256(Path(calibration))
        job = Job(
            task.name, method, METHOD_NAME, {"samples": files}, _hash(files), True, budget, seed,
            tuple(observations), n, suite.metrics, cal["num_datasets"] if calibration else 0,
            cal["num_posterior_samples"], 1,
        )  # fmt: skip
        base = _base(job, task)
        records = []
        for k in observations:
            record = new_record(base, k, observation_size=observation_size(task, k))
            record.update(score_observation(task, k, posterior, job))
            record.update(num_simulations_used=ledger["used"])
            record.update(num_invalid_simulations=ledger["invalid"])
            records.append(record)
        kept: dict[str, Any] = {}
        if calibration is not None:
            start = time.perf_counter()
            served = FilePosterior(x, draws, ledger["used"], ledger["invalid"])
            summary, kept = calibrate(
                served, theta, x, cal["num_posterior_samples"], derived_seed("sbc", job.key)
            )
            summary["time_calibrate"] = time.perf_counter() - start
            for record in records:
                record.update(summary)
        family = FAMILIES[task.family].split(":")[0]
        fields = {
            "suite": suite.name, **environment(),
            "code_digest": code_digest(__name__, family), "task_digest": task_digest(task.name),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }  # fmt: skip
        records = [{**fields, **record} for record in records]
        write_job(run, job.key, records, kept)
        rebuild_table(run)
    return records


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hash(files: dict[str, str]) -> str:
    return hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:16]


def _base(job: Job, task: Task) -> dict[str, Any]:
    """The fields every record of the job shares (a run's `sbibench.run.worker` fields; the
    CPU that fitted is not known, so ``cpu`` is empty)."""
    import json

    return {
        "task": job.task, "method": job.method, "method_name": job.method_name,
        "config_hash": job.config_hash, "config": json.dumps(job.config, sort_keys=True),
        "budget": job.budget, "seed": job.seed,
        "num_posterior_samples": job.num_posterior_samples, "key": job.key,
        "threads": job.threads, "cpu": "", **task_facts(task),
    }  # fmt: skip
