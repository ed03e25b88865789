"""Neural posterior estimation (NPE; Papamakarios & Murray 2016, Greenberg et al. 2019).

NPE simulates the whole budget from the prior and fits a conditional density estimator
q_phi(u | x) by maximum likelihood, minimising  -E_{(theta, x) ~ p(theta) p(x | theta)}
[log q_phi(T^-1(theta) | x)], where u = T^-1(theta) maps the prior's support onto R^D. One fit
serves every observation (amortized). The posterior density is
log q(theta | x) = log q_phi(u | x) - log|det dT/du|, and samples T(u) never leave the support.

Defaults mirror the sbi package's NPE: a MAF of 5 transforms with 2 x 50 hidden units, z-scored
parameters and data, Adam at 5e-4, batches of 200, 10% validation, stop after 20 epochs
without improvement, gradient norm clipped at 5.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sbibench.methods.base import (
    SimulationBudget,
    Timings,
    check_observation,
    log_abs_det,
    observation_generator,
    require_valid,
    seeded,
    unconstrained,
)
from sbibench.nn import DeepSet, Estimator, build_estimator, train
from sbibench.task import Task

__all__ = ["NPE", "NeuralConfig", "NeuralPosterior", "build", "fit_settings"]


@dataclasses.dataclass(frozen=True)
class NeuralConfig:
    """The estimator and training settings every neural posterior method shares.

    Arguments:
        estimator: ``"maf"``, ``"nsf"``, ``"nsf_coupling"``, ``"realnvp"`` or ``"mdn"``.
        estimator_options: keyword arguments of the estimator's builder.
        embedding: None, or ``"deepset"`` to embed the data as a set of i.i.d. scalars.
        batch_size, learning_rate, validation_fraction, patience, max_epochs, clip_norm:
            the training loop's settings (sbi's defaults; ``max_epochs=None``: no limit).
    """

    estimator: str = "maf"
    estimator_options: dict = dataclasses.field(default_factory=dict)
    embedding: str | None = None
    batch_size: int = 200
    learning_rate: float = 5e-4
    validation_fraction: float = 0.1
    patience: int = 20
    max_epochs: int | None = None
    clip_norm: float | None = 5.0


def build(config: NeuralConfig, task: Task, u: Tensor, x: Tensor) -> Estimator:
    """The configured estimator of u (N, D) given x (N, M), z-scored on these data."""
    embedding: nn.Module | None = None
    context = task.dim_data
    if config.embedding == "deepset":
        context = 20
        embedding = nn.Sequential(nn.Unflatten(-1, (task.dim_data, 1)), DeepSet(1, context))
    elif config.embedding is not None:
        raise ValueError(f"embedding must be None or 'deepset', got {config.embedding!r}")
    estimator = build_estimator(
        config.estimator, task.dim_parameters, context, embedding=embedding,
        **config.estimator_options,
    )  # fmt: skip
    return estimator.standardize_(u, x)


def fit_settings(config: NeuralConfig, seed: int) -> dict[str, Any]:
    """Keyword arguments of `sbibench.nn.train` from a config."""
    return {
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "validation_fraction": config.validation_fraction,
        "patience": config.patience,
        "max_epochs": config.max_epochs,
        "clip_norm": config.clip_norm,
        "seed": seed,
    }


class NeuralPosterior:
    """q(theta | x) from a conditional estimator of u = T^-1(theta) (amortized).

    ``sample(n, x, seed)``: x (M,) -> (n, D); x (B, M) -> (n, B, D). With a seed, each
    observation's draws come from its own generator (`observation_generator`), so a batch
    gives every observation exactly the draws it would get alone. float64 out. A posterior
    of a sequential method is given its ``observation`` and refuses any other.
    """

    def _check(self, x: Tensor, batch: bool) -> Tensor:
        x = check_observation(x, self.task, batch=batch)
        if self.observation is not None and not torch.equal(x, self.observation):
            raise ValueError("this posterior was trained sequentially for another observation")
        return x

    def __init__(
        self,
        estimator: Estimator,
        task: Task,
        budget: SimulationBudget,
        timings: Timings,
        observation: Tensor | None = None,
    ) -> None:
        self.estimator = estimator.eval()
        self.observation = observation
        self.task = task
        self.transform = unconstrained(task)
        self.num_simulations_used = budget.used
        self.num_invalid_simulations = budget.invalid
        self.timings = timings

    def _one(self, n: int, x: Tensor, seed: int | None) -> Tensor:
        generator = observation_generator(seed, x) if seed is not None else None
        u = self.estimator.sample(n, x.float(), generator=generator)
        return self.transform(u.double())

    @torch.no_grad()
    def sample(self, n: int, x: Tensor, seed: int | None = None) -> Tensor:
        x = self._check(x, batch=True)
        with self.timings.phase("sample"):
            if x.ndim == 1:
                return self._one(n, x, seed)
            if seed is None:  # one batched pass: noise for every observation at once
                return self.transform(self.estimator.sample(n, x.float()).double())
            return torch.stack([self._one(n, row, seed) for row in x], dim=1)

    @torch.no_grad()
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log q(theta | x): theta (N, D) and x (M,) -> (N,), Jacobian included."""
        x = self._check(x, batch=False)
        theta = theta.double()
        u = self.transform.inv(theta)
        log_q = self.estimator.log_prob(u.float(), x.float()).double()
        return log_q - log_abs_det(self.transform, u, theta)


@dataclasses.dataclass(frozen=True)
class NPE(NeuralConfig):
    """Amortized neural posterior estimation; see the module docstring."""

    name: ClassVar[str] = "npe"
    amortized: ClassVar[bool] = True

    def fit(self, task: Task, num_simulations: int, seed: int) -> NeuralPosterior:
        timings = Timings()
        with seeded(seed) as generator:
            budget = SimulationBudget(task, num_simulations, generator, timings)
            theta, x = budget.prior_predictive(num_simulations)
            require_valid(x, budget)
            with timings.phase("train"):
                u = unconstrained(task).inv(theta).float()
                x = x.float()
                estimator = build(self, task, u, x)
                train(
                    estimator,
                    lambda u_, x_: -estimator.log_prob(u_, x_).mean(),
                    (u, x),
                    **fit_settings(self, seed),
                )
        return NeuralPosterior(estimator, task, budget, timings)
