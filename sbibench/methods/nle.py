"""Neural likelihood estimation: NLE and sequential NLE (Papamakarios et al. 2019, "SNL").

NLE fits a conditional density estimator q_phi(x | u) of the data given u = T^-1(theta) by
maximum likelihood, minimising  -E_{(theta, x)} [log q_phi(x | T^-1(theta))]  over the
simulations, and samples the posterior  p(theta | x_o) ∝ q_phi(x_o | u) p_u(u)  by vectorised MCMC
(`sbibench.methods.mcmc_posterior`). The estimator does not depend on the distribution the
parameters were drawn from, so one fit serves every observation (``nle``) and the sequential
version (``snle``) pools the simulations of all rounds without any correction: round 1 draws
from the prior, each later round from the current MCMC posterior for x_o.

With ``summary=True`` the estimator models the task's summary statistics s(x) instead of x
(sufficient statistics for the i.i.d. tasks: the analogue of NPE's DeepSet embedding, since the
data are what NLE models and cannot be embedded).

Defaults mirror sbi's NLE: a MAF of 5 transforms with 2 x 50 hidden units (``estimator="nsf"``
for a spline flow), sbi's training settings, and slice sampling with 100 chains.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor

from sbibench.methods.base import (
    SimulationBudget,
    Timings,
    check_observation,
    require_valid,
    seeded,
    unconstrained,
)
from sbibench.methods.mcmc_posterior import MCMCPosterior, MCMCSettings, Potential
from sbibench.methods.npe import NeuralConfig, fit_settings
from sbibench.methods.snpe import round_sizes
from sbibench.nn import Estimator, build_estimator, train
from sbibench.task import Task

__all__ = ["NLE", "SNLE", "likelihood_potential"]


def likelihood_potential(estimator: Estimator, task: Task, summary: bool) -> Potential:
    """log q(x | u) of a frozen estimator: u (K, D) and x (K, M) -> (K,) float64."""
    estimator = estimator.eval().requires_grad_(False)

    def potential(u: Tensor, x: Tensor) -> Tensor:
        data = task.summary(x) if summary else x
        return estimator.log_prob(data.float(), u.float()).double()

    return potential


@dataclasses.dataclass(frozen=True)
class NLE(NeuralConfig, MCMCSettings):
    """Amortized neural likelihood estimation; see the module docstring.

    Arguments (beyond `NeuralConfig` and `MCMCSettings`):
        summary: model the task's summary statistics s(x) rather than x.
    """

    name: ClassVar[str] = "nle"
    amortized: ClassVar[bool] = True
    summary: bool = False

    def _check(self) -> None:
        self.check_mcmc()
        if self.embedding is not None:
            raise ValueError("embedding must be None for NLE (it models x); use summary=True")

    def _data(self, task: Task, x: Tensor) -> Tensor:
        return (task.summary(x) if self.summary else x).float()

    def _estimator(self, task: Task, u: Tensor, data: Tensor) -> Estimator:
        estimator = build_estimator(
            self.estimator, data.shape[1], task.dim_parameters, **self.estimator_options
        )
        return estimator.standardize_(data, u)

    def _train(self, estimator: Estimator, u: Tensor, data: Tensor, seed: int) -> None:
        def loss(data_: Tensor, u_: Tensor) -> Tensor:
            return -estimator.log_prob(data_, u_).mean()

        train(estimator, loss, (data, u), **fit_settings(self, seed))

    def fit(self, task: Task, num_simulations: int, seed: int) -> MCMCPosterior:
        self._check()
        timings = Timings()
        with seeded(seed) as generator:
            budget = SimulationBudget(task, num_simulations, generator, timings)
            theta, x = budget.prior_predictive(num_simulations)
            require_valid(x, budget)
            with timings.phase("train"):
                u, data = unconstrained(task).inv(theta).float(), self._data(task, x)
                estimator = self._estimator(task, u, data)
                self._train(estimator, u, data, seed)
        potential = likelihood_potential(estimator, task, self.summary)
        return MCMCPosterior(potential, task, self, budget, timings)


@dataclasses.dataclass(frozen=True)
class SNLE(NLE):
    """Sequential NLE: ``rounds`` equal parts of the budget; see the module docstring."""

    name: ClassVar[str] = "snle"
    amortized: ClassVar[bool] = False
    rounds: int = 10

    def run(
        self, task: Task, observation: Tensor, num_simulations: int, seed: int
    ) -> MCMCPosterior:
        self._check()
        observation = check_observation(observation, task, batch=False)
        timings = Timings()
        transform = unconstrained(task)
        with seeded(seed) as generator:
            budget = SimulationBudget(task, num_simulations, generator, timings)
            us, datas, estimator, posterior = [], [], None, None
            for r, size in enumerate(round_sizes(num_simulations, self.rounds)):
                if posterior is None:
                    theta = budget.sample_prior(size)
                else:
                    with timings.phase("propose"):
                        u = posterior.independent_u(size, observation.unsqueeze(0), generator)[:, 0]
                    theta = transform(u)
                theta, x = budget.simulate(theta)
                us.append(transform.inv(theta).float())
                datas.append(self._data(task, x))
                u, data = torch.cat(us), torch.cat(datas)
                require_valid(data, budget)
                with timings.phase("train"):
                    if estimator is None:  # z-scoring from the prior's round, as sbi does
                        estimator = self._estimator(task, u, data)
                    estimator.train().requires_grad_(True)
                    self._train(estimator, u, data, seed + r)
                potential = likelihood_potential(estimator, task, self.summary)
                posterior = MCMCPosterior(potential, task, self, budget, timings, observation)
        posterior.num_simulations_used = budget.used
        posterior.num_invalid_simulations = budget.invalid
        return posterior
