"""Run records: the schema, atomic writes, and a run folder read back as a table.

A run folder holds ``suite.toml`` (the suite it belongs to), ``records/<key>.json`` (one file
per finished job: its records, one per observation) with ``records/<key>.sbc.npz`` beside it
(SBC ranks, where calibrated), and ``results.csv``, the tidy table of every record, rebuilt from
the record files. Record files are written to a temporary name, fsynced and renamed, so a
killed run leaves each record complete or absent, never half-written.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "COLUMNS",
    "RecordError",
    "completed_keys",
    "environment",
    "load_results",
    "read_records",
    "rebuild_table",
    "write_job",
    "write_atomic",
]

# The columns of results.csv, in order. Metrics absent for a method (e.g. NLL without a
# density) are empty.
COLUMNS = [
    "suite", "task", "method", "method_name", "config_hash", "config", "budget", "seed",
    "observation", "status", "error",
    "num_simulations_used", "num_invalid_simulations", "num_posterior_samples",
    "c2st", "c2st_floor", "c2st_null_sd", "mmd", "mmd_floor", "wasserstein", "wasserstein_floor",
    "wasserstein_method", "mean_error", "covariance_error", "nll_true_parameters",
    "sbc_datasets", "sbc_chi2_p_min", "sbc_ecdf_p_min", "coverage_method", "coverage_max_deviation",
    "time_simulate", "time_train", "time_sample", "time_score", "time_calibrate",
    "sbibench_version", "torch_version", "python_version", "git_revision", "machine", "cores",
    "threads", "timestamp", "key",
]  # fmt: skip


class RecordError(ValueError):
    """A run folder is inconsistent: another suite's records, or an unreadable record."""


def write_atomic(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` through a temporary file, fsync and rename."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_job(folder: Path, key: str, records: list[dict], ranks: dict | None = None) -> None:
    """Write one job's records (and SBC ranks) into ``folder/records``, atomically.

    The ranks go first and the JSON last: a job counts as complete once its JSON exists.
    """
    directory = Path(folder) / "records"
    directory.mkdir(parents=True, exist_ok=True)
    if ranks:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, **{name: np.asarray(value) for name, value in ranks.items()})
        write_atomic(directory / f"{key}.sbc.npz", buffer.getvalue())
    text = json.dumps({"key": key, "records": records}, indent=1, default=_plain) + "\n"
    write_atomic(directory / f"{key}.json", text.encode())


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def completed_keys(folder: Path) -> set[str]:
    """Keys of the jobs whose records are on disk."""
    directory = Path(folder) / "records"
    if not directory.is_dir():
        return set()
    return {path.stem for path in directory.glob("*.json") if not path.name.startswith(".")}


def read_records(folder: Path) -> list[dict]:
    """Every record in a run folder, in a stable order (by job key, then observation).

    Raises:
        RecordError: a record file cannot be read; the message names it.
    """
    records = []
    for key in sorted(completed_keys(folder)):
        path = Path(folder) / "records" / f"{key}.json"
        try:
            content = json.loads(path.read_text())
            records.extend(content["records"])
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as error:
            raise RecordError(f"{path}: unreadable record file: {error!r}") from None
    return records


def rebuild_table(folder: Path) -> Path:
    """Rebuild ``folder/results.csv`` from the record files; returns its path."""
    import pandas as pd

    table = pd.DataFrame(read_records(folder))
    table = table.reindex(columns=COLUMNS + [c for c in table.columns if c not in COLUMNS])
    path = Path(folder) / "results.csv"
    write_atomic(path, table.to_csv(index=False).encode())
    return path


def load_results(path: str | Path) -> Any:
    """A run folder (or a results.csv) as a pandas DataFrame, one row per record."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        if not (path / "records").is_dir():
            raise RecordError(f"{path}: not a run folder (no records/)")
        table = pd.DataFrame(read_records(path))
        return table.reindex(columns=COLUMNS + [c for c in table.columns if c not in COLUMNS])
    return pd.read_csv(path)


def _git_revision() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def environment() -> dict[str, Any]:
    """Provenance written into every record: versions, git revision, machine, time."""
    import torch

    from sbibench import __version__

    return {
        "sbibench_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "python_version": platform.python_version(),
        "git_revision": _git_revision(),
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
