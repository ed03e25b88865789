"""Reference posteriors: generate them from a task's card, write them, load and verify them.

A task's folder ``reference_posteriors/<task>/`` holds

- ``observations.csv``: columns ``observation, x_1..x_M``, one row per observation k = 1..K;
- ``true_parameters.csv``: columns ``observation`` and the parameter names;
- ``samples.npz``: arrays ``observation_<k>`` of shape (10000, D), float64, exact posterior draws;
- ``MANIFEST.json``: the card's sha256, versions, the seed, the sha256 of every file above, and
  the exact posterior mean and covariance of every observation.

Generation is a pure function of the card: one ``torch.Generator`` seeded with the card's
``seed`` draws the K true parameters from the prior, then simulates the K observations, then
draws the posterior samples of observation 1, 2, ..., K in turn. Files are written
byte-for-byte reproducibly (fixed zip timestamps, shortest round-trip float text).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

from sbibench.models.common import sample
from sbibench.task import Task

__all__ = [
    "NUM_SAMPLES",
    "Reference",
    "ReferenceError",
    "build_reference",
    "exact_moments",
    "generate_reference",
    "load_reference",
    "reference_dir",
    "verify_reference",
]

NUM_SAMPLES = 10_000
FILES = ("observations.csv", "true_parameters.csv", "samples.npz")


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


def reference_dir(task: Task) -> Path:
    """``reference_posteriors/<task name>`` beside the ``tasks/`` folder holding its card."""
    return task.card_path.parent.parent / "reference_posteriors" / task.name


def exact_moments(posterior: Distribution) -> tuple[Tensor, Tensor]:
    """Mean (*batch, D) and covariance (*batch, D, D) of an exact posterior."""
    covariance = getattr(posterior, "covariance_matrix", None)
    if covariance is None:  # independent dimensions (e.g. Independent(Gamma))
        covariance = torch.diag_embed(posterior.variance)
    return posterior.mean, covariance


def generate_reference(task: Task, num_samples: int = NUM_SAMPLES) -> Reference:
    """Draw a task's observations and exact posterior samples from its card's seed."""
    generator = torch.Generator().manual_seed(task.seed)
    theta = task.sample_prior(task.num_observations, generator)
    x = task.simulate(theta, generator)
    posterior = task.posterior(x)  # batch shape (K,)
    samples = torch.stack(
        [sample(task.posterior(x[k]), num_samples, generator) for k in range(len(x))]
    )
    means, covariances = exact_moments(posterior)
    return Reference(x, theta, samples, means, covariances, manifest={})


def _sha256(path: Path) -> str:
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


def _file_contents(task: Task, reference: Reference) -> dict[str, bytes]:
    data_names = tuple(f"x_{i + 1}" for i in range(task.dim_data))
    return {
        "observations.csv": _csv_bytes("observation", data_names, reference.observations),
        "true_parameters.csv": _csv_bytes(
            "observation", task.parameter_names, reference.true_parameters
        ),
        "samples.npz": _npz_bytes(reference.samples),
    }


def _write_atomic(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _manifest(task: Task, reference: Reference, contents: dict[str, bytes]) -> dict:
    from sbibench import __version__

    return {
        "task": task.name,
        "card_sha256": task.card_sha256,
        "sbibench_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "seed": task.seed,
        "num_observations": task.num_observations,
        "num_samples": reference.samples.shape[1],
        "generation": "one torch.Generator seeded with `seed` draws the true parameters, then "
        "the observations, then the posterior samples of observations 1..K in turn",
        "files": {name: hashlib.sha256(content).hexdigest() for name, content in contents.items()},
        "posterior": [
            {"observation": k, "mean": mean, "covariance": covariance}
            for k, (mean, covariance) in enumerate(
                zip(reference.means.tolist(), reference.covariances.tolist(), strict=True), 1
            )
        ],
    }


def build_reference(task: Task, folder: Path | None = None) -> Path:
    """Generate and write a task's reference folder (default `reference_dir`); returns it.

    Each file is written to a temporary name and renamed; the manifest goes last, so an
    interrupted build leaves checksums that `verify_reference` reports as wrong.
    """
    folder = Path(folder) if folder is not None else reference_dir(task)
    folder.mkdir(parents=True, exist_ok=True)
    reference = generate_reference(task)
    contents = _file_contents(task, reference)
    for name, content in contents.items():
        _write_atomic(folder / name, content)
    manifest = json.dumps(_manifest(task, reference, contents), indent=1) + "\n"
    _write_atomic(folder / "MANIFEST.json", manifest.encode())
    _load.cache_clear()
    return folder


def _read_manifest(folder: Path) -> dict:
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
    manifest = _read_manifest(folder)
    for name, expected in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise ReferenceError(f"{path}: missing; run `sbibench reference build`")
        if _sha256(path) != expected:
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
    return Reference(observations, true_parameters, samples, means, covariances, manifest)


def load_reference(task: Task, folder: Path | None = None) -> Reference:
    """Read a task's reference folder, checking every file against the manifest's sha256.

    Raises:
        ReferenceError: a file is missing, corrupted (checksum) or malformed; names the file.
    """
    folder = Path(folder) if folder is not None else reference_dir(task)
    return _load(folder, task.parameter_names, task.dim_data, task.num_observations)


def _differing_observations(path: Path, expected: bytes) -> str:
    """Say which observations of a file differ from the regenerated bytes, where readable."""
    try:
        if path.suffix == ".csv":
            found = path.read_text().splitlines()[1:]
            wanted = expected.decode().splitlines()[1:]
        else:
            with np.load(path) as have, np.load(io.BytesIO(expected)) as want:
                found = [have[key].tobytes() for key in want.files]
                wanted = [want[key].tobytes() for key in want.files]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError):
        return " (unreadable)"
    numbers = [k for k, (a, b) in enumerate(zip(found, wanted, strict=False), 1) if a != b]
    if len(found) != len(wanted):
        return f" ({len(found)} observations, expected {len(wanted)})"
    return f" (observations {', '.join(map(str, numbers))})" if numbers else ""


def verify_reference(task: Task, folder: Path | None = None) -> list[str]:
    """Regenerate a task's reference from its card and compare with the files on disk.

    Returns a list of problems, each naming the file (empty when everything matches):
    checksums, the card's hash, and every observation, parameter, sample and moment.
    """
    folder = Path(folder) if folder is not None else reference_dir(task)
    try:
        manifest = _read_manifest(folder)
    except ReferenceError as error:
        return [str(error)]
    problems = []
    for name in FILES:
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif _sha256(path) != manifest["files"][name]:
            problems.append(f"{path}: sha256 differs from MANIFEST.json (corrupted or edited)")
    if manifest.get("card_sha256") != task.card_sha256:
        problems.append(
            f"{folder / 'MANIFEST.json'}: built from another version of {task.card_path}"
        )
    expected = generate_reference(task)
    for name, content in _file_contents(task, expected).items():
        path = folder / name
        if path.is_file() and path.read_bytes() != content:
            which = _differing_observations(path, content)
            problems.append(f"{path}: differs from what the card regenerates{which}")
    stored = manifest["posterior"]
    for k, (mean, covariance) in enumerate(
        zip(expected.means, expected.covariances, strict=True), 1
    ):
        entry = stored[k - 1] if k <= len(stored) else {}
        same = "mean" in entry and torch.allclose(
            torch.tensor(entry["mean"], dtype=torch.float64), mean, rtol=1e-12, atol=0
        )
        same = same and torch.allclose(
            torch.tensor(entry["covariance"], dtype=torch.float64), covariance, rtol=1e-12, atol=0
        )
        if not same:
            problems.append(f"{folder / 'MANIFEST.json'}: exact moments of observation {k} differ")
    return problems
