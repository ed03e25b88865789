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

Discrete data (``task.discrete_data``: whole-number counts) are dequantised (Uria et al. 2013;
Theis et al. 2016): the flow is fitted to y = x + v, v ~ U(0, 1)^M drawn afresh for every
minibatch (a fixed draw for the validation loss), whose density p(y | u) = P(floor(y) | u) is
constant on each unit cell, so that a continuous flow is not rewarded for spikes at the
integers. The potential is log q(x_o + 1/2 | u), the cell's centre: for the exact dequantised
density any point of the cell gives log P(x_o | u), so the likelihood in theta is exact, and
the centre is the point farthest from the steps at the cell's faces that a smooth flow can only
round off. (The cell average log mean_j q(x_o + v_j | u) over fixed draws v_j also converges to
it, at the cost of one flow evaluation per draw in every MCMC step.) The summary statistics of
counts do not lie on a unit lattice, so ``summary=True`` models them as they are.

i.i.d. sets of varying size (``task.padded_sets``: each row holds n scalar draws, NaN-padded to
M; `sbibench.models.iid_sets`) are modelled element by element, as sbi does for i.i.d. data:
the estimator learns the density q_phi(x_j | u) of one element from every present element of
every simulated set (each pair (x_ij, u_i) is a draw from p(x | theta) p(theta), since n is
drawn independently of theta), and the potential of an observation with n present elements is
sum_j log q_phi(x_o,j | u), the i.i.d. likelihood. One fit serves every n (amortized over the
set size) and no embedding is needed: the data are the density's target, not its context, so
an embedding (NPE's DeepSet) has no place in NLE; the sum over elements is NLE's counterpart
of the DeepSet's pooling. ``embedding`` and ``summary=True`` are refused for such a task.

Defaults mirror sbi's NLE: a MAF of 5 transforms with 2 x 50 hidden units (``estimator="nsf"``
for a spline flow), sbi's training settings, and slice sampling with 100 chains.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor

from sbibench.methods.base import check_observation, dim_unconstrained
from sbibench.methods.mcmc_posterior import MCMCPosterior, MCMCSettings, Potential
from sbibench.methods.settings import check_settings
from sbibench.methods.training import (
    EstimatorSettings,
    RoundsSettings,
    TrainingSettings,
    mcmc_rounds,
    prior_simulations,
)
from sbibench.nn import Estimator, build_estimator, train
from sbibench.task import Task

__all__ = ["NLE", "SNLE", "likelihood_potential", "set_elements"]


def _dequantised(task: Task, summary: bool) -> bool:
    return task.discrete_data and not summary


