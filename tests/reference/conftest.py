"""A copy of a task's reference folder, to damage."""

import shutil

import pytest

from sbibench import get_task
from sbibench.reference.store import reference_dir


@pytest.fixture
def copy(tmp_path):
    """poisson_gamma and a copy of its reference folder, to edit."""
    task = get_task("poisson_gamma")
    folder = tmp_path / task.name
    shutil.copytree(reference_dir(task), folder)
    return task, folder
