"""Export a task's simulations to a method outside sbibench's process (`sbibench simulate`), and
keep the ledger of what was handed out.

An export is one (task, budget, seed) of a run folder; the run folder's suite fixes the
observations to answer, the posterior samples per observation and the calibration datasets.
The user receives a folder (``out``):

- ``train.npz`` (+ ``train.parquet`` where pyarrow is installed): ``theta`` (N, D) and ``x``
  (N, M), float64: exactly the simulations that sbibench's own methods draw for the same
  task, budget and seed (`sbibench.methods.base.SimulationBudget` under
  `sbibench.methods.base.seeded`), with ``parameter_names``, ``data_names``, ``task``,
  ``budget`` and ``seed``. A failing task's failed simulations are rows of NaN in ``x``: they
  are spent like the others, and a method drops them as ours do. N is the budget unless the
  export keeps part of it for later rounds (``prior_simulations``).
- ``observations.npz``: ``x`` (K, M) and ``observations`` (K,), the observations to answer.
- ``calibration.npz``: ``x`` (L, M) of L prior-predictive datasets, their parameters withheld.
- ``round-<r>.npz``: ``theta`` and ``x`` of each `simulate_theta` call, the parameters the
  user chose.
- ``manifest.json``: task, card sha256, budget, seed, sbibench version, suite, names, what is
  to be answered, the simulations used and left, and the sha256 of every file above.

The run folder keeps ``exports/<task>-<budget>-<seed>/`` (`sbibench.records.RunFolder.export`):
``ledger.json`` (every simulation handed out, which `simulate_theta` counts against the budget
and `sbibench.run.from_files` reads back) and ``calibration.npz``, the calibration datasets
with their parameters. The same arguments give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sbibench import __version__
from sbibench.checks import is_seed, whole
from sbibench.methods.base import SimulationBudget, Timings, seeded
from sbibench.paths import write_atomic
from sbibench.records import RunFolder
from sbibench.run.array_files import npz_bytes, parquet_bytes, read_values
from sbibench.run.suite import Suite, load_suite
from sbibench.run.worker import calibration_data, derived_seed
from sbibench.task import Task, get_task

__all__ = ["export", "export_suite", "read_ledger", "simulate_theta", "withheld"]


def export_suite(run: Path, suite: str | Path | None) -> Suite:
    """The suite whose settings an export follows: the run folder's own (``suite.toml``), else
    ``suite`` (a name or a file), which then becomes the folder's."""
    from sbibench.run.runner import prepare_folder

    stored = RunFolder(run).suite
    if stored.is_file():
        own = load_suite(stored)
        if suite is not None and load_suite(suite).text != own.text:
            raise ValueError(
                f"{run} is a run folder of suite {own.name!r} (its suite.toml); --suite "
                f"{suite} differs: leave it out, or choose another run folder"
            )
        return own
    if suite is None:
        raise ValueError(
            f"{run} is not a run folder of a suite yet: name the suite whose observations, "
            "sample sizes and scores the export follows, e.g. --suite quick"
        )
    chosen = load_suite(suite)
    prepare_folder(chosen, Path(run))
    return chosen


def _settings(task: Task, suite: Suite, budget: int, seed: int, prior: int) -> dict[str, Any]:
    """What the export hands out and asks for: the manifest's and the ledger's common part."""
    observations = list(suite.observations_of(task.name))
    if max(observations) > task.num_observations:
        raise ValueError(
            f"suite {suite.name!r} asks for observations {observations}; task {task.name!r} "
            f"has 1..{task.num_observations}"
        )
    if suite.num_posterior_samples > task.num_reference_samples:
        raise ValueError(
            f"suite {suite.name!r} scores {suite.num_posterior_samples} samples; task "
            f"{task.name!r} stores {task.num_reference_samples} reference samples"
        )
    return {
        "task": task.name, "card_sha256": task.card_sha256, "budget": budget, "seed": seed,
        "sbibench_version": __version__, "suite": suite.name, "suite_sha256": suite.sha256,
        "parameter_names": list(task.parameter_names), "data_names": _data_names(task),
        "observations": observations, "num_posterior_samples": suite.num_posterior_samples,
        "prior_simulations": prior,
    }  # fmt: skip


