"""Shared test fixtures: every test runs with a forked, seeded global RNG."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded_rng():
    """Fork torch's global RNG and seed it, so no test leaks randomness into another."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    """Two cores are shared between pytest and anything else running: use one thread."""
    torch.set_num_threads(1)
