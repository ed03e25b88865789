"""Published records name the commit that made them: a run from a checkout whose package has
uncommitted changes is refused unless allowed, and what it records says "-dirty". Each test
runs a copy of the package committed into a fresh git repository, so the developer's own
checkout and its state play no part."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sbibench
from sbibench.paths import data_dir

GIT = ["git", "-c", "user.name=u", "-c", "user.email=u@u"]


@pytest.fixture
def checkout(tmp_path):
    """A source checkout of sbibench: the package, pyproject.toml, the task cards and
    reference posteriors (linked), a results file, all committed."""
    root = tmp_path / "checkout"
    shutil.copytree(
        os.path.dirname(sbibench.__file__), root / "sbibench",
        ignore=shutil.ignore_patterns("__pycache__", "_data"),
    )  # fmt: skip
    (root / "pyproject.toml").write_text('[project]\nname = "sbibench"\n')
    for folder in ("tasks", "reference_posteriors"):
        (root / folder).symlink_to(Path(data_dir()) / folder)
    (root / "results").mkdir()
    (root / "results" / "results.csv").write_text("a\n1\n")
    (root / ".gitignore").write_text("__pycache__/\n")
    for command in (["init", "-q"], ["add", "."], ["commit", "-qm", "sbibench"]):
        subprocess.run([*GIT, *command], cwd=root, check=True)
    return root


def _python(root: Path, code: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                            capture_output=True, text=True, check=True)  # fmt: skip
    return result.stdout.strip()


def _commit(root: Path) -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip


def test_only_changes_to_the_package_make_the_revision_dirty(checkout, tmp_path):
    """Results and docs written beside the package leave the revision clean; a changed or a
    new file inside the package makes it "<commit>-dirty", and `package_changes` names it."""
    code = (
        "from sbibench.records import package_changes as p, sbibench_revision as r; "
        "print(r(), '|', ';'.join(p()))"
    )
    commit = _commit(checkout)
    assert _python(checkout, code, tmp_path) == f"{commit} |"
    (checkout / "results" / "results.csv").write_text("a\n2\n")  # a run's table, rebuilt
    (checkout / "NOTES.md").write_text("new\n")
    assert _python(checkout, code, tmp_path) == f"{commit} |"
    (checkout / "sbibench" / "mine.py").write_text("x = 1\n")  # a new module, not yet added
    revision, changes = _python(checkout, code, tmp_path).split("|")
    assert revision.strip() == f"{commit}-dirty" and changes.strip() == "sbibench/mine.py"
    (checkout / "sbibench" / "mine.py").unlink()
    with (checkout / "sbibench" / "task.py").open("a") as file:
        file.write("\n# an edit\n")
    revision, changes = _python(checkout, code, tmp_path).split("|")
    assert revision.strip() == f"{commit}-dirty" and changes.strip() == "sbibench/task.py"


def test_run_from_a_dirty_package_is_refused_unless_allowed(checkout, tmp_path, suite_file):
    """`sbibench run` refuses before any work, naming the changed file; with --allow-dirty it
    runs, and its records name the revision "<commit>-dirty" (the report marks them)."""
    import json

    suite = suite_file(tasks=("normal_mean",), methods={"exact": {}}, observations=(1,),
                       metrics=("moments",), sbc=None)  # fmt: skip
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sbibench", "run", str(suite), "--out", str(out),
               "--executor", "serial", "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    with (checkout / "sbibench" / "task.py").open("a") as file:
        file.write("\n# an edit\n")
    refused = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert refused.returncode != 0
    assert "uncommitted changes (sbibench/task.py)" in refused.stderr
    assert "--allow-dirty" in refused.stderr and not out.exists()
    allowed = subprocess.run([*command, "--allow-dirty"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
    (record_file,) = (out / "records").glob("*.json")
    (record,) = json.loads(record_file.read_text())["records"]
    assert record["git_revision"] == f"{_commit(checkout)}-dirty"
    subprocess.run([*GIT, "commit", "-qam", "the edit"], cwd=checkout, check=True)
    # Committed, the same code runs without the flag; the record it made is still today's.
    clean = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    assert "1 runs: 1 already done" in clean.stdout
