"""Every name -> ``"module:attribute"`` lookup in sbibench, the entry-point groups through which
other packages add to them, and the folder of shipped suites.

A registry is a plain dict from a name to ``"package.module:attribute"``, imported on first
use (so listing names imports nothing heavy). Another package adds tasks, methods or scores
under the entry-point groups of `GROUPS` in its own ``pyproject.toml``::

    [project.entry-points."sbibench.methods"]
    my_method = "my_package.my_method:MyMethod"

The standard library only: every other module may import this one.

Example:
    >>> load("math:pi", "constant")
    3.141592653589793
    >>> lookup({"pi": "math:pi"}, "tau", "constant")
    Traceback (most recent call last):
    ...
    ValueError: unknown constant 'tau'; known: pi
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

__all__ = [
    "GROUPS",
    "SUITES_DIR",
    "list_suites",
    "load",
    "lookup",
    "module_of",
    "with_entry_points",
]

# What other packages may add, and the entry-point group each is read from. A task entry point
# loads the path of a folder of task cards; a method entry point names a method's class; a
# score entry point names a `sbibench.scoring.Score`.
GROUPS = {"tasks": "sbibench.tasks", "methods": "sbibench.methods", "scores": "sbibench.scores"}

SUITES_DIR = Path(__file__).resolve().parent / "suites"


def load(path: str, what: str = "object") -> Any:
    """The attribute that ``"package.module:attribute"`` names, imported now.

    Arguments:
        path: ``"package.module:attribute"``.
        what: what it should be, for the error message (``"method"``, ``"score function"``).

    Raises:
        ValueError: ``path`` is not of that form, or the module or attribute does not exist;
            the message names ``path`` and the import error.
    """
    module, _, attribute = str(path).partition(":")
    if not module or not attribute:
        raise ValueError(f"expected 'package.module:attribute' for the {what}, got {path!r}")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot import {path!r} ({what}): {error}") from None


def lookup(table: dict[str, Any], name: str, what: str) -> Any:
    """``table[name]``: imported where it is a ``"module:attribute"`` string (`load`), as it
    is where it is the object itself (registered at run time); ValueError listing the known
    names when unknown."""
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(sorted(table))}")
    entry = table[name]
    return load(entry, what) if isinstance(entry, str) else entry


def module_of(entry: Any) -> str:
    """The module an entry of a registry lives in: of its ``"module:attribute"``, or of the
    object itself."""
    return entry.partition(":")[0] if isinstance(entry, str) else entry.__module__


def with_entry_points(builtin: dict[str, str], kind: str) -> dict[str, str]:
    """``builtin`` plus the entry points of ``GROUPS[kind]`` (a built-in name wins)."""
    table = dict(builtin)
    for entry in entry_points(group=GROUPS[kind]):
        table.setdefault(entry.name, entry.value)
    return table


def list_suites() -> list[str]:
    """Names of the suites that ship with sbibench (``sbibench/suites/<name>.toml``)."""
    return sorted(path.stem for path in SUITES_DIR.glob("*.toml"))
