"""Benchmark suites: a TOML file naming tasks, methods, budgets, seeds and observations,
checked up front and expanded into jobs.

    name = "quick"
    description = "..."                           # optional
    tasks = ["normal_mean", "poisson_gamma"]      # or "all"
    budgets = [1000]
    seeds = [0]
    observations = [1, 2]
    num_posterior_samples = 2000                  # drawn per observation for the scores
    task_observations = { poisson_gamma = [1] }   # optional: a task that scores fewer
    metrics = ["c2st", "mmd", "wasserstein", "moments"]  # from the score registry

    [sbc]                                         # optional: calibration of amortized
    num_datasets = 200                            # methods (these are the defaults;
    num_posterior_samples = 100                   # num_datasets = 0 turns it off)

    [methods.npe]                                 # a label; its method is the label ...
    estimator = "maf"
    [methods.npe_nsf]                             # ... unless `method` names another
    method = "npe"
    estimator = "nsf"
    tasks = ["normal_mean"]                       # optional: only these of the suite's tasks
    seeds = [0, 1, 2]                             # optional: these seeds, not the suite's

An amortized method is fitted once per (task, method, budget, seed): one job scores every
observation and runs SBC, so its seeds are its training seeds (a method's own ``seeds`` gives
an amortized method several fits where a sequential one, fitted anew for each observation,
keeps one). A sequential method runs one job per observation and seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

from sbibench.checks import FILE_NAME_RULE, MAX_SEED, is_file_name, is_seed, is_whole, whole
from sbibench.methods import config_hash, get_method, is_amortized
from sbibench.registry import SUITES_DIR, list_suites
from sbibench.scoring import list_scores
from sbibench.task import get_task, list_tasks

__all__ = ["Job", "Suite", "SuiteError", "load_suite", "list_suites"]

KEYS = {
    "name": "the suite's name (the default run folder is runs/<name>)",
    "tasks": 'task names, or "all"',
    "budgets": "simulation budgets",
    "seeds": "seeds",
    "observations": "observation numbers, 1-based",
    "num_posterior_samples": "posterior samples drawn per observation for the scores",
    "metrics": "scores to compute per observation, from the score registry (sbibench.scoring)",
    "methods": "table of method labels, each a table of its config (and optionally `method`)",
}
OPTIONAL = {
    "description": 'one line (default "")',
    "sbc": "table: num_datasets (default 200; 0 for no calibration) and num_posterior_samples "
    "(default 100)",
    "timeout": "seconds before a job is stopped",
    "task_observations": "table: task name -> the observations it scores instead of `observations`",
}


# Calibration of amortized methods when a suite has no [sbc] table, or sets one key of it:
# SBC and coverage over 200 prior-predictive datasets, 100 posterior draws each.
SBC_DEFAULTS = {"num_datasets": 200, "num_posterior_samples": 100}


class SuiteError(ValueError):
    """A suite file is malformed; the message names the file and the field."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One unit of work: a fit (amortized, all observations) or a run (one observation)."""

    task: str
    method: str  # the suite's label
    method_name: str  # the registry's name
    config: dict
    config_hash: str
    amortized: bool
    budget: int
    seed: int
    observations: tuple[int, ...]
    num_posterior_samples: int
    metrics: tuple[str, ...]
    sbc_datasets: int
    sbc_samples: int
    threads: int  # torch's threads: the order of floating-point sums depends on it
    timeout: float | None = None  # seconds before the job is stopped; not part of the key

    @property
    def key(self) -> str:
        """A stable hash of everything that determines the job's results."""
        fields = dataclasses.asdict(self)
        fields.pop("config")  # its hash is in config_hash
        fields.pop("timeout")  # a limit on the time, not on the result
        text = json.dumps(fields, sort_keys=True)
        return f"{self.task}-{self.method}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


