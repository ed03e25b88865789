"""SMC-ABC: population Monte Carlo ABC with an adaptive tolerance (Beaumont et al. 2009).

Round 0 simulates ``initial_factor * population_size`` parameters from the prior and keeps the
``population_size`` closest (distances as in rejection ABC). Each later round sets the tolerance
to the ``quantile`` of the current population's distances, proposes by picking a particle by its
weight and perturbing it with a Gaussian kernel of ``kernel_scale`` times the population's
weighted covariance, simulates, and keeps proposals within the tolerance until a new population
is full. Weights are w_i ∝ p(u_i) / sum_j w_j K(u_i | u_j). Particles live in the unconstrained
space u = T^-1(theta) (prior density with its Jacobian), so perturbations never leave the
support. The run stops when the budget is spent; the last population (complete, or at least
half full) is the result.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import MultivariateNormal

from sbibench.methods.base import (
    Bookkeeping,
    SimulationBudget,
    Timings,
    check_observation,
    log_prior_unconstrained,
    require_valid,
    seeded,
    unconstrained,
)
from sbibench.methods.posteriors import ParticlePosterior, scaled_distance
from sbibench.methods.settings import check_settings, fraction, positive, setting, whole
from sbibench.task import Task

__all__ = ["SMCABC"]


@dataclasses.dataclass(frozen=True)
class SMCABC:
    """Population Monte Carlo ABC (sequential: per observation).

    Arguments:
        population_size: particles per population; None (the default) for sbibm's rule, 100
            up to 10,000 simulations and 1,000 above (sbibm 1.1.0 ``algorithms/sbi/smcabc.py``).
        initial_factor: round 0 simulates this many populations' worth from the prior.
        quantile: each tolerance is this quantile of the last population's distances.
        kernel_scale: the perturbation covariance is this times the weighted covariance
            (2, as Beaumont et al. 2009 derive; sbibm uses 0.5).
        kde: draw final samples from a Gaussian KDE on the weighted population.
    """

    name: ClassVar[str] = "smc_abc"
    population_size: int | None = setting(None, whole(2))
    initial_factor: int = 5
    quantile: float = setting(0.5, fraction)
    kernel_scale: float = setting(2.0, positive)
    kde: bool = True

    def population(self, num_simulations: int) -> int:
        """Particles per population at this budget."""
        if self.population_size is not None:
            return self.population_size
        return 1000 if num_simulations > 10_000 else 100

    def run(
        self, task: Task, observation: Tensor, num_simulations: int, seed: int
    ) -> ParticlePosterior:
        check_settings(self)
        observation = check_observation(observation, task, batch=False)
        size = self.population(num_simulations)
        timings = Timings()
        transform = unconstrained(task)
        with seeded(seed) as generator:
            budget = SimulationBudget(task, num_simulations, generator, timings)
            theta, x = budget.prior_predictive(min(self.initial_factor * size, num_simulations))
            require_valid(x, budget)
            summaries = task.summary(x)
            observed = task.summary(observation.unsqueeze(0))[0]
            scale = summaries.std(0) if len(summaries) > 1 else torch.ones_like(observed)

            def distance(s: Tensor) -> Tensor:
                return scaled_distance(s, observed, scale)

            d = distance(summaries)
            keep = d.topk(min(size, len(d)), largest=False).indices
            u, d = transform.inv(theta[keep]), d[keep]
            weights = torch.full((len(u),), 1.0 / len(u), dtype=torch.float64)
            simulating = timings.simulate
            with timings.phase("train"):
                while budget.remaining > 0:
                    step = self._next_population(
                        task, budget, u, d, weights, distance, generator, size
                    )
                    if step is None:
                        break
                    u, d, weights = step
            timings.train -= timings.simulate - simulating  # rounds' simulations count apart
        return ParticlePosterior(task, observation, u, weights, self.kde, Bookkeeping.of(budget))

    def _next_population(
        self,
        task: Task,
        budget: SimulationBudget,
        u: Tensor,
        d: Tensor,
        weights: Tensor,
        distance: Callable[[Tensor], Tensor],
        generator: torch.Generator,
        size: int,
    ) -> tuple[Tensor, Tensor, Tensor] | None:
        """One round. When the budget runs out first, the accepted particles still form a valid
        (smaller) weighted population at the new tolerance: it is used if it holds at least
        half a population, else the round is dropped (None)."""
        transform = unconstrained(task)
        tolerance = torch.quantile(d, self.quantile)
        centred = u - weights @ u
        covariance = self.kernel_scale * (weights.unsqueeze(-1) * centred).T @ centred
        covariance = covariance + 1e-10 * torch.eye(u.shape[1], dtype=u.dtype)
        kernel_tril = torch.linalg.cholesky(covariance)
        accepted_u, accepted_d, count = [], [], 0
        while count < size:
            if budget.remaining == 0:
                if count < size // 2:
                    return None
                break
            wanted = math.ceil((size - count) / self.quantile)
            batch = min(budget.remaining, wanted)
            pick = torch.multinomial(weights, batch, replacement=True, generator=generator)
            noise = torch.randn(batch, u.shape[1], generator=generator, dtype=u.dtype)
            proposal = u[pick] + noise @ kernel_tril.T
            theta, x = budget.simulate(transform(proposal))
            if len(x) == 0:
                continue
            new_d = distance(task.summary(x))
            inside = new_d <= tolerance
            accepted_u.append(transform.inv(theta[inside]))
            accepted_d.append(new_d[inside])
            count += int(inside.sum())
        new_u = torch.cat(accepted_u)[:size]
        new_d = torch.cat(accepted_d)[:size]
        # Importance weights in u-space: prior density (with Jacobian) over the mixture of
        # perturbation kernels that proposed them.
        log_prior = log_prior_unconstrained(task, new_u)
        kernel = MultivariateNormal(torch.zeros(u.shape[1], dtype=u.dtype), scale_tril=kernel_tril)
        log_kernel = kernel.log_prob(new_u.unsqueeze(1) - u.unsqueeze(0))  # (P_new, P_old)
        log_proposal = torch.logsumexp(log_kernel + weights.log(), dim=1)
        new_weights = torch.softmax(log_prior - log_proposal, dim=0)
        return new_u, new_d, new_weights
