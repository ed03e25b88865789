"""Shared test fixtures (the seeded RNG and the one thread come from the root conftest.py)."""

import pytest

TINY_SUITE = """\
name = "tiny"
description = "a test grid"
tasks = ["normal_mean", "poisson_gamma"]
budgets = [200]
seeds = [0]
observations = [1, 2]
num_posterior_samples = 500
metrics = ["c2st", "mmd", "wasserstein", "moments", "nll"]

[sbc]
num_datasets = 40
num_posterior_samples = 20

[methods.exact]
[methods.rej_abc]
num_accepted = 20
[methods.npe]
max_epochs = 3
"""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished run folder of a small real grid, shared by the report and check tests."""
    from sbibench.run.runner import run_suite
    from sbibench.run.suite import load_suite

    folder = tmp_path_factory.mktemp("tiny")
    (folder / "tiny.toml").write_text(TINY_SUITE)
    run_suite(load_suite(folder / "tiny.toml"), folder / "run", progress=False)
    return folder / "run"


@pytest.fixture
def tiny_suite():
    """The text of a small real suite: 2 tasks, 3 methods, 2 observations."""
    return TINY_SUITE