@dataclasses.dataclass(frozen=True)
class Suite:
    """A checked suite. ``text`` is the file's content, ``sha256`` its hash."""

    name: str
    description: str
    tasks: tuple[str, ...]
    methods: dict[str, tuple[str, dict]]  # label -> (method name, config)
    budgets: tuple[int, ...]
    seeds: tuple[int, ...]
    observations: tuple[int, ...]
    num_posterior_samples: int
    metrics: tuple[str, ...]
    sbc_datasets: int
    sbc_samples: int
    text: str
    sha256: str
    timeout: float | None = None  # per-job limit in seconds (the optional field ``timeout``)
    # label -> the tasks it runs on, where its table names them (a method configured for one
    # kind of data, such as a set embedding); a label not here runs on every task
    method_tasks: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    # task -> the observations it scores, where `task_observations` names it (a task with fewer
    # observations than the others, such as a high rung of the dimension ladder)
    task_observations: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    # label -> its seeds, where its table names them; a label not here runs the suite's
    method_seeds: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)

    def observations_of(self, task: str) -> tuple[int, ...]:
        """The observation numbers (1-based) that ``task`` scores in this suite."""
        return self.task_observations.get(task, self.observations)

    def jobs(self, threads: int = 1, timeout: float | None = None) -> list[Job]:
        """Every job of the grid, in a stable order, each to run on ``threads`` torch threads
        and to stop after ``timeout`` seconds (default: the suite's own, else none)."""
        whole(threads, "threads", 1)
        jobs = []
        for task in self.tasks:
            for label, (name, config) in self.methods.items():
                if task not in self.method_tasks.get(label, (task,)):
                    continue
                method = get_method(name, **config)
                amortized = is_amortized(method)
                observed = self.observations_of(task)
                groups = [observed] if amortized else [(k,) for k in observed]
                for budget in self.budgets:
                    for seed in self.method_seeds.get(label, self.seeds):
                        for observations in groups:
                            jobs.append(
                                Job(
                                    task,
                                    label,
                                    name,
                                    config,
                                    config_hash(name, method),
                                    amortized,
                                    budget,
                                    seed,
                                    observations,
                                    self.num_posterior_samples,
                                    self.metrics,
                                    self.sbc_datasets if amortized else 0,
                                    self.sbc_samples,
                                    threads,
                                    timeout if timeout is not None else self.timeout,
                                )  # fmt: skip
                            )
        return jobs


def _whole_numbers(path: Path, key: str, value: Any, minimum: int) -> tuple[int, ...]:
    """A non-empty list of distinct whole numbers >= ``minimum`` (a number listed twice would
    run its jobs twice)."""
    if not isinstance(value, list) or not value:
        raise SuiteError(f"{path}: field {key!r} must be a non-empty list")
    for item in value:
        if not is_whole(item, minimum):
            raise SuiteError(
                f"{path}: field {key!r} holds {item!r}; need whole numbers >= {minimum}"
            )
    _distinct(path, key, value)
    return tuple(value)


def _distinct(path: Path, key: str, value: list) -> None:
    """SuiteError naming the first item that ``value`` lists twice."""
    for i, item in enumerate(value):
        if item in value[:i]:
            raise SuiteError(f"{path}: field {key!r} lists {item!r} twice; list each once")


def _seeds(path: Path, value: Any, key: str = "seeds") -> tuple[int, ...]:
    """The seeds: distinct whole numbers in 0..MAX_SEED (`sbibench.checks.MAX_SEED` says why)."""
    seeds = _whole_numbers(path, key, value, 0)
    for seed in seeds:
        if not is_seed(seed):
            raise SuiteError(
                f"{path}: field {key!r} holds {seed!r}; need whole numbers in 0..2**63-1 "
                f"({MAX_SEED})"
            )
    return seeds


def _task_observations(path: Path, value: Any, tasks: list[str]) -> dict[str, tuple[int, ...]]:
    """task -> its observations, from the optional ``task_observations`` table."""
    if not isinstance(value, dict):
        raise SuiteError(f"{path}: task_observations must be a table of task = [observations]")
    strangers = sorted(set(value) - set(tasks))
    if strangers:
        raise SuiteError(
            f"{path}: task_observations names {', '.join(map(repr, strangers))}, not among the "
            f"suite's tasks ({', '.join(tasks)})"
        )
    return {
        name: _whole_numbers(path, f"task_observations.{name}", numbers, 1)
        for name, numbers in value.items()
    }


def _methods(path: Path, value: Any, tasks: list[str]) -> tuple[dict, dict, dict]:
    """(label -> (method name, config), label -> its ``tasks``, label -> its ``seeds``), the
    last two where the table names them."""
    if not isinstance(value, dict) or not value:
        raise SuiteError(f"{path}: [methods] must hold at least one method table")
    methods, method_tasks, method_seeds = {}, {}, {}
    for label, table in value.items():
        if not is_file_name(label):  # part of each record's file name
            raise SuiteError(
                f"{path}: method label {label!r} (in [methods]) cannot be part of a record's "
                f"file name; a label is {FILE_NAME_RULE}"
            )
        if not isinstance(table, dict):
            raise SuiteError(f"{path}: methods.{label} must be a table")
        config = dict(table)
        name = config.pop("method", label)
        if "tasks" in config:
            only = config.pop("tasks")
            if not isinstance(only, list) or not only or not set(only) <= set(tasks):
                raise SuiteError(
                    f"{path}: methods.{label}.tasks must be a non-empty list of the suite's "
                    f"tasks ({', '.join(tasks)}), got {only!r}"
                )
            method_tasks[label] = tuple(only)
        if "seeds" in config:
            method_seeds[label] = _seeds(path, config.pop("seeds"), f"methods.{label}.seeds")
        try:
            get_method(name, **config)
        except (ValueError, TypeError) as error:
            raise SuiteError(f"{path}: methods.{label}: {error}") from None
        methods[label] = (name, config)
    return methods, method_tasks, method_seeds


