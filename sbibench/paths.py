"""Where sbibench finds its data (task cards, reference posteriors), and how it writes a file
so that a killed process leaves it whole or absent (`write_atomic`)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "write_atomic"]

_PACKAGE = Path(__file__).resolve().parent


def data_dir() -> Path:
    """The folder holding ``tasks/`` and ``reference_posteriors/``.

    In order: the ``SBIBENCH_DATA_DIR`` environment variable; the copy packaged into the wheel
    (``sbibench/_data``); the repository root, for a source checkout or an editable install
    (where a packaged copy would be stale).
    """
    override = os.environ.get("SBIBENCH_DATA_DIR")
    if override:
        path = Path(override)
        if not (path / "tasks").is_dir():
            raise FileNotFoundError(f"SBIBENCH_DATA_DIR={override} has no tasks/ folder")
        return path
    for candidate in (_PACKAGE / "_data", _PACKAGE.parent):
        if (candidate / "tasks").is_dir():
            return candidate
    raise FileNotFoundError(
        f"no tasks/ folder in {_PACKAGE / '_data'} or {_PACKAGE.parent}; "
        "reinstall sbibench or set SBIBENCH_DATA_DIR"
    )


def write_atomic(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` through a temporary file beside it, fsync and rename: a
    reader sees the old file or the new one, never half of it."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
