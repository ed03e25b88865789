"""Run records: the record's schema (every column, typed) and the run folder's format, the one
owner of both.

A run folder (`RunFolder`) holds ``suite.toml`` (the suite it belongs to),
``records/<key>.json`` (one file per finished job: its records, one per observation) with
``records/<key>.sbc.npz`` beside it (SBC ranks, where calibrated), and ``results.csv``, the
tidy table of every record, rebuilt from the record files; ``broken/`` and ``stale/<time>/``
keep record files set aside, ``.running/`` the jobs' current phases, ``slurm/`` submitit's
logs, ``exports/<task>-<budget>-<seed>/`` the ledger and withheld calibration parameters of
each export to another framework (`sbibench.run.export`). Record files are written to a
temporary name, fsynced and renamed, so a killed run leaves each record complete or absent,
never half-written.

A record is a flat dict: the `IDENTITY` columns, every registered score's columns
(`sbibench.scoring`), then the `TRAILER` columns (timings and provenance). `new_record` makes
one; `read_job` checks each record it reads against the schema's types.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from sbibench import __version__
from sbibench.checks import is_whole
from sbibench.paths import write_atomic
from sbibench.scoring import registered, score_columns

__all__ = [
    "IDENTITY",
    "PROVENANCE",
    "DirtyPackageError",
    "TRAILER",
    "FolderState",
    "RecordError",
    "RunFolder",
    "StaleRecordsError",
    "completed_keys",
    "environment",
    "load_results",
    "package_changes",
    "new_record",
    "read_job",
    "read_ranks",
    "read_records",
    "rebuild_table",
    "record_columns",
    "scan_records",
    "set_aside_stale",
    "write_job",
]

# The columns every record has, with their types (a float column may be empty: NaN), in the
# order of results.csv: the run's identity first, every registered score's columns next
# (`sbibench.scoring`, registry order, floors beside their scores), then timings and
# provenance. Scores absent for a method (e.g. NLL without a density) are empty; a record of
# older code that lacks a column reads as empty there, and columns no score declares are kept,
# after these.
IDENTITY: dict[str, type] = {
    "suite": str, "task": str, "method": str, "method_name": str, "config_hash": str,
    "config": str, "budget": int, "seed": int, "observation": int,
    "status": str,  # "ok" or "failed"
    "error": str,  # the error's text where failed, else ""
    "num_simulations_used": int, "num_invalid_simulations": int,
    "num_posterior_samples": int,
    # the task's facts the report groups by, as they were when the job ran
    "task_family": str, "task_dim": int,
    "task_assumes": str,  # a misspecified task: the well-specified one it assumes, else ""
    "observation_size": int,  # observations of i.i.d. sets of stated sizes: this one's n
}  # fmt: skip
TRAILER: dict[str, type] = {
    # worker seconds per phase (`sbibench.run.worker.execute` says which are per fit)
    "time_simulate": float, "time_train": float, "time_propose": float, "time_sample": float,
    "time_score": float, "time_calibrate": float,
    # what must equal today's for a record to be reused (`PROVENANCE`)
    "sbibench_version": str, "code_digest": str, "task_digest": str,
    # where and how it ran (`environment`), and the CPU of the worker that ran it
    "torch_version": str, "numpy_version": str, "scipy_version": str, "python_version": str,
    "git_revision": str, "project_revision": str,
    "machine": str, "cores": int, "threads": int, "timestamp": str, "cpu": str,
    "key": str,
}  # fmt: skip
STATUSES = ("ok", "failed")

# Fields every record has, whatever its status.
REQUIRED = ("key", "task", "method", "budget", "seed", "observation", "status")
# What a record must share with today's code and data to be reused (`sbibench.run.provenance`).
PROVENANCE = ("sbibench_version", "code_digest", "task_digest")


class RunFolder:
    """Where each file of a run folder lives: ``path`` and, below it, ``records``, ``suite``
    (suite.toml), ``table`` (results.csv) and ``parquet`` (its copy), ``broken``, ``stale``, ``running`` (.running),
    ``lock`` (.lock, held by the run using the folder), ``slurm`` and ``exports`` (what
    `sbibench simulate` withholds, `sbibench.run.export`); `record` and `ranks` name a job's
    files, `export` an export's folder.

    Example:
        >>> RunFolder("runs/quick").ranks("ab12")
        PosixPath('runs/quick/records/ab12.sbc.npz')
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records = self.path / "records"
        self.suite = self.path / "suite.toml"
        self.table = self.path / "results.csv"
        self.parquet = self.path / "results.parquet"
        self.broken, self.stale = self.path / "broken", self.path / "stale"
        self.running, self.slurm = self.path / ".running", self.path / "slurm"
        self.lock = self.path / ".lock"
        self.exports = self.path / "exports"

    def export(self, task: str, budget: int, seed: int) -> Path:
        """Where `sbibench simulate` keeps what it withholds from an export, and its ledger."""
        return self.exports / f"{task}-{budget}-{seed}"

    def record(self, key: str) -> Path:
        return self.records / f"{key}.json"

    def ranks(self, key: str) -> Path:
        return self.records / f"{key}.sbc.npz"


