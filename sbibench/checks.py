"""Checks of user input that every room shares: is a value a whole number in range, a seed,
a name that can be part of a file name.

A bool is not a whole number here (``True`` is an ``int`` to Python, never a count to a user).

Example:
    >>> is_whole(3, minimum=1), is_whole(True), is_whole(2.0)
    (True, False, False)
    >>> whole(0, "threads", minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: threads must be a whole number >= 1, got 0
    >>> is_seed(2**63 - 1), is_seed(2**63), is_file_name("npe_nsf"), is_file_name("npe/maf")
    (True, False, True, False)
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["FILE_NAME_RULE", "MAX_SEED", "is_file_name", "is_seed", "is_whole", "whole"]

# The largest seed. Seeds reach torch.Generator.manual_seed and torch.manual_seed (which take
# 0..2**64-1), plus a round number in sequential methods (seed + r), and results.csv, which
# pandas reads back as int64 (a larger value turns the column into uint64, and the check's
# pairing of baseline and candidate by seed with it): 0..2**63-1 works in all of them.
MAX_SEED = 2**63 - 1

# A name that becomes part of a file or folder name: a method label (records/<task>-<label>-
# <hash>.json) and a suite's name (the default run folder runs/<name>). No separators, no
# leading dot (hidden files, "." and ".."), and short enough that the record file's name
# stays far below the 255 bytes file systems allow.
MAX_NAME_LENGTH = 64
FILE_NAME_RULE = (
    f"1 to {MAX_NAME_LENGTH} of the letters a-z, A-Z, digits, '_', '-' and '.', "
    "not starting with '.'"
)
_FILE_NAME = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9_.-]{{0,{MAX_NAME_LENGTH - 1}}}")


def is_whole(value: Any, minimum: int | None = None) -> bool:
    """Whether ``value`` is an ``int`` (not a bool) and, where given, at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return minimum is None or value >= minimum


def whole(value: Any, name: str, minimum: int) -> int:
    """``value`` if it is a whole number >= ``minimum``; ValueError naming ``name`` otherwise."""
    if not is_whole(value, minimum):
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def is_seed(value: Any) -> bool:
    """Whether ``value`` is a whole number in 0..`MAX_SEED`."""
    return is_whole(value, 0) and value <= MAX_SEED


def is_file_name(value: Any) -> bool:
    """Whether ``value`` is a string that may be part of a file name (`FILE_NAME_RULE`)."""
    return isinstance(value, str) and _FILE_NAME.fullmatch(value) is not None