def set_elements(u: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The present elements of padded sets x (N, M) as (E, 1), their parameters u (N, d)
    repeated as (E, d), and the row (E,) int64 each element comes from."""
    present = ~torch.isnan(x)
    rows = present.nonzero()[:, 0]
    return x[present].unsqueeze(-1), u[rows], rows


def likelihood_potential(estimator: Estimator, task: Task, summary: bool) -> Potential:
    """log q(x | u) of a frozen estimator: u (K, D) and x (K, M) -> (K,) float64 (at the
    centre x + 1/2 of x's unit cell for dequantised data; for padded sets, the sum of the
    element density over the present elements; see the module docstring)."""
    estimator = estimator.eval().requires_grad_(False)
    centre = 0.5 if _dequantised(task, summary) else 0.0
    if task.padded_sets:

        def potential(u: Tensor, x: Tensor) -> Tensor:
            x = x.expand(u.shape[0], -1) if x.ndim == 1 else x
            elements, u_rows, rows = set_elements(u.float(), x.float())
            log_q = estimator.log_prob(elements, u_rows).double()
            return torch.zeros(u.shape[0], dtype=torch.float64).index_add(0, rows, log_q)

        return potential

    def potential(u: Tensor, x: Tensor) -> Tensor:
        data = task.summary(x) if summary else x + centre
        return estimator.log_prob(data.float(), u.float()).double()

    return potential


def _check(config: NLE | SNLE, task: Task) -> None:
    check_settings(config)
    if task.padded_sets and (config.embedding is not None or config.summary):
        raise ValueError(
            f"task {task.name!r} has i.i.d. sets of varying size: NLE models their elements "
            "one by one (see sbibench.methods.nle), so embedding must be None and summary False"
        )
    if config.embedding is not None:
        raise ValueError("embedding must be None for NLE (it models x); use summary=True")


def _data(config: NLE | SNLE, task: Task, x: Tensor) -> Tensor:
    return (task.summary(x) if config.summary else x).float()


def _estimator(config: NLE | SNLE, task: Task, u: Tensor, data: Tensor) -> Estimator:
    if task.padded_sets:  # the density of one element
        data, u, _ = set_elements(u, data)
    estimator = build_estimator(
        config.estimator, data.shape[1], dim_unconstrained(task), **config.estimator_options
    )
    centre = 0.5 if _dequantised(task, config.summary) else 0.0  # the mean of x + v
    return estimator.standardize_(data + centre, u)


def _train(config: NLE | SNLE, estimator: Estimator, u: Tensor, data: Tensor,
           settings: dict[str, Any], task: Task) -> None:  # fmt: skip
    """Fit ``estimator`` to the data given u with the training ``settings``
    (`TrainingSettings.fit_settings`)."""
    dequantise = _dequantised(task, config.summary)
    if task.padded_sets:  # every present element, paired with its set's parameters
        data, u, _ = set_elements(u, data)

    def loss(data_: Tensor, u_: Tensor) -> Tensor:
        if dequantise:  # fresh noise in training, the same draw for every validation pass
            generator = None if estimator.training else torch.Generator().manual_seed(0)
            data_ = data_ + torch.rand(data_.shape, generator=generator)
        return -estimator.log_prob(data_, u_).mean()

    train(estimator, loss, (data, u), **settings)


@dataclasses.dataclass(frozen=True)
class NLE(EstimatorSettings, MCMCSettings, TrainingSettings):
    """Amortized neural likelihood estimation; see the module docstring.

    Arguments (beyond `EstimatorSettings`, `MCMCSettings` and `TrainingSettings`):
        summary: model the task's summary statistics s(x) rather than x.
    """

    name: ClassVar[str] = "nle"
    amortized: ClassVar[bool] = True
    summary: bool = False

    def fit(self, task: Task, num_simulations: int, seed: int) -> MCMCPosterior:
        _check(self, task)
        with prior_simulations(task, num_simulations, seed) as run:
            u, data = run.u, _data(self, task, run.x)
            estimator = _estimator(self, task, u, data)
            _train(self, estimator, u, data, self.fit_settings(seed), task)
        potential = likelihood_potential(estimator, task, self.summary)
        return MCMCPosterior(potential, task, self, run.bookkeeping)


@dataclasses.dataclass(frozen=True)
class SNLE(EstimatorSettings, MCMCSettings, RoundsSettings, TrainingSettings):
    """Sequential NLE: ``rounds`` equal parts of the budget; see the module docstring."""

    name: ClassVar[str] = "snle"
    summary: bool = False

    def run(
        self, task: Task, observation: Tensor, num_simulations: int, seed: int
    ) -> MCMCPosterior:
        _check(self, task)
        observation = check_observation(observation, task, batch=False)
        estimators: list[Estimator] = []  # built in round 1

        def learn(r: int, u: Tensor, data: Tensor) -> Potential:
            if r == 0:  # z-scoring from the prior's round, as sbi does
                estimators.append(_estimator(self, task, u, data))
            estimator = estimators[0]
            estimator.train().requires_grad_(True)
            settings = self.round_fit_settings(seed + r, num_simulations)
            _train(self, estimator, u, data, settings, task)
            return likelihood_potential(estimator, task, self.summary)

        def data(x: Tensor) -> Tensor:
            return _data(self, task, x)

        return mcmc_rounds(task, observation, self, num_simulations, self.rounds, seed, learn, data)