def new_record(job: dict[str, Any], observation: int, error: str = "", **fields: Any) -> dict:
    """One record: ``job``'s shared fields (identity, config, threads, key), the observation,
    ``status`` "failed" with ``error`` where an error is given, else "ok", and ``fields``
    (scores, counts, timings) in the order given."""
    if not is_whole(observation):
        raise TypeError(f"observation must be a whole number, got {observation!r}")
    status = "failed" if error else "ok"
    return {**job, "observation": observation, "status": status, "error": error, **fields}


def _check_types(record: dict, where: str) -> None:
    """RecordError naming ``where`` and the field unless every schema column present has its
    type (an int may stand for a float; a float column may hold None or NaN)."""
    for name, kind in (*IDENTITY.items(), *TRAILER.items()):
        value = record.get(name)
        if value is None:
            continue
        ok = (
            isinstance(value, int | float) and not isinstance(value, bool)
            if kind is float
            else isinstance(value, kind) and not isinstance(value, bool)
        )
        if kind is int and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            raise RecordError(f"{where}: field {name!r} must be {kind.__name__}, got {value!r}")
    if record["status"] not in STATUSES:
        raise RecordError(f"{where}: status must be one of {STATUSES}, got {record['status']!r}")


def record_columns() -> list[str]:
    """The columns of results.csv, in order, for the scores registered now.

    Raises:
        ValueError: a registered score writes a column that every record has.
    """
    fixed = {*IDENTITY, *TRAILER}
    for metric in registered():
        for name in (*metric.column_names, *metric.arrays):
            if name in fixed:
                raise ValueError(f"score {metric.name!r}: column {name!r} is every record's")
    return [*IDENTITY, *score_columns(), *TRAILER]


def __getattr__(name: str) -> Any:
    if name == "COLUMNS":  # `record_columns()`, derived when asked: it follows registrations
        return record_columns()
    raise AttributeError(f"module 'sbibench.records' has no attribute {name!r}")


class RecordError(ValueError):
    """A run folder is inconsistent: another suite's records, or an unreadable record."""


class StaleRecordsError(RecordError):
    """Records made by other code or data than today's; the message names them."""


class DirtyPackageError(RecordError):
    """A run from a checkout whose package files have uncommitted changes (`package_changes`):
    its records could not be traced to a commit; the message names the files."""


@dataclasses.dataclass
class FolderState:
    """The jobs of a grid as found on disk (`scan_records`).

    Attributes:
        done: keys whose records are whole, ok and made by today's code and data: reused.
        failed: keys whose records say a run failed: run again.
        stale: key -> why its records are not today's (version, code or task data differ).
        broken: record files that could not be read, moved to ``<folder>/broken/``: run again.
    """

    done: set[str]
    failed: set[str]
    stale: dict[str, str]
    broken: list[Path]


def read_job(path: Path) -> list[dict]:
    """The records in one record file; RecordError naming the file and what is wrong."""
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RecordError(f"{path}: unreadable record file ({error})") from None
    records = content.get("records") if isinstance(content, dict) else None
    if not isinstance(records, list) or not records:
        raise RecordError(f"{path}: no 'records' list")
    for i, record in enumerate(records):
        missing = [f for f in REQUIRED if not isinstance(record, dict) or f not in record]
        if missing:
            raise RecordError(f"{path}: record {i} lacks field(s) {', '.join(missing)}")
        _check_types(record, f"{path}: record {i}")
    return records


