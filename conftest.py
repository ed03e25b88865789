"""Doctests run as the tests do: each `Example:` block in sbibench/ on a forked, seeded RNG and
one torch thread. tests/conftest.py defines the same fixtures for tests/, where they win."""

import pytest
import torch


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
