"""The reference store: the files of ``reference_posteriors/<task>/``, written and read back with
their checksums. Building references, their noise floors and their verification live in
`sbibench.reference.build`.

A task's folder ``reference_posteriors/<task>/`` holds

- ``observations.csv``: columns ``observation, x_1..x_M``, one row per observation k = 1..K;
- ``true_parameters.csv``: columns ``observation`` and the parameter names;
- ``samples.npz``: arrays ``observation_<k>`` of shape (N, D), float64, exact posterior draws,
  N the card's ``num_reference_samples`` (10,000 unless it says);
- ``noise_floors.json``: for every observation and each size n in ``FLOOR_SIZES``, the scores
  of ``FLOOR_SCORES`` between the first n reference samples and n fresh exact draws (what a
  perfect method scores at that sample size), ``FLOOR_DRAWS`` times over independent draws:
  each score's values (``draws``), their mean (under the score's name) and sd
  (``<score>_sd``), under the options ``SCORE_OPTIONS`` it records;
- ``MANIFEST.json``: the card's sha256, versions, the seed, the sha256 of every file above, and
  the exact posterior mean and covariance of every observation.

Files are written byte-for-byte reproducibly (fixed zip timestamps, shortest round-trip
float text); reading one checks its sha256 against the manifest first.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from sbibench.paths import write_atomic

if TYPE_CHECKING:  # a task is read for its name, card and dimensions only
    from sbibench.task import Task

__all__ = [
    "FILES",
    "Reference",
    "ReferenceError",
    "file_contents",
    "load_reference",
    "read_floors",
    "read_manifest",
    "reference_dir",
    "sha256",
    "write_reference",
]


FILES = ("observations.csv", "true_parameters.csv", "samples.npz", "noise_floors.json")


class ReferenceError(ValueError):
    """A reference posterior folder is missing, corrupted or out of date; names the file."""


@dataclass(frozen=True)
class Reference:
    """A task's reference data, float64. K observations, M data dims, D parameters, N samples."""

    observations: Tensor  # (K, M)
    true_parameters: Tensor  # (K, D)
    samples: Tensor  # (K, N, D)
    means: Tensor  # (K, D) exact posterior means
    covariances: Tensor  # (K, D, D) exact posterior covariances
    manifest: dict
    floors: dict  # the content of noise_floors.json (empty while generating without floors)


def reference_dir(task: Task) -> Path:
    """``reference_posteriors/<task name>`` beside the ``tasks/`` folder holding its card."""
    return task.card_path.parent.parent / "reference_posteriors" / task.name


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _csv_bytes(first: str, names: tuple[str, ...], rows: Tensor) -> bytes:
    lines = [",".join((first, *names))]
    for k, row in enumerate(rows.tolist(), start=1):
        lines.append(",".join([str(k), *(repr(float(v)) for v in row)]))
    return ("\n".join(lines) + "\n").encode()


