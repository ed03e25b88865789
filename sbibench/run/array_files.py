"""Arrays in files, both ways: reproducible ``.npz`` and parquet for what sbibench hands out,
and a reader of what other frameworks hand back (``.npz``, ``.npy``, ``.csv``, parquet).

Written files are byte-for-byte reproducible: npz members are stored uncompressed with fixed
zip timestamps, parquet is written by pyarrow without pandas' metadata. Parquet is written and
read only where pyarrow is installed; without it, `parquet_bytes` returns None.

A file read back holds one array of values, float64, of shape (N, D) or, for several
observations (or calibration datasets) in one file, (G, N, D) with the group axis first:

- ``.npy``: the array itself.
- ``.npz``: the array under ``key`` (``samples``, ``theta``), or its only array; scalars
  ``task``, ``budget`` and ``seed`` and a (G,) array named ``group`` (``observations``,
  ``datasets``) may sit beside it, and are checked where present.
- ``.csv`` and parquet: one column per name of ``names`` (the task's parameter names), one row
  per sample; a column named ``group`` (``observation``, ``dataset``) splits the rows into
  groups, each the same number of rows, in the order of the group numbers.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "samples.npz"
    >>> _ = path.write_bytes(npz_bytes({"samples": np.zeros((2, 5, 3)), "seed": np.array(0)}))
    >>> found = read_values(path, "samples", ("a", "b", "c"), "observation")
    >>> found.values.shape, found.meta
    ((2, 5, 3), {'seed': 0})
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMATS", "Found", "npz_bytes", "parquet_bytes", "read_values"]

FORMATS = (".npz", ".npy", ".csv", ".parquet")
META = ("task", "budget", "seed")  # scalars an npz may carry, checked against the export


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes of an ``.npz`` holding ``arrays``, the same for the same arrays (members
    stored, dated 1980-01-01, in the order given)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def parquet_bytes(columns: dict[str, np.ndarray]) -> bytes | None:
    """The bytes of a parquet file of ``columns`` (each (N,)), or None without pyarrow."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    table = pa.table({name: pa.array(values) for name, values in columns.items()})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@dataclass
class Found:
    """What `read_values` found: ``values`` (N, D) or (G, N, D) float64, ``groups`` (G,) the
    group numbers where the file names them (else None), ``meta`` the scalars it carries."""

    values: np.ndarray
    groups: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def read_values(path: Path, key: str, names: tuple[str, ...], group: str) -> Found:
    """Read the values of ``path`` (see the module's docstring); ValueError naming the file
    and what is wrong with it: missing, truncated or unreadable, of another format, without
    the array or columns sought."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unknown format {suffix or '(none)'}; use {', '.join(FORMATS)}")
    try:
        if suffix == ".npy":
            found = Found(np.load(path, allow_pickle=False))
        elif suffix == ".npz":
            found = _npz(path, key, group)
        else:
            found = _table(path, suffix, names, group)
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: unreadable ({error}); is the file truncated?") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise ValueError(f"{path}: unreadable ({error}); is the file truncated?") from None
    if not np.issubdtype(found.values.dtype, np.number) or found.values.dtype == np.complex128:
        raise ValueError(f"{path}: values must be real numbers, found dtype {found.values.dtype}")
    found.values = found.values.astype(np.float64)
    return found


def _npz(path: Path, key: str, group: str) -> Found:
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.files)
        arrays = [name for name in names if name not in (*META, f"{group}s")]
        if key in names:
            chosen = key
        elif len(arrays) == 1:
            chosen = arrays[0]
        else:
            raise ValueError(
                f"{path}: no array named {key!r}, and {len(arrays)} others "
                f"({', '.join(arrays) or 'none'}); name the array {key!r}"
            )
        values = archive[chosen]
        groups = archive[f"{group}s"] if f"{group}s" in names else None
        meta = {name: archive[name].item() for name in META if name in names}
    return Found(values, groups, meta)


def _table(path: Path, suffix: str, names: tuple[str, ...], group: str) -> Found:
    import pandas as pd

    if suffix == ".csv":
        content = path.read_bytes()
        if content and not content.endswith(b"\n"):
            raise ValueError(f"{path}: the last line ends without a newline: truncated?")
        frame = pd.read_csv(io.BytesIO(content))
    else:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ValueError(
                f"{path}: reading parquet needs pyarrow (pip install pyarrow)"
            ) from None
        try:
            frame = pq.read_table(path).to_pandas()
        except Exception as error:  # pyarrow's own error types: ArrowInvalid and others
            raise ValueError(f"{path}: unreadable parquet ({error}); is it truncated?") from None
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: lacks column(s) {', '.join(missing)}; expected one column per parameter "
            f"({', '.join(names)}) and optionally {group!r}, found {', '.join(map(str, frame.columns))}"
        )
    values = frame[list(names)].to_numpy(dtype=np.float64)
    if group not in frame.columns:
        return Found(values)
    labels = frame[group].to_numpy()
    groups = np.array(sorted(set(labels.tolist())))
    sizes = {int(g): int((labels == g).sum()) for g in groups}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{group} {g}: {n}" for g, n in sizes.items())
        raise ValueError(f"{path}: every {group} needs the same number of rows, found {shown}")
    return Found(np.stack([values[labels == g] for g in groups]), groups)
