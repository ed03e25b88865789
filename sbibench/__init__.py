"""sbibench: a benchmark and validation suite for simulation-based inference."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# The public API, imported on first use so that `import sbibench` (and the pytest plugin,
# which loads in every pytest run where sbibench is installed) stays light.
_EXPORTS = {
    "Task": "sbibench.task",
    "get_task": "sbibench.task",
    "list_tasks": "sbibench.task",
    "get_method": "sbibench.methods",
    "list_methods": "sbibench.methods",
    "load_suite": "sbibench.suite",
    "run_suite": "sbibench.runner",
    "load_results": "sbibench.results",
    "write_report": "sbibench.report",
    "check": "sbibench.check",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sbibench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