def _npz_bytes(samples: Tensor) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for k, array in enumerate(samples.numpy(), start=1):
            info = zipfile.ZipInfo(f"observation_{k}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def file_contents(task: Task, reference: Reference) -> dict[str, bytes]:
    data_names = tuple(f"x_{i + 1}" for i in range(task.dim_data))
    return {
        "observations.csv": _csv_bytes("observation", data_names, reference.observations),
        "true_parameters.csv": _csv_bytes(
            "observation", task.parameter_names, reference.true_parameters
        ),
        "samples.npz": _npz_bytes(reference.samples),
        "noise_floors.json": (json.dumps(reference.floors, indent=1) + "\n").encode(),
    }


def read_manifest(folder: Path) -> dict:
    path = folder / "MANIFEST.json"
    if not path.is_file():
        raise ReferenceError(f"{path}: missing; run `sbibench reference build`")
    try:
        manifest = json.loads(path.read_text())
        files, posterior = manifest["files"], manifest["posterior"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise ReferenceError(f"{path}: not a valid manifest: {error!r}") from None
    if set(files) != set(FILES) or not isinstance(posterior, list):
        raise ReferenceError(f"{path}: must list the files {FILES} and a posterior list")
    return manifest


def _read_csv(path: Path, names: tuple[str, ...], rows: int) -> Tensor:
    lines = path.read_text().splitlines()
    header = ",".join(("observation", *names))
    if not lines or lines[0] != header:
        raise ReferenceError(f"{path}: header must be {header!r}")
    if len(lines) - 1 != rows:
        raise ReferenceError(f"{path}: expected {rows} rows, found {len(lines) - 1}")
    try:
        values = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    except ValueError as error:
        raise ReferenceError(f"{path}: {error}") from None
    if values.shape[1] != len(names) + 1 or list(values[:, 0]) != list(range(1, rows + 1)):
        raise ReferenceError(
            f"{path}: rows must be observations 1..{rows} with {len(names)} values"
        )
    return torch.from_numpy(values[:, 1:])


@functools.lru_cache(maxsize=16)
def _load(folder: Path, names: tuple[str, ...], data_dim: int, rows: int) -> Reference:
    manifest = read_manifest(folder)
    for name, expected in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise ReferenceError(f"{path}: missing; run `sbibench reference build`")
        if sha256(path) != expected:
            raise ReferenceError(
                f"{path}: sha256 differs from MANIFEST.json: the file is corrupted or stale; "
                "run `sbibench reference verify`"
            )
    observations = _read_csv(
        folder / "observations.csv", tuple(f"x_{i + 1}" for i in range(data_dim)), rows
    )
    true_parameters = _read_csv(folder / "true_parameters.csv", names, rows)
    with np.load(folder / "samples.npz", allow_pickle=False) as archive:
        keys = [f"observation_{k}" for k in range(1, rows + 1)]
        if sorted(archive.files) != sorted(keys):
            raise ReferenceError(f"{folder / 'samples.npz'}: arrays must be {keys}")
        samples = torch.from_numpy(np.stack([archive[key] for key in keys]))
    if samples.dtype != torch.float64 or samples.shape[-1] != len(names):
        raise ReferenceError(f"{folder / 'samples.npz'}: arrays must be float64 (N, {len(names)})")
    posterior = manifest["posterior"]
    means = torch.tensor([entry["mean"] for entry in posterior], dtype=torch.float64)
    covariances = torch.tensor([entry["covariance"] for entry in posterior], dtype=torch.float64)
    floors = read_floors(folder / "noise_floors.json")
    return Reference(observations, true_parameters, samples, means, covariances, manifest, floors)


def read_floors(path: Path) -> dict:
    """A noise-floor table, its structure checked: every row names its observation and size
    and holds, for each score, a mean, an sd and the list of draws."""
    try:
        table = json.loads(path.read_text())
        rows = table["floors"]
        options = table["options"]
        for row in rows:
            int(row["observation"]), int(row["num_samples"])
            for name, values in row["draws"].items():
                float(row[name]), float(row[f"{name}_sd"]), [float(v) for v in values]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise ReferenceError(f"{path}: not a valid noise-floor table: {error!r}") from None
    if not isinstance(options, dict):
        raise ReferenceError(f"{path}: 'options' must be a table of score options")
    return table


def load_reference(task: Task, folder: Path | None = None) -> Reference:
    """Read a task's reference folder, checking every file against the manifest's sha256.

    Raises:
        ReferenceError: a file is missing, corrupted (checksum) or malformed, or the folder was
            built from another version of the task's card; names the file.
    """
    folder = Path(folder) if folder is not None else reference_dir(task)
    reference = _load(folder, task.parameter_names, task.dim_data, task.num_observations)
    if reference.manifest.get("card_sha256") != task.card_sha256:
        raise ReferenceError(
            f"{folder / 'MANIFEST.json'}: built from another version of {task.card_path} "
            "(its card_sha256 differs): the references do not belong to this card; run "
            f"`sbibench reference build --task {task.name}`"
        )
    return reference


def write_reference(folder: Path, contents: dict[str, bytes], manifest: dict) -> None:
    """Write a reference folder's files (from `file_contents`) and then its manifest, each
    atomically: an interrupted write leaves checksums that verification reports as wrong."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in contents.items():
        write_atomic(folder / name, content)
    write_atomic(folder / "MANIFEST.json", (json.dumps(manifest, indent=1) + "\n").encode())
    _load.cache_clear()
