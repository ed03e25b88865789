"""Where sbibench finds its data: task cards and reference posteriors."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir"]

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
