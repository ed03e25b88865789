"""Methods from outside sbibench's process: `sbibench simulate` exports what our methods draw,
`sbibench score` turns samples files into run records, and bad files are refused, naming what
and where, without losing a record."""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sbibench.cli import main
from sbibench.methods.training import prior_simulations
from sbibench.records import RunFolder, read_records
from sbibench.run.export import export, simulate_theta
from sbibench.task import get_task

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "from-files.md"
sys.path.insert(0, str(ROOT / "tests"))
from test_docs import _blocks, script_of  # noqa: E402

N, L, S = 2000, 40, 20  # samples per observation (floors are stored at 2,000), calibration
SUITE = dict(
    name="files", tasks=["two_moons"], budgets=[1000], observations=[1, 2],
    num_posterior_samples=N, metrics=["mmd", "moments"], sbc=(L, S), methods={"exact": {}},
)  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory, suite_text):
    """An export of two_moons at 10^3, seed 0, into a fresh run folder of the small suite,
    and good samples for it: the reference samples and exact posterior draws."""
    folder = tmp_path_factory.mktemp("exported")
    (folder / "files.toml").write_text(suite_text(**SUITE))
    export("two_moons", 1000, 0, folder / "run", folder / "out", suite=folder / "files.toml")
    task = get_task("two_moons")
    samples = np.stack([task.reference_samples(k)[:N].numpy() for k in (1, 2)])
    x = torch.from_numpy(np.load(folder / "out" / "calibration.npz")["x"])
    draws = np.stack([task.posterior(row).sample((S,)).numpy() for row in x])
    np.savez(folder / "samples.npz", samples=samples, task="two_moons", budget=1000, seed=0)
    np.savez(folder / "calibration.npz", samples=draws)
    return folder


@pytest.fixture
def run(exported, tmp_path):
    """A copy of the exported run folder, holding one method's records already."""
    shutil.copytree(exported / "run", tmp_path / "run")
    _score(tmp_path / "run", "first", exported / "samples.npz")
    return tmp_path / "run"


def _score(folder, method, *samples, extra=()):
    argv = ["score", "two_moons", "--budget", "1000", "--seed", "0", "--run", str(folder)]
    return main([*argv, "--method", method, "--samples", *map(str, samples), *extra])


