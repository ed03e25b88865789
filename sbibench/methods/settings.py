"""Rules for a method's setting values, declared with the fields that own them.

A settings dataclass declares a field's rule beside its default, ``learning_rate: float =
setting(5e-4, positive)``, and `check_settings` runs every rule when the method is configured
(`get_method`, and so when a suite loads), so a bad value stops a run before any work instead
of failing, or silently scoring, at run time. A field without a rule is checked against its
annotation: ``int`` a whole number >= 1, ``float`` finite, ``bool`` true or false, ``dict`` a
table; ``None`` passes wherever the annotation allows it.

A rule is a function ``rule(name, value, config)`` that raises a ValueError naming the setting;
it sees the whole ``config`` for rules between settings (`above`, `at_least`).

Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class Settings:
    ...     rate: float = setting(0.1, positive)
    ...     steps: int = 10
    >>> check_settings(Settings(rate=-1.0))
    Traceback (most recent call last):
    ...
    ValueError: rate must be > 0, got -1.0
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from sbibench import checks
from sbibench.mcmc import SAMPLERS
from sbibench.nn import ESTIMATORS

__all__ = [
    "Rule",
    "above",
    "at_least",
    "check_settings",
    "estimator_name",
    "fraction",
    "non_negative",
    "one_of",
    "positive",
    "sampler_name",
    "setting",
    "whole",
    "widths",
]

Rule = Callable[[str, Any, Any], None]  # name, value, the whole config; raises ValueError


def setting(default: Any, rule: Rule) -> Any:
    """A dataclass field with ``default`` (a list or dict is copied per instance) whose value
    `check_settings` checks with ``rule``."""
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata={"rule": rule})  # fmt: skip
    return dataclasses.field(default=default, metadata={"rule": rule})


def _whole(name: str, value: Any, low: int) -> None:
    checks.whole(value, name, low)


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def whole(low: int) -> Rule:
    """A whole number >= ``low``."""
    return lambda name, value, config: _whole(name, value, low)


def fraction(name: str, value: Any, config: Any) -> None:
    """A number in (0, 1)."""
    if not 0 < _real(name, value) < 1:
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}")


def positive(name: str, value: Any, config: Any) -> None:
    """A finite number > 0."""
    if not _real(name, value) > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def non_negative(name: str, value: Any, config: Any) -> None:
    """A finite number >= 0."""
    if not _real(name, value) >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def one_of(*choices: Any) -> Rule:
    """One of ``choices`` (None among them allows None)."""
    allowed = f"one of {choices}" if None not in choices else " or ".join(map(repr, choices))

    def rule(name: str, value: Any, config: Any) -> None:
        if value not in choices:
            raise ValueError(f"{name} must be {allowed}, got {value!r}")

    return rule


def widths(name: str, value: Any, config: Any) -> None:
    """A non-empty list of layer widths, each a whole number >= 1."""
    if not isinstance(value, tuple | list) or not value:
        raise ValueError(f"{name} must be a non-empty list of widths, got {value!r}")
    for width in value:
        _whole(f"each of {name}", width, 1)


def estimator_name(name: str, value: Any, config: Any) -> None:
    """The name of one of sbibench's density estimators (`sbibench.nn.ESTIMATORS`)."""
    if value not in ESTIMATORS:
        raise ValueError(f"{name} must be one of {sorted(ESTIMATORS)}, got {value!r}")


def sampler_name(name: str, value: Any, config: Any) -> None:
    """The name of one of sbibench's MCMC samplers (`sbibench.mcmc.SAMPLERS`)."""
    if value not in SAMPLERS:
        raise ValueError(f"{name} must be one of {SAMPLERS}, got {value!r}")


def above(other: str, rule: Rule = positive) -> Rule:
    """``rule``, and greater than the setting ``other``: ``0 < other < name`` by default."""

    def check(name: str, value: Any, config: Any) -> None:
        rule(name, value, config)
        if not getattr(config, other) < value:
            raise ValueError(f"need 0 < {other} < {name}, got {getattr(config, other)}, {value}")

    return check


def at_least(other: str) -> Rule:
    """A whole number >= 1 and >= the setting ``other``."""

    def check(name: str, value: Any, config: Any) -> None:
        _whole(name, value, 1)
        if value < getattr(config, other):
            raise ValueError(f"{name} ({value}) must be >= {other} ({getattr(config, other)})")

    return check


def _by_annotation(name: str, value: Any, annotation: str) -> None:
    if annotation.startswith("bool"):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
    elif annotation.startswith("int"):
        _whole(name, value, 1)
    elif annotation.startswith("float"):
        _real(name, value)
    elif annotation.startswith("dict") and not isinstance(value, dict):
        raise ValueError(f"{name} must be a table, got {value!r}")


def check_settings(config: Any) -> None:
    """Raise ValueError naming the first setting of ``config`` (a configured dataclass) whose
    value breaks its rule, or, for a field without one, its annotated type."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"config must be a dataclass instance, got {type(config).__name__}")
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        annotation = (
            field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
        )
        if value is None and "None" in str(annotation):
            continue
        rule = field.metadata.get("rule")
        if rule is not None:
            rule(field.name, value, config)
        else:
            _by_annotation(field.name, value, str(annotation))
