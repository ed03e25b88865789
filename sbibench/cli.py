"""The ``sbibench`` command: tasks, suites, reference posteriors, runs, reports and CI checks,
and methods outside the process (``simulate`` exports simulations, ``score`` reads samples).

Each command's handler imports what it runs when it runs: ``sbibench --help`` and a mistyped
argument load no torch, pandas or POT (seconds on a cold start).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

from sbibench import __version__
from sbibench.registry import list_suites
from sbibench.run.executors import EXECUTORS
from sbibench.scoring import headline

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


def _suites(args: argparse.Namespace) -> int:
    from sbibench.run.suite import load_suite

    rows = [("name", "jobs", "description")]
    for name in list_suites():
        suite = load_suite(name)
        rows.append((name, str(len(suite.jobs())), suite.description))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, jobs, description in rows:
        print(f"{name.ljust(widths[0])}  {jobs.rjust(widths[1])}  {description}")
    return 0


def _per_task(args: argparse.Namespace, function: Any, *extra: Any) -> Iterator[tuple]:
    """(task name, ``function(name, *extra)``) for the selected tasks (``--task``, else
    all), in their order, computed by ``--workers`` processes on one torch thread each
    (default: one per CPU this process may use, at most one per task). The floors behind a
    reference are seconds of single-threaded work per observation, and tasks are independent:
    on 2 cores two workers verify every task in about half the time of one."""
    import concurrent.futures
    import multiprocessing

    from sbibench.run.cpus import available_cpus
    from sbibench.task import get_task, list_tasks

    names = args.task or list_tasks()
    for name in names:
        get_task(name)  # an unknown name stops here, before any work
    workers = min(args.workers or available_cpus(), len(names))
    if workers == 1:
        _one_thread()
        yield from ((name, function(name, *extra)) for name in names)
        return
    context = multiprocessing.get_context("spawn")  # fork after torch's threads can hang
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_one_thread
    ) as pool:
        futures = [pool.submit(function, name, *extra) for name in names]
        yield from ((name, future.result()) for name, future in zip(names, futures, strict=True))


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _build_one(name: str) -> str:
    from sbibench.reference.build import build_reference
    from sbibench.task import get_task

    return str(build_reference(get_task(name)))


def _verify_one(name: str, floors: bool, floor_draws: int) -> list[str]:
    from sbibench.reference.build import verify_reference
    from sbibench.task import get_task

    return verify_reference(get_task(name), floors=floors, floor_draws=floor_draws)


def _build(args: argparse.Namespace) -> int:
    for name, folder in _per_task(args, _build_one):
        print(f"built {name}: {folder}", flush=True)
    return 0


def _verify(args: argparse.Namespace) -> int:
    failed = 0
    from sbibench.reference.build import FLOOR_DRAWS

    if args.floor_draws > FLOOR_DRAWS:
        print(f"sbibench: --floor-draws: a floor has {FLOOR_DRAWS} draws", file=sys.stderr)
        return 2
    checked = _per_task(args, _verify_one, not args.skip_floors, args.floor_draws)
    for name, problems in checked:
        print(f"{name}: {'ok' if not problems else 'FAILED'}", flush=True)
        for problem in problems:
            print(f"  {problem}")
        failed += bool(problems)
    if failed:
        print(f"{failed} task(s) failed verification", file=sys.stderr)
    return 1 if failed else 0


def _run(args: argparse.Namespace) -> int:
    from sbibench.run.runner import run_suite
    from sbibench.run.suite import load_suite

    suite = load_suite(args.suite)
    out = args.out or f"runs/{suite.name}"
    only = {
        field: values
        for field, values in (
            ("task", args.tasks),
            ("method", args.methods),
            ("budget", args.budgets),
        )
        if values
    }
    piece = f" ({'; '.join(f'{k}s {v}' for k, v in only.items())})" if only else ""
    print(f"sbibench: running suite {suite.name!r}{piece} into {out}/ (re-running resumes)")
    summary = run_suite(
        suite, out, executor=args.executor, workers=args.workers, scheduler=args.scheduler,
        progress=not args.no_progress, threads=args.threads, rerun_stale=args.rerun_stale,
        timeout=args.timeout, only=only, allow_dirty=args.allow_dirty,
    )  # fmt: skip
    for path in summary.broken:
        print(f"sbibench: unreadable record moved aside and its job run again: {path}")
    if summary.stale_moved:
        print(f"sbibench: stale records moved to {summary.stale_moved} and run again")
    print(
        f"{summary.jobs} runs: {summary.skipped} already done, {summary.finished} finished, "
        f"{summary.jobs - summary.skipped - summary.finished} not run yet, "
        f"{summary.failed_records} failed records; table: {summary.table}"
    )
    from sbibench.report.render import summary_table

    print(summary_table(summary.table))
    print(f"next: sbibench report {out}  (leaderboards, figures and calibration plots)")
    for path, error in summary.failures:
        print(f"failed: {path}: {error}", file=sys.stderr)
    for key in summary.lost:
        print(f"lost: job {key}: its worker died, no record; re-run to retry", file=sys.stderr)
    return 0 if summary.ok else 1


def _report(args: argparse.Namespace) -> int:
    if args.format == "sbibm":
        from sbibench.report.sbibm_format import write_sbibm

        paths = [write_sbibm(args.folder, args.out)]
    else:
        from sbibench.report.render import write_report

        paths = write_report(args.folder, args.out)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from sbibench.report.check import check, format_verdict

    verdict = check(args.baseline, args.candidate, args.tolerance, alpha=args.alpha, k=args.k)
    print(format_verdict(verdict))
    return verdict.exit_code


def _simulate(args: argparse.Namespace) -> int:
    from sbibench.run.export import export, simulate_theta

    if args.theta is not None:
        if args.suite is not None or args.prior_simulations is not None:
            raise ValueError("--theta simulates a round of an existing export: no --suite or "
                             "--prior-simulations with it")  # fmt: skip
        path = simulate_theta(args.task, args.budget, args.seed, args.run, args.theta, args.out)
        print(f"wrote {path}")
    else:
        path = export(
            args.task, args.budget, args.seed, args.run, args.out, args.suite,
            args.prior_simulations,
        )  # fmt: skip
        print(f"wrote {args.out}/ (manifest: {path}); withheld data and ledger in {args.run}/")
    import json

    manifest = json.loads(path.with_name("manifest.json").read_text())
    used = manifest["simulations"]
    print(
        f"{args.task} at budget {args.budget}, seed {args.seed}: {used['used']} simulations "
        f"handed out, {used['left']} left; answer observations {manifest['observations']} with "
        f"{manifest['num_posterior_samples']} samples each"
        + (
            f", and {manifest['calibration']['num_datasets']} calibration datasets with "
            f"{manifest['calibration']['num_posterior_samples']} each"
            if manifest["calibration"]["num_datasets"]
            else ""
        )
    )
    return 0


def _score(args: argparse.Namespace) -> int:
    import pandas as pd

    from sbibench.report.calibration import verdicts
    from sbibench.report.render import summary_table
    from sbibench.run.from_files import score_files

    records = score_files(
        args.task, args.budget, args.seed, args.run, args.method, args.samples, args.calibration
    )
    print(f"wrote {len(records)} records of {args.method!r} into {args.run}/")
    print(summary_table(f"{args.run}/results.csv"))
    for verdict in verdicts(pd.DataFrame(records), args.run).values():
        print(f"calibration of {args.method!r} on {args.task}: {verdict}")
    print(f"next: sbibench report {args.run}")
    return 0


def _check_rules() -> str:
    """The check's rules and exit codes, for its --help: `sbibench.report.check`'s docstring, read
    without importing it (it imports pandas)."""
    import ast
    from pathlib import Path

    source = (Path(__file__).parent / "report" / "check.py").read_text()
    return ast.get_docstring(ast.parse(source)) or ""


def _at_least_one(text: str) -> int:
    """argparse type of --workers and --threads: a whole number >= 1 (argparse names the option)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"need a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"need a whole number >= 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sbibench",
        description="Benchmark simulation-based inference against exact posteriors.",
    )
    parser.add_argument("--version", action="version", version=f"sbibench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    tasks = commands.add_parser("tasks", help="list the tasks: dimensions and description")
    tasks.set_defaults(handler=_tasks)

    suites = commands.add_parser("suites", help="list the shipped suites: jobs and description")
    suites.set_defaults(handler=_suites)

    reference = commands.add_parser("reference", help="build or verify reference posteriors")
    actions = reference.add_subparsers(dest="action", required=True)
    for name, handler, text in (
        ("build", _build, "generate reference posteriors from the task cards"),
        ("verify", _verify, "regenerate and compare every file, observation and checksum"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--task", action="append", help="only this task (repeatable)")
        action.add_argument(
            "--workers", type=_at_least_one,
            help="tasks at once, in processes of one torch thread (default: the CPUs this "
            "process may use)",
        )  # fmt: skip
        action.set_defaults(handler=handler)
        if name == "verify":
            action.add_argument(
                "--skip-floors", action="store_true",
                help="do not regenerate the noise floors (seconds per observation); "
                "their checksums are still checked",
            )  # fmt: skip
            action.add_argument(
                "--floor-draws", type=_at_least_one, default=1, metavar="N",
                help="regenerate the first N of each floor's exact-posterior draws (default 1; "
                "seconds per observation each); every stored mean and sd is re-derived from "
                "the stored draws whatever N",
            )  # fmt: skip
    shipped = ", ".join(list_suites())
    run = commands.add_parser("run", help=f"run a suite's grid: {shipped}, or a file")
    run.add_argument(
        "suite", help=f"a shipped suite's name ({shipped}; `sbibench suites` lists them) or a "
        "suite TOML file",
    )  # fmt: skip
    run.add_argument("--out", help="run folder (default runs/<suite>); re-running resumes")
    run.add_argument(
        "--executor", choices=EXECUTORS, default="processes",
        help="where jobs run: processes (default: local, each job in a process of its own), "
        "serial (in this process, one at a time: for debugging), dask (a LocalCluster, or "
        "--scheduler's), slurm (submitit; needs sbibench[slurm]). Records are the same "
        "whichever runs them",
    )  # fmt: skip
    run.add_argument(
        "--workers", type=_at_least_one,
        help="parallel workers (default: the CPUs this process may use // --threads; 1 serial)",
    )  # fmt: skip
    run.add_argument(
        "--threads", type=_at_least_one, default=1,
        help="torch threads per worker, part of each run's key (default 1: the fastest)",
    )  # fmt: skip
    run.add_argument("--scheduler", help="address of a running Dask scheduler, tcp://host:port")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--timeout", type=float,
        help="seconds after which a job is stopped and recorded as failed (default: the "
        "suite's timeout field, else none)",
    )  # fmt: skip
    run.add_argument(
        "--rerun-stale", action="store_true",
        help="move records made by other code or task data to OUT/stale/ and run them again",
    )  # fmt: skip
    run.add_argument(
        "--allow-dirty", action="store_true",
        help="run although sbibench's package (in its source checkout) has uncommitted "
        "changes; the records then name the revision <commit>-dirty (default: refuse)",
    )  # fmt: skip
    for flag, kind, what in (
        ("--tasks", str, "tasks"),
        ("--methods", str, "methods (the suite's labels)"),
        ("--budgets", int, "budgets"),
    ):
        run.add_argument(
            flag, nargs="+", type=kind, metavar=flag[2:-1].upper(),
            help=f"run a piece of the grid: only these {what}; pieces add up to the whole "
            "grid in one folder",
        )  # fmt: skip
    run.set_defaults(handler=_run)

    simulate = commands.add_parser(
        "simulate", help="export a task's simulations to a method outside sbibench",
        description="Write the training set that sbibench's methods draw for TASK, BUDGET and "
        "SEED, the observations to answer and calibration data into OUT (the folder to hand "
        "to the method), and keep the withheld calibration parameters and a ledger of what "
        "was handed out in the run folder RUN. With --theta, simulate a round of parameters "
        "of your choice, counted against the budget. See docs/from-files.md.",
    )  # fmt: skip
    simulate.add_argument("task", help="a task's name (`sbibench tasks` lists them)")
    simulate.add_argument("--budget", type=_at_least_one, required=True,
                          help="simulations the method may use in all")  # fmt: skip
    simulate.add_argument("--seed", type=int, default=0, help="the training set's seed (0)")
    simulate.add_argument("--run", required=True, help="the run folder the scores will go into")
    simulate.add_argument("--out", required=True, help="the folder to hand to the method")
    simulate.add_argument(
        "--suite", help="where RUN has no suite.toml yet: the suite (name or file) whose "
        "observations, sample sizes and scores to follow",
    )  # fmt: skip
    simulate.add_argument(
        "--prior-simulations", type=_at_least_one, metavar="N",
        help="draw N of the budget from the prior now (default: all of it), the rest left "
        "for --theta rounds",
    )  # fmt: skip
    simulate.add_argument(
        "--theta", metavar="FILE",
        help="simulate these parameters (N, D: .npz with `theta`, .npy, .csv or parquet with "
        "one column per parameter) as the export's next round, into OUT/round-<r>.npz",
    )  # fmt: skip
    simulate.set_defaults(handler=_simulate)

    score = commands.add_parser(
        "score", help="score posterior samples from files into a run folder",
        description="Score a method's posterior samples, written by any framework, for an "
        "export of `sbibench simulate`: the records a run writes, in RUN. See "
        "docs/from-files.md.",
    )  # fmt: skip
    score.add_argument("task", help="the exported task")
    score.add_argument("--budget", type=_at_least_one, required=True,
                       help="the budget declared (that of the export)")  # fmt: skip
    score.add_argument("--seed", type=int, default=0, help="the export's seed (0)")
    score.add_argument("--run", required=True, help="the run folder holding the export")
    score.add_argument("--method", required=True, help="the method's name in the records")
    score.add_argument(
        "--samples", nargs="+", required=True, metavar="FILE",
        help="one file per observation (N, D), in the export's order, or one file "
        "(K, N, D); .npz (array `samples`), .npy, .csv or parquet (a column per parameter, "
        "and `observation`)",
    )  # fmt: skip
    score.add_argument(
        "--calibration", metavar="FILE",
        help="samples (L, S, D) for the export's calibration datasets: SBC, coverage, TARP",
    )  # fmt: skip
    score.set_defaults(handler=_score)

    report = commands.add_parser("report", help="leaderboards and figures from a run folder")
    report.add_argument("folder", help="a run folder written by `sbibench run`")
    report.add_argument("--out", help="where to write (default: the run folder)")
    report.add_argument(
        "--format", choices=("report", "sbibm"), default="report",
        help="report (default): LEADERBOARD.md, report.html and leaderboard.tex; sbibm: "
        "sbibm.csv, one row per record in sbibm's results columns (task, num_simulations, "
        "num_observation, algorithm, C2ST, ...), to merge with sbibm's published tables",
    )  # fmt: skip
    report.set_defaults(handler=_report)

    check = commands.add_parser(
        "check", help="compare a candidate's results with a baseline",
        description=_check_rules(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    check.add_argument("--baseline", required=True, help="run folder or results.csv")
    check.add_argument("--candidate", required=True, help="run folder or results.csv")
    check.add_argument(
        "--tolerance", type=float,
        help=f"{headline().columns[0].label} change tolerated before noise is considered "
        f"(default {headline().columns[0].rule.tolerance:g})",
    )  # fmt: skip
    check.add_argument("--k", type=float, default=3.0, help="noise sds a change must exceed")
    check.add_argument(
        "--alpha", type=float, default=0.05,
        help="family-wise level of the SBC tests (Bonferroni over fits and parameters)",
    )  # fmt: skip
    check.set_defaults(handler=_check)
    return parser


def _working_directory_importable() -> None:
    """Put the working directory on the import path, as ``python script.py`` does, for this
    process and the workers it starts (a suite's ``function = "mymethods:f"`` with
    ``mymethods.py`` beside it)."""
    import os

    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if cwd not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([cwd, *filter(None, paths)])


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sbibench`` console command; returns the exit code."""
    args = _parser().parse_args(argv)
    _working_directory_importable()
    try:
        return args.handler(args)
    except (ValueError, OSError, ImportError) as error:  # OSError: files, disks, sockets
        print(f"sbibench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # finished records are on disk already: say so, no traceback
        print(
            "sbibench: interrupted; finished records are kept (re-run the same command to resume)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
