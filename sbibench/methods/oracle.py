"""Oracles that use the task's exact posterior or likelihood: what a perfect method scores."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor

from sbibench.methods.base import Timings, check_observation
from sbibench.methods.posteriors import sample_observations
from sbibench.models.common import sample
from sbibench.task import Task

__all__ = ["Exact", "ExactPosterior"]


class ExactPosterior:
    """The task's analytic posterior behind the `Posterior` interface (no simulations)."""

    num_simulations_used = 0
    num_invalid_simulations = 0

    def __init__(self, task: Task) -> None:
        self.task = task
        self.timings = Timings()

    def _one(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return sample(self.task.posterior(x), n, generator)

    def sample(self, n: int, x: Tensor, seed: int | None = None) -> Tensor:
        x = check_observation(x, self.task, batch=True)
        with self.timings.phase("sample"):
            return sample_observations(self._one, n, x, seed)

    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        x = check_observation(x, self.task, batch=False)
        return self.task.posterior(x).log_prob(theta.double())


@dataclasses.dataclass(frozen=True)
class Exact:
    """The exact posterior as a method: its scores are the noise floor of every metric, and
    its calibration is what the SBC and coverage checks accept at their nominal rate."""

    name: ClassVar[str] = "exact"
    amortized: ClassVar[bool] = True

    def fit(self, task: Task, num_simulations: int, seed: int) -> ExactPosterior:
        return ExactPosterior(task)