def _data_names(task: Task) -> list[str]:
    return [f"x_{i + 1}" for i in range(task.dim_data)]


def _check(budget: int, seed: int) -> None:
    whole(budget, "budget", 1)
    if not is_seed(seed):
        raise ValueError(f"seed must be a whole number in 0..2**63-1, got {seed!r}")


def export(
    task_name: str,
    budget: int,
    seed: int,
    run: str | Path,
    out: str | Path,
    suite: str | Path | None = None,
    prior_simulations: int | None = None,
) -> Path:
    """Write the export of (task, budget, seed) into ``out`` and its ledger into ``run``;
    returns the manifest's path. See the module's docstring for the files.

    Arguments:
        task_name: the task.
        budget: the simulations the method may use in all.
        seed: the seed its training set is drawn with (as a run's method gets it).
        run: the run folder the scores will go into.
        out: the folder to hand to the method.
        suite: the suite whose settings to follow where ``run`` has none yet.
        prior_simulations: how many of the budget to draw from the prior now (default: all;
            fewer keep the rest for `simulate_theta` rounds).

    Raises:
        ValueError: a bad argument, or ``run`` holds an export of the same (task, budget,
            seed) made with other settings. Exporting again with the same settings writes
            the same files again, and counts nothing twice.
    """
    from sbibench.run.runner import folder_held

    task, run, out = get_task(task_name), Path(run), Path(out)
    _check(budget, seed)
    prior = budget if prior_simulations is None else prior_simulations
    if not 1 <= whole(prior, "prior_simulations", 1) <= budget:
        raise ValueError(f"prior_simulations must lie in 1..budget = {budget}, got {prior}")
    with folder_held(run):
        chosen = export_suite(run, suite)
        settings = _settings(task, chosen, budget, seed, prior)
        kept = RunFolder(run).export(task.name, budget, seed)
        ledger = _existing(kept, settings)
        with seeded(seed) as generator:  # what a method's fit draws (prior_simulations)
            spent = SimulationBudget(task, budget, generator, Timings())
            theta = spent.sample_prior(prior)
            x = spent.simulate_rows(theta)
        calibration = calibration_data(
            task, chosen.sbc_datasets, derived_seed("calibration", task.name, seed)
        )
        files = {
            **_table("train", task, theta, x, settings),
            "observations.npz": npz_bytes(
                {
                    "x": torch.stack(
                        [task.observation(k) for k in settings["observations"]]
                    ).numpy(),
                    "observations": np.array(settings["observations"]),
                }
            ),  # fmt: skip
            "calibration.npz": npz_bytes({"x": calibration[1].numpy()}),
        }
        if ledger is None:
            ledger = {
                **settings,
                "calibration": {
                    "num_datasets": int(calibration[0].shape[0]),
                    "num_posterior_samples": chosen.sbc_samples,
                },
                "used": prior, "invalid": spent.invalid, "rounds": [],
            }  # fmt: skip
        kept.mkdir(parents=True, exist_ok=True)
        write_atomic(kept / "calibration.npz", npz_bytes({
            "theta": calibration[0].numpy(), "x": calibration[1].numpy(),
        }))  # fmt: skip
        _write_ledger(kept, ledger)
        return _write_out(Path(out), files, ledger)


def _table(stem: str, task: Task, theta: torch.Tensor, x: torch.Tensor, settings: dict) -> dict:
    """``<stem>.npz`` (and ``<stem>.parquet``) of the simulations (theta, x)."""
    arrays = {
        "theta": theta.numpy(), "x": x.numpy(),
        "parameter_names": np.array(task.parameter_names), "data_names": np.array(_data_names(task)),
        "task": np.array(task.name), "budget": np.array(settings["budget"]),
        "seed": np.array(settings["seed"]),
    }  # fmt: skip
    files = {f"{stem}.npz": npz_bytes(arrays)}
    columns = dict(zip(task.parameter_names, theta.numpy().T, strict=True))
    columns.update(zip(_data_names(task), x.numpy().T, strict=True))
    parquet = parquet_bytes(columns)
    if parquet is not None:
        files[f"{stem}.parquet"] = parquet
    return files


