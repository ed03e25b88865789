"""Neural posterior estimation (NPE; Papamakarios & Murray 2016, Greenberg et al. 2019).

NPE simulates the whole budget from the prior and fits a conditional density estimator
q_phi(u | x) by maximum likelihood, minimising  -E_{(theta, x) ~ p(theta) p(x | theta)}
[log q_phi(T^-1(theta) | x)], where u = T^-1(theta) maps the prior's support onto R^D. One fit
serves every observation (amortized). The posterior density is
log q(theta | x) = log q_phi(u | x) - log|det dT/du|, and samples T(u) never leave the support.

``space = "constrained"`` fits q_phi(theta | x) on theta itself, as sbi and sbibm's NPE do: the
estimator then puts some mass outside the prior's support ("leakage"), its draws outside are
rejected, and its density is divided by the mass inside, estimated from 10,000 draws
(sbi's leakage correction). A prior on the simplex has no density in D dimensions, so it
stays unconstrained.

Defaults mirror the sbi package's NPE: a MAF of 5 transforms with 2 x 50 hidden units, z-scored
parameters and data, Adam at 5e-4, batches of 200, 10% validation, stop after 20 epochs
without improvement, gradient norm clipped at 5.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from sbibench.methods.posteriors import BasePosterior, NeuralPosterior, TruncatedPosterior
from sbibench.methods.training import (
    EstimatorSettings,
    SpaceSettings,
    TrainingSettings,
    prior_simulations,
)
from sbibench.nn import train
from sbibench.task import Task

__all__ = ["NPE"]


@dataclasses.dataclass(frozen=True)
class NPE(EstimatorSettings, SpaceSettings, TrainingSettings):
    """Amortized neural posterior estimation; see the module docstring (``space``:
    `SpaceSettings`)."""

    name: ClassVar[str] = "npe"
    amortized: ClassVar[bool] = True

    def fit(self, task: Task, num_simulations: int, seed: int) -> BasePosterior:
        constrained = self.constrained(task)
        with prior_simulations(task, num_simulations, seed) as run:
            u = run.theta.float() if constrained else run.u
            x = run.x.float()
            estimator = self.build(task, u, x)
            train(
                estimator,
                lambda u_, x_: -estimator.log_prob(u_, x_).mean(),
                (u, x),
                **self.fit_settings(seed),
            )
        if constrained:
            return TruncatedPosterior(estimator, task, run.bookkeeping)
        return NeuralPosterior(estimator, task, run.bookkeeping)