def _load(path: Path, text: str) -> Suite:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SuiteError(f"{path}: not valid TOML: {error}") from None
    unknown = sorted(set(raw) - set(KEYS) - set(OPTIONAL))
    if unknown:
        raise SuiteError(
            f"{path}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(KEYS)}, "
            f"and optionally {', '.join(OPTIONAL)}"
        )
    missing = [key for key in KEYS if key not in raw]
    if missing:
        raise SuiteError(f"{path}: missing field(s) {', '.join(missing)}")
    if not is_file_name(raw["name"]):  # the default run folder is runs/<name>
        raise SuiteError(
            f"{path}: field 'name' is {raw['name']!r}; a suite's name is {FILE_NAME_RULE}"
        )
    tasks = list_tasks() if raw["tasks"] == "all" else raw["tasks"]
    if not isinstance(tasks, list) or not tasks:
        raise SuiteError(f"{path}: field 'tasks' must be a list of task names or \"all\"")
    _distinct(path, "tasks", tasks)
    observations = _whole_numbers(path, "observations", raw["observations"], 1)
    task_observations = _task_observations(path, raw.get("task_observations", {}), tasks)
    for name in tasks:
        try:
            task = get_task(name)
        except ValueError as error:
            raise SuiteError(f"{path}: field 'tasks': {error}") from None
        if max(task_observations.get(name, observations)) > task.num_observations:
            raise SuiteError(f"{path}: task {name!r} has observations 1..{task.num_observations}")
    metrics, known = raw["metrics"], list_scores(calibration=False)
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise SuiteError(f"{path}: field 'metrics' must be a list of names from {', '.join(known)}")
    unknown = [m for m in metrics if m not in known]
    if unknown:
        calibration = set(unknown) & set(list_scores(calibration=True))
        hint = " (calibration scores run by [sbc], not listed here)" if calibration else ""
        raise SuiteError(
            f"{path}: field 'metrics': unknown score(s) {', '.join(map(repr, unknown))}{hint}; "
            f"known: {', '.join(known)}"
        )
    sbc = {**SBC_DEFAULTS, **raw.get("sbc", {})} if isinstance(raw.get("sbc", {}), dict) else None
    if sbc is None or set(sbc) != set(SBC_DEFAULTS):
        raise SuiteError(
            f"{path}: [sbc] may set only num_datasets and num_posterior_samples, got {raw['sbc']!r}"
        )
    samples = _whole_numbers(path, "num_posterior_samples", [raw["num_posterior_samples"]], 2)[0]
    datasets = _whole_numbers(path, "sbc.num_datasets", [sbc["num_datasets"]], 0)[0]
    sbc_samples = _whole_numbers(
        path, "sbc.num_posterior_samples", [sbc["num_posterior_samples"]], 1
    )[0]
    for task in map(get_task, tasks):  # scored against that many reference draws
        if samples > task.num_reference_samples:
            raise SuiteError(
                f"{path}: num_posterior_samples is {samples}, but task {task.name!r} stores "
                f"{task.num_reference_samples} reference samples per observation"
            )
    timeout = raw.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or not timeout > 0):  # fmt: skip
        raise SuiteError(
            f"{path}: field 'timeout' must be a number of seconds > 0, got {timeout!r}"
        )
    methods, method_tasks, method_seeds = _methods(path, raw["methods"], tasks)
    return Suite(
        name=raw["name"],
        description=str(raw.get("description", "")),
        tasks=tuple(tasks),
        methods=methods,
        budgets=_whole_numbers(path, "budgets", raw["budgets"], 1),
        seeds=_seeds(path, raw["seeds"]),
        observations=observations,
        num_posterior_samples=samples,
        metrics=tuple(metrics),
        sbc_datasets=datasets,
        sbc_samples=sbc_samples,
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        timeout=float(timeout) if timeout is not None else None,
        method_tasks=method_tasks,
        task_observations=task_observations,
        method_seeds=method_seeds,
    )


def load_suite(name_or_path: str | Path) -> Suite:
    """A shipped suite by name (``quick``, ``standard``, ``full``) or a suite file by path.

    Raises:
        SuiteError: unknown suite, or a malformed file (names the file and the field,
            including unknown tasks, methods and config keys).
    """
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        if str(name_or_path) not in list_suites():
            raise SuiteError(
                f"unknown suite {str(name_or_path)!r}; shipped: {', '.join(list_suites())}"
            )
        path = SUITES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise SuiteError(f"{path}: no such suite file")
    return _load(path, path.read_text())
