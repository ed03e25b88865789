"""Every test and every doctest (the `Example:` blocks in sbibench/) runs on a forked, seeded
global RNG, so none leaks randomness into another, and with one torch thread. Noise floors at
sizes no reference stores are cached in a folder of the test session's own, not the user's."""

import os
import tempfile

import pytest
import torch

# Set before any job process starts, so they all share it (and nothing from an earlier session).
os.environ["SBIBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="sbibench-test-cache-")


@pytest.fixture(autouse=True)
def _seeded_rng():
    """Fork torch's global RNG and seed it, so an example's numbers are the same every run."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    """One thread, as the tests use: two cores are shared."""
    torch.set_num_threads(1)


def pytest_xdist_auto_num_workers(config):
    """`-n auto` starts one test process per CPU this process may use (affinity mask, cgroup
    quota), not per CPU of the host: each test runs one torch thread."""
    from sbibench.run.cpus import available_cpus

    return available_cpus()
