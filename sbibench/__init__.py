"""sbibench: a benchmark and validation suite for simulation-based inference."""

__version__ = "0.1.0"

from sbibench.task import Task, get_task, list_tasks  # noqa: E402

__all__ = ["Task", "__version__", "get_task", "list_tasks"]
