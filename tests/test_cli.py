"""The sbibench command, run as a real process."""

import os
import shutil
import subprocess
import sys

import sbibench
from sbibench import list_tasks
from sbibench.paths import data_dir


def sbibench_command(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "sbibench", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_version():
    result = sbibench_command("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"sbibench {sbibench.__version__}"


def test_tasks_table_lists_every_task_with_dimensions():
    result = sbibench_command("tasks")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "parameters", "data"]
    assert sorted(line.split()[0] for line in lines[1:]) == list_tasks()
    assert any(line.split()[:3] == ["linear_gaussian", "10", "10"] for line in lines)


def test_verify_passes_on_the_shipped_references():
    result = sbibench_command("reference", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok") == len(list_tasks())


def test_build_then_verify_catches_a_flipped_byte(tmp_path):
    shutil.copytree(data_dir() / "tasks", tmp_path / "tasks")
    env = {"SBIBENCH_DATA_DIR": str(tmp_path)}
    built = sbibench_command("reference", "build", "--task", "normal_mean", env=env)
    assert built.returncode == 0, built.stderr
    assert sbibench_command("reference", "verify", "--task", "normal_mean", env=env).returncode == 0
    path = tmp_path / "reference_posteriors" / "normal_mean" / "true_parameters.csv"
    content = bytearray(path.read_bytes())
    content[-3] = ord("0") if content[-3] != ord("0") else ord("1")
    path.write_bytes(bytes(content))
    result = sbibench_command("reference", "verify", "--task", "normal_mean", env=env)
    assert result.returncode == 1
    assert "normal_mean: FAILED" in result.stdout
    assert f"{path}: sha256 differs" in result.stdout


def test_unknown_task_is_a_clear_error():
    result = sbibench_command("reference", "verify", "--task", "nope")
    assert result.returncode == 2
    assert "unknown task 'nope'; known tasks: linear_gaussian" in result.stderr


def test_help_and_plain_import_stay_light():
    """`sbibench --help` and `import sbibench` must not import pandas, POT or seaborn."""
    code = (
        "import sys, sbibench, sbibench.cli\n"
        "try:\n    sbibench.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pandas', 'ot', 'seaborn', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip().endswith("[]"), result.stdout + result.stderr
