"""The ``sbibench`` command: list tasks, build and verify reference posteriors."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _tasks(args: argparse.Namespace) -> int:
    from sbibench.task import get_task, list_tasks

    rows = [("name", "parameters", "data", "description")]
    for name in list_tasks():
        task = get_task(name)
        rows.append((name, str(task.dim_parameters), str(task.dim_data), task.description))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[3]
        )
    return 0


def _selected(args: argparse.Namespace) -> list:
    from sbibench.task import get_task, list_tasks

    return [get_task(name) for name in (args.task or list_tasks())]


def _build(args: argparse.Namespace) -> int:
    from sbibench.references import build_reference

    for task in _selected(args):
        folder = build_reference(task)
        print(f"built {task.name}: {folder}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from sbibench.references import verify_reference

    failed = 0
    for task in _selected(args):
        problems = verify_reference(task)
        print(f"{task.name}: {'ok' if not problems else 'FAILED'}")
        for problem in problems:
            print(f"  {problem}")
        failed += bool(problems)
    if failed:
        print(f"{failed} task(s) failed verification", file=sys.stderr)
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    from sbibench import __version__

    parser = argparse.ArgumentParser(
        prog="sbibench",
        description="Benchmark simulation-based inference against exact posteriors.",
    )
    parser.add_argument("--version", action="version", version=f"sbibench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    tasks = commands.add_parser("tasks", help="list the tasks: dimensions and description")
    tasks.set_defaults(handler=_tasks)

    reference = commands.add_parser("reference", help="build or verify reference posteriors")
    actions = reference.add_subparsers(dest="action", required=True)
    for name, handler, text in (
        ("build", _build, "generate reference posteriors from the task cards"),
        ("verify", _verify, "regenerate and compare every file, observation and checksum"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--task", action="append", help="only this task (repeatable)")
        action.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sbibench`` console command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"sbibench: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
