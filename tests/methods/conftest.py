"""Tasks with instrumented simulators, for testing every method through its real code path."""

import dataclasses

import pytest
import torch

from sbibench import get_task


class InstrumentedModel:
    """Delegates to a task's model; counts simulations and, optionally, returns NaN rows for
    the parameters whose first coordinate has a fractional part (x 1000) below ``nan_fraction``
    — a deterministic function of theta that covers that fraction of any region."""

    def __init__(self, model, nan_fraction=0.0):
        self._model = model
        self.nan_fraction = nan_fraction
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def simulate(self, theta, generator=None):
        self.calls += theta.shape[0]
        x = self._model.simulate(theta, generator)
        broken = torch.frac((theta[:, 0] * 1000).abs()) < self.nan_fraction
        x[broken] = float("nan")
        return x


def instrumented(name, nan_fraction=0.0):
    task = get_task(name)
    return dataclasses.replace(task, model=InstrumentedModel(task.model, nan_fraction))


@pytest.fixture
def make_task():
    return instrumented
