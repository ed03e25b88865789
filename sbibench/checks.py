"""Checks of user input that every room shares: is a value a whole number in range.

A bool is not a whole number here (``True`` is an ``int`` to Python, never a count to a user).

Example:
    >>> is_whole(3, minimum=1), is_whole(True), is_whole(2.0)
    (True, False, False)
    >>> whole(0, "threads", minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: threads must be a whole number >= 1, got 0
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_whole", "whole"]


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