def _contents(folder):
    """Every file below ``folder`` (but the lock, which names the process holding it)."""
    return {
        p.relative_to(folder): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def test_the_training_set_is_the_one_a_method_receives(tmp_path, suite_file):
    suite = suite_file(**{**SUITE, "tasks": ["normal_mean_failing"]})
    for name in ("two_moons", "normal_mean_failing"):
        export(name, 300, 7, tmp_path / name, tmp_path / f"{name}-out", suite=suite)
        train = np.load(tmp_path / f"{name}-out" / "train.npz")
        task = get_task(name)
        with prior_simulations(task, 300, seed=7) as fit:
            theta, x = fit.theta, fit.x
        valid = np.isfinite(train["x"]).all(1)
        assert train["theta"].shape == (300, task.dim_parameters)
        assert np.array_equal(train["theta"][valid], theta.numpy())
        assert np.array_equal(train["x"][valid], x.numpy())
        assert train["theta"].dtype == train["x"].dtype == np.float64
        assert list(train["parameter_names"]) == list(task.parameter_names)
        assert (name == "normal_mean_failing") == (not valid.all())  # failed rows handed out
        ledger = json.loads(
            (RunFolder(tmp_path / name).export(name, 300, 7) / "ledger.json").read_text()
        )
        assert (ledger["used"], ledger["invalid"]) == (300, int((~valid).sum()))


def test_the_same_seed_writes_the_same_bytes(exported, tmp_path):
    for again in ("a", "b"):
        shutil.copy(exported / "run" / "suite.toml", tmp_path / "suite.toml")
        export("two_moons", 1000, 0, tmp_path / again, tmp_path / f"{again}-out",
               suite=tmp_path / "suite.toml")  # fmt: skip
    assert _contents(tmp_path / "a-out") == _contents(exported / "out")
    assert _contents(tmp_path / "a") == _contents(tmp_path / "b")
    export("two_moons", 1000, 0, tmp_path / "a", tmp_path / "a-out")  # again: nothing changes
    assert _contents(tmp_path / "a-out") == _contents(exported / "out")
    export("two_moons", 1000, 1, tmp_path / "a", tmp_path / "seed-1")
    assert (tmp_path / "seed-1" / "train.npz").read_bytes() != (
        exported / "out" / "train.npz"
    ).read_bytes()
    with pytest.raises(ValueError, match="exported with other settings: prior_simulations"):
        export("two_moons", 1000, 0, tmp_path / "a", tmp_path / "a-out", prior_simulations=10)


def test_calibration_parameters_stay_in_the_run_folder(exported):
    with np.load(exported / "out" / "calibration.npz") as handed:
        assert handed.files == ["x"]
        x = handed["x"]
    with np.load(
        RunFolder(exported / "run").export("two_moons", 1000, 0) / "calibration.npz"
    ) as kept:
        assert kept["theta"].shape == (L, 2) and np.array_equal(kept["x"], x)
    manifest = json.loads((exported / "out" / "manifest.json").read_text())
    assert manifest["observations"] == [1, 2] and manifest["num_posterior_samples"] == N
    assert manifest["calibration"] == {"num_datasets": L, "num_posterior_samples": S}
    assert set(manifest["files"]) >= {"train.npz", "observations.npz", "calibration.npz"}


def test_theta_rounds_count_against_the_budget(exported, tmp_path, capsys):
    folder, out = tmp_path / "run", tmp_path / "out"
    shutil.copy(exported / "run" / "suite.toml", tmp_path / "suite.toml")
    export("two_moons", 200, 0, folder, out, suite=tmp_path / "suite.toml", prior_simulations=100)
    np.savez(tmp_path / "r1.npz", theta=np.full((60, 2), 0.25))
    path = simulate_theta("two_moons", 200, 0, folder, tmp_path / "r1.npz", out)
    first = path.read_bytes()
    assert path.name == "round-1.npz" and np.load(path)["x"].shape == (60, 2)
    simulate_theta("two_moons", 200, 0, folder, tmp_path / "r1.npz", out)  # the same round
    assert path.read_bytes() == first
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["simulations"] == {"used": 160, "left": 40}
    np.savetxt(tmp_path / "r2.csv", np.full((50, 2), 0.1), delimiter=",", header="theta_1,theta_2",
               comments="")  # fmt: skip
    argv = ["simulate", "two_moons", "--budget", "200", "--run", str(folder), "--out", str(out)]
    assert main([*argv, "--theta", str(tmp_path / "r2.csv")]) == 2
    assert "50 simulations asked for, 40 of the budget of 200 left" in capsys.readouterr().err
    np.save(tmp_path / "outside.npy", np.array([[0.5, 0.5], [3.0, 0.0]]))
    assert main([*argv, "--theta", str(tmp_path / "outside.npy")]) == 2
    assert "1 of 2 rows lie outside the prior's support" in capsys.readouterr().err
    assert json.loads((out / "manifest.json").read_text())["simulations"]["used"] == 160


def test_scored_from_files_the_records_are_a_runs(run, exported, tmp_path):
    from sbibench.report.check import check
    from sbibench.report.render import write_report

    assert _score(run, "exact_files", exported / "samples.npz",
                  extra=["--calibration", str(exported / "calibration.npz")]) == 0  # fmt: skip
    records = [r for r in read_records(run) if r["method"] == "exact_files"]
    assert [r["observation"] for r in records] == [1, 2]
    for record in records:
        assert record["status"] == "ok" and record["method_name"] == "files"
        assert record["num_simulations_used"] == 1000 and record["suite"] == "files"
        assert abs(record["mmd"] - record["mmd_floor"]) < 0.01  # the exact posterior's samples
        assert record["sbc_datasets"] == L and record["coverage_method"] == "tarp"
        assert record["code_digest"] and record["task_digest"]
    ranks = np.load(RunFolder(run).ranks(records[0]["key"]))
    assert ranks["ranks"].shape == (L, 2)
    written = write_report(run, tmp_path / "report")
    board = next(p for p in written if p.name == "LEADERBOARD.md").read_text()
    assert "exact_files" in board and "first" in board
    assert check(run, run, None).exit_code == 0


def test_per_observation_files_in_any_format(run, exported, tmp_path):
    import pandas as pd

    samples = np.load(exported / "samples.npz")["samples"]
    np.save(tmp_path / "one.npy", samples[0])
    pd.DataFrame(samples[1], columns=["theta_1", "theta_2"]).to_csv(
        tmp_path / "two.csv", index=False
    )
    assert _score(run, "by_file", tmp_path / "one.npy", tmp_path / "two.csv") == 0
    long = pd.DataFrame(samples.reshape(-1, 2), columns=["theta_1", "theta_2"])
    long.insert(0, "observation", np.repeat([1, 2], N))
    long.to_csv(tmp_path / "long.csv", index=False)
    assert _score(run, "long_csv", tmp_path / "long.csv") == 0
    scores = {r["method"]: r["mmd"] for r in read_records(run) if r["observation"] == 2}
    assert scores["by_file"] == scores["long_csv"] == scores["first"]


def test_calibration_from_a_table_and_parquet(run, exported, tmp_path):
    import pandas as pd

    draws = np.load(exported / "calibration.npz")["samples"]
    table = pd.DataFrame(draws.reshape(-1, 2), columns=["theta_1", "theta_2"])
    table.insert(0, "dataset", np.repeat(np.arange(1, L + 1), S))
    table.to_csv(tmp_path / "calibration.csv", index=False)
    samples = exported / "samples.npz"
    assert (
        _score(run, "csv", samples, extra=["--calibration", str(tmp_path / "calibration.csv")]) == 0
    )
    pytest.importorskip("pyarrow")
    assert (exported / "out" / "train.parquet").is_file()
    table.to_parquet(tmp_path / "calibration.parquet")
    extra = ["--calibration", str(tmp_path / "calibration.parquet")]
    assert _score(run, "parquet", samples, extra=extra) == 0
    found = {
        r["method"]: r["sbc_ecdf_p_min"]
        for r in read_records(run)
        if r["observation"] == 1 and r["method"] in ("csv", "parquet")
    }
    assert found["csv"] == found["parquet"]


def _bad(tmp_path, samples):
    path = tmp_path / "bad.npz"
    np.savez(path, samples=samples)
    return path


def _truncated(tmp_path, samples):
    path = tmp_path / "cut.npz"
    np.savez(path, samples=samples)
    path.write_bytes(path.read_bytes()[:5000])
    return path


def _truncated_csv(tmp_path, samples):
    path = tmp_path / "cut.csv"
    lines = ["theta_1,theta_2"] + [f"{a},{b}" for a, b in samples[0]]
    path.write_text("\n".join(lines)[:-3])
    return path


def _nan(tmp_path, samples):
    samples = samples.copy()
    samples[1, 16] = np.nan
    return _bad(tmp_path, samples)


def _outside(tmp_path, samples):
    samples = samples.copy()
    samples[0, 4] = [1.5, 0.0]
    return _bad(tmp_path, samples)


def _another(tmp_path, samples, **meta):
    path = tmp_path / "other.npz"
    np.savez(path, samples=samples, **meta)
    return path


BAD = {
    "another task's shape": (lambda t, s: _bad(t, np.concatenate([s, s[..., :1]], -1)),
                             "found (2, 2000, 3); a file for another task?"),
    "too few observations": (lambda t, s: _bad(t, s[:1]),
                             "samples for 1 observation(s), expected 2 (observations 1, 2)"),
    "too few samples": (lambda t, s: _bad(t, s[:, :1000]),
                        "each observation: 1000 samples, expected exactly 2000"),
    "NaN": (_nan, "observation 2: 1 of 2000 samples hold NaN or inf (first: sample 17"),
    "inf": (lambda t, s: _bad(t, np.where(np.arange(N)[:, None] == 3, np.inf, s)),
            "observation 1: 1 of 2000 samples hold NaN or inf (first: sample 4"),
    "outside the support": (_outside, "observation 1: 1 of 2000 samples lie outside the prior's support"),
    "another task": (lambda t, s: _another(t, s, task="normal_mean"),
                     "a file for task 'normal_mean', not 'two_moons'"),
    "another seed": (lambda t, s: _another(t, s, seed=1), "a file for seed 1, not 0"),
    "another budget": (lambda t, s: _another(t, s, budget=10000), "a file for budget 10000, not 1000"),
    "truncated npz": (_truncated, "unreadable"),
    "truncated csv": (_truncated_csv, "truncated?"),
    "not there": (lambda t, s: t / "missing.npz", "missing.npz: no such file"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_a_bad_file_is_refused_and_loses_nothing(case, run, exported, tmp_path, capsys):
    make, message = BAD[case]
    before = _contents(run)
    path = make(tmp_path, np.load(exported / "samples.npz")["samples"])
    capsys.readouterr()
    assert _score(run, "second", path) == 2
    error = capsys.readouterr().err
    assert message in error, error
    assert str(path) in error and len(error.strip().splitlines()) == 1  # one line, no traceback
    assert _contents(run) == before


def test_a_budget_seed_or_name_without_an_export_is_refused(run, exported, capsys):
    before = _contents(run)
    samples = str(exported / "samples.npz")
    argv = ["score", "two_moons", "--run", str(run), "--method", "second", "--samples", samples]
    assert main([*argv, "--budget", "10000"]) == 2
    assert "no export of two_moons at budget 10000, seed 0 (it holds exports two_moons-1000-0" in (
        capsys.readouterr().err
    )
    assert main([*argv, "--budget", "1000", "--seed", "1"]) == 2
    assert "no export of two_moons at budget 1000, seed 1" in capsys.readouterr().err
    assert _score(run, "first", samples) == 2
    assert "already holds records of method 'first' on two_moons at budget 1000, seed 0" in (
        capsys.readouterr().err
    )
    assert _score(run, "no/slash", samples) == 2
    assert "cannot name a record" in capsys.readouterr().err
    calibration = exported / "calibration.npz"
    draws = np.load(calibration)["samples"]
    np.savez(exported / "short.npz", samples=draws[:-1])
    assert _score(run, "second", samples, extra=["--calibration", str(exported / "short.npz")]) == 2
    assert f"samples for {L - 1} dataset(s), expected {L}" in capsys.readouterr().err
    assert _contents(run) == before


def test_a_numpy_script_in_another_process_gets_scored(run, exported, tmp_path):
    """The docs' script, run as its own process on the export, with numpy alone."""
    script = tmp_path / "outside_fit.py"
    script.write_text(script_of(PAGE, "outside_fit.py"))
    env = {**os.environ, "PYTHONPATH": ""}  # numpy only: sbibench need not be importable
    subprocess.run([sys.executable, str(script), str(exported / "out"), str(tmp_path / "fitted")],
                   check=True, env=env, timeout=120)  # fmt: skip
    assert _score(run, "abc_numpy", tmp_path / "fitted" / "samples.npz",
                  extra=["--calibration", str(tmp_path / "fitted" / "calibration.npz")]) == 0  # fmt: skip
    records = [r for r in read_records(run) if r["method"] == "abc_numpy"]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)
    assert all(np.isfinite(r["mmd"]) for r in records)


@pytest.mark.slow
def test_the_walk_through_runs_as_written(tmp_path):
    """The commands of the docs' walk-through, in a shell, beside the published quick run."""
    (tmp_path / "results").symlink_to(ROOT / "results", target_is_directory=True)
    (tmp_path / "outside_fit.py").write_text(script_of(PAGE, "outside_fit.py"))
    lines = PAGE.read_text().splitlines()
    marked = [
        code for language, line, code, _ in _blocks(PAGE)
        if language == "bash" and lines[line - 2].strip() == "<!-- walk-through -->"
    ]  # fmt: skip
    assert len(marked) == 1
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in marked[0].replace("\\\n", " ").splitlines():
        command = command.split("  #")[0].strip()
        print("$", command)
        done = subprocess.run(shlex.split(command), cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
    board = (tmp_path / "quick-files-report" / "LEADERBOARD.md").read_text()
    assert "abc_numpy" in board and "snpe_c" in board