def _move_aside(folder: Path, key: str, into: Path) -> Path:
    """Move a job's record file (and SBC ranks) from ``folder/records`` into ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    run = RunFolder(folder)
    for path in (run.record(key), run.ranks(key)):
        if path.exists():
            os.replace(path, into / path.name)
    return into / run.record(key).name


def scan_records(folder: Path, expected: dict[str, dict]) -> FolderState:
    """Sort the record files of the jobs in ``expected`` (key -> today's `PROVENANCE` values).

    Unreadable files are moved to ``folder/broken/`` (nothing is deleted) and count as not
    run; files of keys not in ``expected`` are left alone.
    """
    folder = Path(folder)
    state = FolderState(set(), set(), {}, [])
    for key in sorted(completed_keys(folder) & set(expected)):
        try:
            records = read_job(RunFolder(folder).record(key))
        except RecordError:
            state.broken.append(_move_aside(folder, key, RunFolder(folder).broken))
            continue
        differing = [
            f"{field} {records[0].get(field)!r}, today {expected[key][field]!r}"
            for field in PROVENANCE
            if any(record.get(field) != expected[key][field] for record in records)
        ]
        if differing:
            state.stale[key] = "; ".join(differing)
        elif any(record["status"] != "ok" for record in records):
            state.failed.add(key)
        else:
            state.done.add(key)
    return state


def set_aside_stale(folder: Path, keys: list[str]) -> Path:
    """Move stale records to ``folder/stale/<time>/`` (kept, out of the table); returns it."""
    into = RunFolder(folder).stale / time.strftime("%Y%m%dT%H%M%S")
    for key in keys:
        _move_aside(Path(folder), key, into)
    return into


def write_job(folder: Path, key: str, records: list[dict], ranks: dict | None = None) -> None:
    """Write one job's records (and SBC ranks) into ``folder/records``, atomically.

    The ranks go first and the JSON last: a job counts as complete once its JSON exists.
    """
    run = RunFolder(folder)
    run.records.mkdir(parents=True, exist_ok=True)
    if ranks:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, **{name: np.asarray(value) for name, value in ranks.items()})
        write_atomic(run.ranks(key), buffer.getvalue())
    text = json.dumps({"key": key, "records": records}, indent=1, default=_plain) + "\n"
    write_atomic(run.record(key), text.encode())


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def read_ranks(folder: Path, key: str) -> dict[str, np.ndarray] | None:
    """The SBC arrays kept beside job ``key``'s records; None where it kept none."""
    path = RunFolder(folder).ranks(key)
    if not path.is_file():
        return None
    with np.load(path) as archive:
        return dict(archive)


def completed_keys(folder: Path) -> set[str]:
    """Keys of the jobs whose records are on disk."""
    directory = RunFolder(folder).records
    if not directory.is_dir():
        return set()
    return {path.stem for path in directory.glob("*.json") if not path.name.startswith(".")}


def read_records(folder: Path) -> list[dict]:
    """Every record in a run folder, in a stable order (by job key, then observation).

    Raises:
        RecordError: a record file cannot be read or lacks a required field; the message
            names the file and the field.
    """
    records = []
    for key in sorted(completed_keys(folder)):
        records.extend(read_job(RunFolder(folder).record(key)))
    return records


def rebuild_table(folder: Path) -> Path:
    """Rebuild ``folder/results.csv`` from the record files, and its copy ``results.parquet``
    where pyarrow is installed (where it is not, an earlier copy is removed: it would be
    stale); returns the csv's path."""
    import pandas as pd

    table = _ordered(pd.DataFrame(read_records(folder)))
    files = RunFolder(folder)
    write_atomic(files.table, table.to_csv(index=False).encode())
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        files.parquet.unlink(missing_ok=True)
    else:
        write_atomic(files.parquet, table.to_parquet(index=False))
    return files.table


# What a record stands for in a folder: two records of one (task, method label, budget, seed,
# observation) would be counted twice by the report and paired twice by the check.
UNIQUE = ("task", "method", "budget", "seed", "observation")


def load_results(path: str | Path) -> Any:
    """A run folder (or a results.csv) as a pandas DataFrame, one row per record.

    Raises:
        RecordError: a record file cannot be read, or two records share their task, method,
            budget, seed and observation (a run resumed under another job key, such as another
            ``--threads``); the message names the folder and the duplicates.
    """
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        if not RunFolder(path).records.is_dir():
            raise RecordError(f"{path}: not a run folder (no records/)")
        table = _ordered(pd.DataFrame(read_records(path)))
    else:
        table = pd.read_csv(path)
    _refuse_duplicates(path, table)
    return table


def _refuse_duplicates(path: Path, table: Any) -> None:
    """RecordError naming the records of ``table`` that share their `UNIQUE` columns."""
    if not set(UNIQUE) <= set(table.columns):
        return  # not a results table; its reader says so
    twice = table[table.duplicated(list(UNIQUE), keep=False)]
    if twice.empty:
        return
    groups = list(twice.groupby(list(UNIQUE), sort=True))
    shown = "; ".join(
        ", ".join(f"{name} {value}" for name, value in zip(UNIQUE, values, strict=True))
        + (f" (keys {', '.join(map(str, rows['key']))})" if "key" in rows else "")
        for values, rows in groups[:3]
    )
    more = f"; and {len(groups) - 3} more" if len(groups) > 3 else ""
    raise RecordError(
        f"{path}: {len(groups)} record(s) appear more than once: {shown}{more}; keep one job's "
        "records of each (move the others out of records/)"
    )


def _ordered(table: Any) -> Any:
    """The table's columns in schema order (`record_columns`), any others after them."""
    columns = record_columns()
    return table.reindex(columns=columns + [c for c in table.columns if c not in columns])


def _git(folder: Path, *args: str) -> str:
    """``git args`` run in ``folder``; its output, or "" when git or the repository is missing."""
    try:
        result = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, cwd=folder
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _revision(folder: Path) -> str:
    """The short commit of the repository at ``folder``, "-dirty" if tracked files changed."""
    revision = _git(folder, "rev-parse", "--short", "HEAD")
    if revision and _git(folder, "status", "--porcelain", "--untracked-files=no"):
        revision += "-dirty"
    return revision


def _checkout() -> Path | None:
    """The git work tree sbibench runs from (the package folder at its top, beside sbibench's
    pyproject.toml); None for an installed copy, even one inside another repository."""
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "sbibench"' in pyproject.read_text():
        top = _git(root, "rev-parse", "--show-toplevel")
        if top and Path(top).resolve() == root:
            return root
    return None


def package_changes() -> list[str]:
    """The paths (relative to the checkout) of the sbibench package's files that differ from
    its commit: changed, added, removed, or new and not ignored; [] for an installed copy.
    Only the package counts: results, docs and tests written beside it do not change the
    numbers it computes."""
    root = _checkout()
    if root is None:
        return []
    status = _git(root, "status", "--porcelain", "--untracked-files=all", "--", "sbibench")
    return [line[2:].strip() for line in status.splitlines()]  # "XY path", X may be cut


def sbibench_revision() -> str:
    """sbibench's own commit: from its source checkout when it runs from one, with "-dirty"
    where the package's files differ from it (`package_changes`), else the commit its wheel
    was built from (``_data/REVISION``, written at build time); "" when neither is known. An
    installed copy inside someone else's repository never records their commit."""
    root = _checkout()
    if root is not None:
        revision = _git(root, "rev-parse", "--short", "HEAD")
        return revision + "-dirty" if revision and package_changes() else revision
    built = Path(__file__).resolve().parent / "_data" / "REVISION"
    return built.read_text().strip() if built.is_file() else ""


def environment() -> dict[str, Any]:
    """Provenance written into every record: versions, sbibench's git revision (from its source
    checkout only), the revision of the project the run was started in, machine, time."""
    import scipy
    import torch  # lazy: reading records (the report, check) needs no torch

    return {
        "sbibench_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "python_version": platform.python_version(),
        "git_revision": sbibench_revision(),
        "project_revision": _revision(Path.cwd()),  # the repository the run was started in
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