def _existing(kept: Path, settings: dict) -> dict | None:
    """The ledger of an earlier export of the same (task, budget, seed), if its settings are
    these; None where there is none; ValueError where it was made with others."""
    path = kept / "ledger.json"
    if not path.is_file():
        return None
    ledger = _read(path)
    differing = [name for name, value in settings.items() if ledger.get(name) != value]
    if differing:
        shown = ", ".join(f"{n} {ledger.get(n)!r} (now {settings[n]!r})" for n in differing)
        raise ValueError(
            f"{path}: this (task, budget, seed) was exported with other settings: {shown}; "
            "use the same settings, another seed or another run folder"
        )
    return ledger


def _read(path: Path) -> dict:
    try:
        ledger = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: unreadable ledger ({error})") from None
    if not isinstance(ledger, dict) or not {"task", "budget", "seed", "used"} <= set(ledger):
        raise ValueError(f"{path}: not an export's ledger")
    return ledger


def _write_ledger(kept: Path, ledger: dict) -> None:
    write_atomic(kept / "ledger.json", (json.dumps(ledger, indent=1) + "\n").encode())


def _write_out(out: Path, files: dict[str, bytes], ledger: dict) -> Path:
    """Write ``files`` into ``out`` and the manifest, listing every file the export holds."""
    out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        write_atomic(out / name, content)
    manifest_path = out / "manifest.json"
    listed = {}
    if manifest_path.is_file():  # an earlier export's rounds stay listed
        listed = json.loads(manifest_path.read_text()).get("files", {})
    listed.update({name: hashlib.sha256(content).hexdigest() for name, content in files.items()})
    keys = ("task", "card_sha256", "budget", "seed", "sbibench_version", "suite",
            "parameter_names", "data_names", "observations", "num_posterior_samples",
            "calibration")  # fmt: skip
    manifest = {
        **{key: ledger[key] for key in keys},
        "simulations": {"used": ledger["used"], "left": ledger["budget"] - ledger["used"]},
        "files": dict(sorted(listed.items())),
    }
    write_atomic(manifest_path, (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest_path


def read_ledger(run: str | Path, task: str, budget: int, seed: int) -> dict:
    """The ledger of the export of (task, budget, seed) in run folder ``run``; ValueError
    naming what the folder holds instead where there is none."""
    path = RunFolder(run).export(task, budget, seed) / "ledger.json"
    if path.is_file():
        return _read(path)
    exports = RunFolder(run).exports
    others = sorted(p.name for p in exports.glob(f"{task}-*")) if exports.is_dir() else []
    held = f"it holds exports {', '.join(others)} (task-budget-seed)" if others else "none"
    raise ValueError(
        f"{run} holds no export of {task} at budget {budget}, seed {seed} ({held}); the "
        "budget and seed must be those given to `sbibench simulate`"
    )


def withheld(run: str | Path, task: str, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The calibration datasets of an export: theta (L, D) and x (L, M)."""
    path = RunFolder(run).export(task, budget, seed) / "calibration.npz"
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive["theta"], archive["x"]
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"{path}: unreadable withheld calibration data ({error})") from None


def simulate_theta(
    task_name: str, budget: int, seed: int, run: str | Path, theta_file: str | Path,
    out: str | Path,
) -> Path:  # fmt: skip
    """Simulate the parameters of ``theta_file`` (a round of a sequential method: (N, D),
    under ``theta`` in an npz, or one column per parameter), counting them against the
    export's budget; write ``out/round-<r>.npz`` and return its path.

    The same file given again is the same round: its file is written again, nothing is
    counted twice. Each round's simulations are seeded by the export's seed and the round's
    number, so the same rounds give the same bytes.

    Raises:
        ValueError: no export of (task, budget, seed) in ``run``; the file is unreadable, of
            another shape, holds NaN, inf or parameters outside the prior's support; or the
            rows exceed what is left of the budget.
    """
    from sbibench.run.runner import folder_held

    task, run = get_task(task_name), Path(run)
    _check(budget, seed)
    found = read_values(Path(theta_file), "theta", task.parameter_names, "observation")
    theta = found.values
    if theta.ndim != 2 or theta.shape[1] != task.dim_parameters or theta.shape[0] < 1:
        raise ValueError(
            f"{theta_file}: parameters must have shape (N, {task.dim_parameters}) for task "
            f"{task.name!r} ({', '.join(task.parameter_names)}), found {theta.shape}"
        )
    check_meta(Path(theta_file), found.meta, task.name, budget, seed)
    check_values(Path(theta_file), task, torch.from_numpy(theta), "row")
    digest = hashlib.sha256(theta.tobytes()).hexdigest()
    with folder_held(run):
        ledger = read_ledger(run, task.name, budget, seed)
        kept = RunFolder(run).export(task.name, budget, seed)
        earlier = [r for r in ledger["rounds"] if r["theta_sha256"] == digest]
        number = earlier[0]["round"] if earlier else len(ledger["rounds"]) + 1
        left = ledger["budget"] - ledger["used"] + (theta.shape[0] if earlier else 0)
        if theta.shape[0] > left:
            raise ValueError(
                f"{theta_file}: {theta.shape[0]} simulations asked for, {left} of the budget "
                f"of {budget} left"
            )
        generator = torch.Generator().manual_seed(
            derived_seed("round", task.name, budget, seed, number)
        )
        spent = SimulationBudget(task, left, generator, Timings())
        x = spent.simulate_rows(torch.from_numpy(theta))
        files = _table(f"round-{number}", task, torch.from_numpy(theta), x, ledger)
        if not earlier:
            ledger["rounds"].append(
                {"round": number, "rows": theta.shape[0], "theta_sha256": digest}
            )
            ledger["used"] += theta.shape[0]
            ledger["invalid"] += spent.invalid
            _write_ledger(kept, ledger)
        _write_out(Path(out), files, ledger)
        return Path(out) / f"round-{number}.npz"


def check_meta(path: Path, meta: dict, task: str, budget: int, seed: int) -> None:
    """ValueError where a file says it belongs to another task, budget or seed."""
    for name, expected in (("task", task), ("budget", budget), ("seed", seed)):
        if name in meta and meta[name] != expected:
            raise ValueError(
                f"{path}: a file for {name} {meta[name]!r}, not {expected!r}: a file of "
                "another export?"
            )


def check_values(path: Path, task: Task, values: torch.Tensor, unit: str, where: str = "") -> None:
    """ValueError naming the file, ``where`` (an observation) and the first bad ``unit`` (a
    row, a sample) where values (..., D) hold NaN or inf, or lie outside the prior's
    support."""
    flat = values.reshape(-1, values.shape[-1])
    place = f"{path}{': ' + where if where else ''}"
    bad = ~torch.isfinite(flat).all(-1)
    if bad.any():
        first = int(bad.nonzero()[0])
        raise ValueError(
            f"{place}: {int(bad.sum())} of {flat.shape[0]} {unit}s hold NaN or inf (first: "
            f"{unit} {first + 1}, {flat[first].tolist()})"
        )
    inside = task.prior.support.check(flat)
    inside = inside.all(-1) if inside.ndim > 1 else inside
    if not inside.all():
        first = int((~inside).nonzero()[0])
        raise ValueError(
            f"{place}: {int((~inside).sum())} of {flat.shape[0]} {unit}s lie outside the "
            f"prior's support {task.prior.support} (first: {unit} {first + 1}, "
            f"{flat[first].tolist()})"
        )
