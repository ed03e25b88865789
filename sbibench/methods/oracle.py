"""Oracles that use the task's exact posterior or likelihood: what a perfect method scores."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor

from sbibench.methods.base import Bookkeeping
from sbibench.methods.posteriors import BasePosterior
from sbibench.models.common import sample
from sbibench.task import Task

__all__ = ["Exact", "ExactPosterior"]


class ExactPosterior(BasePosterior):
    """The task's analytic posterior behind the `Posterior` interface (no simulations)."""

    def __init__(self, task: Task) -> None:
        super().__init__(task, Bookkeeping())

    def _draw(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return sample(self.task.posterior(x), n, generator)

    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log p(theta | x), exact: (N, D) and (M,) -> (N,)."""
        x = self.check(x)
        return self.task.posterior(x).log_prob(theta.double())


@dataclasses.dataclass(frozen=True)
class Exact:
    """The exact posterior as a method: its scores are the noise floor of every metric, and
    its calibration is what the SBC and coverage checks accept at their nominal rate."""

    name: ClassVar[str] = "exact"
    amortized: ClassVar[bool] = True

    def fit(self, task: Task, num_simulations: int, seed: int) -> ExactPosterior:
        return ExactPosterior(task)
