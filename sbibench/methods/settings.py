"""Checks of a method's setting values, run when the method is configured (`get_method`, and so
when a suite loads), so a bad value stops a run before any work instead of failing, or
silently scoring, at run time.

The rules follow the settings' names, which mean the same in every method: counts are whole
numbers >= 1, fractions lie in (0, 1), rates and scales are positive, names come from their
registries. A setting with no rule of its own is checked against its annotated type.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["check_settings"]

_AT_LEAST_ZERO = {"warmup"}
_FRACTIONS = {"validation_fraction", "quantile", "t_eps"}
_POSITIVE = {
    "learning_rate", "sigma_min", "beta_min", "beta_max", "gamma", "clip_norm", "kernel_scale",
}  # fmt: skip
_NON_NEGATIVE = {"regularization"}
_EMBEDDINGS = (None, "deepset")
_CHOICES = {"classifier": ("mlp", "resnet")}


def _whole(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _check(name: str, value: Any, annotation: str, ours: bool) -> None:
    from sbibench.mcmc import SAMPLERS
    from sbibench.nn import ESTIMATORS

    optional = "None" in annotation
    if value is None and optional:
        return
    if name == "estimator" and ours:
        if value not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {sorted(ESTIMATORS)}, got {value!r}")
    elif name == "embedding":
        if value not in _EMBEDDINGS:
            raise ValueError(f"embedding must be None or 'deepset', got {value!r}")
    elif name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ValueError(f"{name} must be one of {_CHOICES[name]}, got {value!r}")
    elif name == "sampler":
        if value not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {value!r}")
    elif name == "hidden_features":
        if not isinstance(value, tuple | list) or not value:
            raise ValueError(f"hidden_features must be a non-empty list of widths, got {value!r}")
        for width in value:
            _whole("each of hidden_features", width, 1)
    elif name in _FRACTIONS:
        if not 0 < _real(name, value) < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {value!r}")
    elif name in _POSITIVE:
        if not _real(name, value) > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")
    elif name in _NON_NEGATIVE:
        if not _real(name, value) >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    elif annotation.startswith("bool"):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
    elif annotation.startswith("int"):
        _whole(name, value, 0 if name in _AT_LEAST_ZERO else 1)
    elif annotation.startswith("float"):
        _real(name, value)
    elif annotation.startswith("dict") and not isinstance(value, dict):
        raise ValueError(f"{name} must be a table, got {value!r}")


def check_settings(method: Any) -> None:
    """Raise ValueError naming the first setting of ``method`` (a configured dataclass) whose
    value is out of range or of the wrong kind."""
    # an ``estimator`` beside ``estimator_options`` is one of sbibench's own (`sbibench.nn`);
    # the sbi adapter's names sbi's estimators, which sbi checks
    ours = hasattr(method, "estimator_options")
    for field in dataclasses.fields(method):
        annotation = (
            field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
        )
        _check(field.name, getattr(method, field.name), str(annotation), ours)
