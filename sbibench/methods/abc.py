"""Rejection ABC, and the pieces ABC methods share: distances, a KDE posterior over particles.

Rejection ABC (Pritchard et al. 1999; as in sbibm): simulate the whole budget from the prior,
keep the ``num_accepted`` parameters whose summaries are closest to the observation's
(Euclidean distance after dividing each summary by its standard deviation over the
simulations), optionally correct them by linear regression on the summaries (Beaumont et al.
2002), and draw posterior samples from a Gaussian KDE on the accepted set. The regression and
the KDE work in the unconstrained space ``u = T^-1(theta)`` so no draw leaves the prior's support.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor

from sbibench.methods.base import SimulationBudget, Timings, check_observation, unconstrained
from sbibench.methods.posteriors import check_own_observation, record_budget, sample_observations
from sbibench.methods.training import prior_simulations
from sbibench.task import Task

__all__ = ["ParticlePosterior", "RejectionABC", "scaled_distance"]


def scaled_distance(summaries: Tensor, observed: Tensor, scale: Tensor) -> Tensor:
    """Euclidean distance of (N, S) summaries to (S,) observed ones, each summary divided by
    its ``scale`` (S,) (a zero scale counts as 1: a constant summary adds nothing)."""
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return ((summaries - observed) / scale).norm(dim=-1)


class ParticlePosterior:
    """A posterior given by weighted particles for one observation, sampled by a Gaussian
    KDE in the unconstrained space (Scott's bandwidth on the effective sample size), or by
    plain resampling when ``kde`` is false.

    Arguments:
        task: the task (for the support transform and shapes).
        observation: the (M,) observation these particles are for.
        particles: (P, D) particles in the unconstrained space.
        weights: (P,) normalised importance weights, or None for equal weights.
        kde: smooth the resampled particles with the Gaussian kernel.
    """

    def __init__(
        self,
        task: Task,
        observation: Tensor,
        particles: Tensor,
        weights: Tensor | None,
        kde: bool,
        budget: SimulationBudget,
        timings: Timings,
    ) -> None:
        self.task = task
        self.observation = observation
        self.particles = particles
        count = particles.shape[0]
        self.weights = weights if weights is not None else torch.full((count,), 1.0 / count)
        self.weights = self.weights.double()
        self.kde = kde
        record_budget(self, budget, timings)
        self._transform = unconstrained(task)
        effective = 1 / (self.weights**2).sum()
        dim = particles.shape[1]
        centred = particles - self.weights @ particles
        covariance = (self.weights.unsqueeze(-1) * centred).T @ centred
        jitter = 1e-12 * torch.eye(dim, dtype=covariance.dtype)
        bandwidth = effective ** (-1.0 / (dim + 4))  # Scott's rule
        self._kernel_tril = bandwidth * torch.linalg.cholesky(covariance + jitter)

    def sample(self, n: int, x: Tensor, seed: int | None = None) -> Tensor:
        """(n, D) draws for this posterior's observation ``x`` (M,)."""
        x = check_own_observation(
            x, self.task, self.observation,
            message="this ABC posterior was run for another observation; ABC is not amortized",
        )  # fmt: skip
        with self.timings.phase("sample"):
            return sample_observations(self._draw, n, x, seed)

    def _draw(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        index = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        u = self.particles[index]
        if self.kde:
            noise = torch.randn(n, u.shape[1], generator=generator, dtype=u.dtype)
            u = u + noise @ self._kernel_tril.T
        return self._transform(u)


@dataclasses.dataclass(frozen=True)
class RejectionABC:
    """Rejection ABC with optional regression adjustment and KDE (sequential: per observation).

    Arguments:
        num_accepted: how many of the closest simulations to keep (sbibm's default, 100).
        regression_adjustment: Beaumont et al. (2002) linear correction of accepted parameters.
        kde: draw from a Gaussian KDE on the accepted set (else resample them).
    """

    name: ClassVar[str] = "rej_abc"
    num_accepted: int = 100
    regression_adjustment: bool = False
    kde: bool = True

    def run(
        self, task: Task, observation: Tensor, num_simulations: int, seed: int
    ) -> ParticlePosterior:
        """Simulate ``num_simulations`` from the prior and accept the closest."""
        observation = check_observation(observation, task, batch=False)
        if self.num_accepted < 2:
            raise ValueError(f"num_accepted must be >= 2, got {self.num_accepted}")
        with prior_simulations(task, num_simulations, seed) as run:
            theta, x = run.theta, run.x
            summaries = task.summary(x)
            observed = task.summary(observation.unsqueeze(0))[0]
            distance = scaled_distance(summaries, observed, summaries.std(0))
            keep = distance.topk(min(self.num_accepted, len(distance)), largest=False).indices
            u = unconstrained(task).inv(theta[keep])
            if self.regression_adjustment:
                u = _regression_adjust(u, summaries[keep], observed)
        return ParticlePosterior(task, observation, u, None, self.kde, run.budget, run.timings)


def _regression_adjust(u: Tensor, summaries: Tensor, observed: Tensor) -> Tensor:
    """Beaumont et al. (2002): u_i - (s_i - s_o) beta, beta from least squares of u on s."""
    design = torch.cat([torch.ones(len(summaries), 1, dtype=u.dtype), summaries - observed], 1)
    beta = torch.linalg.lstsq(design, u).solution[1:]
    return u - (summaries - observed) @ beta
