"""sbibench: a benchmark and validation suite for simulation-based inference."""

from __future__ import annotations

from typing import Any

from sbibench.registry import load

__version__ = "0.1.0"

# The public API, imported on first use so that `import sbibench` (and the pytest plugin,
# which loads in every pytest run where sbibench is installed) stays light.
# A name never equals a submodule's (importing sbibench.records binds that module to its name).
_EXPORTS = {
    "Task": "sbibench.task:Task",
    "get_task": "sbibench.task:get_task",
    "list_tasks": "sbibench.task:list_tasks",
    "get_method": "sbibench.methods:get_method",
    "list_methods": "sbibench.methods:list_methods",
    "load_suite": "sbibench.run.suite:load_suite",
    "run_suite": "sbibench.run.runner:run_suite",
    "load_results": "sbibench.records:load_results",
    "write_report": "sbibench.report.render:write_report",
    "check_results": "sbibench.report.check:check",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return load(_EXPORTS[name])
    raise AttributeError(f"module 'sbibench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
