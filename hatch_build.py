"""Build hook: record the commit a wheel was built from as ``sbibench/_data/REVISION``, so an
installed (not editable) sbibench can name its own code revision in every record."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _git(root: str, *args: str) -> str:
    try:
        result = subprocess.run(
            ["git", "-C", root, *args], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout (an sdist)
        return ""
    return result.stdout.strip()


class RevisionHook(BuildHookInterface):
    """Write the short commit ("-dirty" when tracked files changed) into the wheel."""

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or version == "editable":
            return  # an editable install reads its revision from the checkout itself
        revision = _git(self.root, "rev-parse", "--short", "HEAD")
        if not revision:
            return
        if _git(self.root, "status", "--porcelain", "--untracked-files=no"):
            revision += "-dirty"
        path = Path(tempfile.mkdtemp()) / "REVISION"
        path.write_text(revision + "\n")
        build_data["force_include"][str(path)] = "sbibench/_data/REVISION"
