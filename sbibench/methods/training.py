"""What every learned method repeats: its training settings, the fit preamble, the round loop.

A method file keeps only its own mathematics (its loss, its posterior, its settings) and takes
the rest from here:

- `TrainingSettings`: the six settings of `sbibench.nn.train` (sbi's defaults), a dataclass
  for a method's config to list among its bases; `fit_settings` turns one into keyword
  arguments of `train`.
- `EstimatorSettings`: a density estimator with its embedding (NPE, SNPE, NLE), listed beside
  `TrainingSettings`; `build` makes the estimator of the parameters given the data.
- `SpaceSettings`: where a posterior estimator fits the parameters (NPE, SNPE-C): on
  u = T^-1(theta), or on theta itself as sbi does.
- `prior_simulations`: the preamble of an amortized fit (timings, seeding, the budgeted
  simulator, the whole budget from the prior predictive, the validity filter, the train phase,
  the unconstrained parameters u = T^-1(theta)).
- `run_rounds`: the round loop of a sequential method (round 1 from the prior, later rounds
  from the method's proposal, training on every simulation so far); `mcmc_rounds`: the same
  for a method whose proposals are the MCMC posterior of its learned potential (SNLE, SNRE).
- `embedding_net` (None or a DeepSet over i.i.d. scalars) and `validation_noise` (common
  random numbers for stochastic validation losses).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.distributions.transforms import identity_transform

from sbibench.methods.base import (
    Bookkeeping,
    SimulationBudget,
    Timings,
    dim_unconstrained,
    refuse_padded_sets,
    require_valid,
    seeded,
    unconstrained,
)
from sbibench.methods.mcmc_posterior import MCMCPosterior, MCMCSettings, Potential
from sbibench.methods.settings import estimator_name, fraction, one_of, positive, setting, widths
from sbibench.nn import Classifier, DeepSet, Estimator, ZScore, build_estimator
from sbibench.task import Task

__all__ = [
    "RoundsSettings",
    "ClassifierSettings",
    "SpaceSettings",
    "EstimatorSettings",
    "Simulations",
    "TrainingSettings",
    "build",
    "embedding_net",
    "fit_settings",
    "mcmc_rounds",
    "prior_simulations",
    "round_sizes",
    "run_rounds",
    "noised_rows",
    "validation_noise",
]


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """The training loop's settings (`sbibench.nn.train`), sbi's defaults; a method's config
    lists this class among its bases and may change a default by declaring the field again.

    Arguments:
        batch_size: rows per minibatch.
        learning_rate: Adam's learning rate.
        validation_fraction: share of the rows held out for early stopping.
        patience: epochs without improvement of the validation loss before stopping.
        max_epochs: the most epochs; None for no limit.
        clip_norm: gradient norm clip; None for none.
    """

    batch_size: int = 200
    learning_rate: float = setting(5e-4, positive)
    validation_fraction: float = setting(0.1, fraction)
    patience: int = 20
    max_epochs: int | None = None
    clip_norm: float | None = setting(5.0, positive)

    def fit_settings(self, seed: int) -> dict[str, Any]:
        """Keyword arguments of `sbibench.nn.train` from these settings."""
        return {
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "validation_fraction": self.validation_fraction,
            "patience": self.patience,
            "max_epochs": self.max_epochs,
            "clip_norm": self.clip_norm,
            "seed": seed,
        }


fit_settings = TrainingSettings.fit_settings  # fit_settings(config, seed), for any config


EMBEDDINGS = (None, "deepset")


@dataclasses.dataclass(frozen=True)
class EstimatorSettings:
    """A conditional density estimator of sbibench's (`sbibench.nn`) (NPE, SNPE, NLE).

    Arguments:
        estimator: ``"maf"``, ``"nsf"``, ``"nsf_coupling"``, ``"realnvp"`` or ``"mdn"``.
        estimator_options: keyword arguments of the estimator's builder.
        embedding: None, or ``"deepset"`` to embed the data as a set of i.i.d. scalars.
    """

    estimator: str = setting("maf", estimator_name)
    estimator_options: dict = dataclasses.field(default_factory=dict)
    embedding: str | None = setting(None, one_of(*EMBEDDINGS))

    def build(self, task: Task, u: Tensor, x: Tensor) -> Estimator:
        """The configured estimator of u (N, d) given x (N, M), z-scored on these data; d =
        `dim_unconstrained` (D, or D - 1 on the simplex)."""
        embedding, context = embedding_net(self.embedding, task)
        estimator = build_estimator(
            self.estimator, dim_unconstrained(task), context, embedding=embedding,
            **self.estimator_options,
        )  # fmt: skip
        return estimator.standardize_(u, x)


build = EstimatorSettings.build  # build(config, task, u, x)


@dataclasses.dataclass(frozen=True)
class SpaceSettings:
    """Where a posterior estimator fits the parameters.

    Arguments:
        space: ``"unconstrained"`` (u = T^-1(theta) on R^d: every draw inside the prior's
            support), or ``"constrained"`` (theta itself, as sbi and sbibm's NPE and SNPE do:
            draws outside the support are rejected and the density divided by the mass
            inside, `TruncatedPosterior`).
    """

    space: str = setting("unconstrained", one_of("unconstrained", "constrained"))

    def constrained(self, task: Task) -> bool:
        """Whether to fit theta itself; a ValueError for a prior on the simplex, which has no
        density in D dimensions."""
        if self.space == "constrained" and dim_unconstrained(task) != task.dim_parameters:
            raise ValueError(
                f"task {task.name!r}: a prior on the simplex has no density in "
                f"{task.dim_parameters} dimensions; use space = 'unconstrained' there"
            )
        return self.space == "constrained"


@dataclasses.dataclass(frozen=True)
class RoundsSettings:
    """A sequential method: one run per observation, in ``rounds`` equal parts of the budget,
    each simulated from the proposal the last one learnt (`run_rounds`, `mcmc_rounds`).

    Arguments:
        rounds: how many rounds.
        round_batches: batches of at most one round's share of the budget (num_simulations //
            rounds, at least 2), as sbibm's sequential methods train: sbibm lowers its
            training batch size to that share, so its 10,000 means 100 rows at 10^3
            simulations in 10 rounds.
    """

    amortized: ClassVar[bool] = False
    rounds: int = 10
    round_batches: bool = False

    def round_fit_settings(self, seed: int, num_simulations: int) -> dict[str, Any]:
        """`fit_settings` (the config's `TrainingSettings`) of one round's training run, the
        batch size capped by ``round_batches``."""
        settings = self.fit_settings(seed)  # type: ignore[attr-defined]
        if self.round_batches:
            share = max(2, num_simulations // self.rounds)
            settings["batch_size"] = min(settings["batch_size"], share)
        return settings


@dataclasses.dataclass(frozen=True)
class FieldSettings:
    """The network of a method sampled by an ODE (flow matching, score-based NPE).

    Arguments:
        hidden_features: widths of the network's MLP.
        embedding: None, or ``"deepset"`` for i.i.d. data.
        ode_steps: RK4 steps of the sampling ODE (4 network evaluations each).
    """

    hidden_features: tuple = setting((64, 64, 64), widths)
    embedding: str | None = setting(None, one_of(*EMBEDDINGS))
    ode_steps: int = 50

    def network(
        self, build: Callable[..., nn.Module], task: Task, u: Tensor, x: Tensor
    ) -> tuple[ZScore, nn.Module]:
        """The z-scoring of the unconstrained parameters ``u`` (N, D) and the network
        ``build(D, context, hidden_features, embedding=...)`` of them, its contexts z-scored on
        ``x`` (N, M)."""
        dim = dim_unconstrained(task)
        norm = ZScore(dim).fit_(u)
        embedding, context = embedding_net(self.embedding, task)
        net = build(dim, context, tuple(self.hidden_features), embedding=embedding)
        net.standardize_(x)
        return norm, net


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
    """The classifier d(u, x) of a ratio method (NRE and its variants).

    Arguments:
        hidden_features: widths of the classifier's MLP layers or residual blocks.
        classifier: ``"mlp"``, or ``"resnet"`` (residual blocks, as sbi's and sbibm's NRE).
        embedding: None, or ``"deepset"`` to embed the data as a set of i.i.d. scalars.
    """

    hidden_features: tuple = setting((50, 50), widths)
    classifier: str = setting("mlp", one_of("mlp", "resnet"))
    embedding: str | None = setting(None, one_of(*EMBEDDINGS))

    def build(self, task: Task, u: Tensor, x: Tensor) -> Classifier:
        """The configured classifier of (u (N, d), x (N, M)), z-scored on these data."""
        embedding, context = embedding_net(self.embedding, task)
        classifier = Classifier(
            dim_unconstrained(task),
            context,
            tuple(self.hidden_features),
            embedding=embedding,
            residual=self.classifier == "resnet",
        )
        return classifier.standardize_(u, x)


def embedding_net(embedding: str | None, task: Task) -> tuple[nn.Module | None, int]:
    """(embedding net, context features) for ``None`` (the raw data, M features) or
    ``"deepset"`` (the M data as a set of i.i.d. scalars, 20 features; NaN entries are
    padding, so it takes the padded sets of a task with ``padded_sets``, which refuses None)."""
    if embedding is None:
        refuse_padded_sets(
            task, "with embedding=None", "a network cannot take NaN; pass embedding='deepset'"
        )
        return None, task.dim_data
    if embedding == "deepset":
        return nn.Sequential(nn.Unflatten(-1, (task.dim_data, 1)), DeepSet(1, 20)), 20
    raise ValueError(f"embedding must be None or 'deepset', got {embedding!r}")


def validation_noise(net: nn.Module) -> torch.Generator | None:
    """None in training (torch's forked global RNG); in evaluation, a generator seeded with 0
    on every call, so the validation loss of every epoch uses the same noise (common random
    numbers) and early stopping compares epochs rather than noise draws."""
    return None if getattr(net, "training", True) else torch.Generator().manual_seed(0)


def noised_rows(net: nn.Module, *rows: Tensor) -> tuple[torch.Generator | None, tuple]:
    """The noise generator of `validation_noise` and the rows (N, ·) to draw noise for: as
    given in training; in evaluation each row 16 times, so the validation loss averages 16
    noise draws per row (flow matching's and the score's losses draw noise per row)."""
    generator = validation_noise(net)
    return generator, rows if generator is None else tuple(row.repeat(16, 1) for row in rows)


@dataclasses.dataclass
class Simulations:
    """What a fit works with: its task, budget (``used``, ``invalid``), timings and
    generator, and the valid simulations (theta, x), (N, D) and (N, M) float64."""

    task: Task
    budget: SimulationBudget
    timings: Timings
    generator: torch.Generator
    theta: Tensor
    x: Tensor

    @property
    def bookkeeping(self) -> Bookkeeping:
        """What the run has spent so far, for its posterior."""
        return Bookkeeping.of(self.budget)

    @property
    def u(self) -> Tensor:
        """(N, d) float32: the parameters in the unconstrained space, u = T^-1(theta)."""
        return unconstrained(self.task).inv(self.theta).float()


@contextlib.contextmanager
def prior_simulations(task: Task, num_simulations: int, seed: int) -> Iterator[Simulations]:
    """The preamble of an amortized fit: seed torch (`seeded`), simulate the whole budget from
    the prior predictive, drop and count invalid simulations, refuse a budget without a valid
    one, and time the ``with`` block as the train phase.

    Example:
        >>> from sbibench import get_task
        >>> with prior_simulations(get_task("normal_mean"), 100, seed=0) as run:
        ...     u, x = run.u, run.x.float()
        >>> u.shape, run.budget.used
        (torch.Size([100, 1]), 100)
    """
    timings = Timings()
    with seeded(seed) as generator:
        budget = SimulationBudget(task, num_simulations, generator, timings)
        theta, x = budget.prior_predictive(num_simulations)
        require_valid(x, budget)
        with timings.phase("train"):
            yield Simulations(task, budget, timings, generator, theta, x)


def round_sizes(num_simulations: int, rounds: int) -> list[int]:
    """Split a budget into ``rounds`` near-equal parts (the first ones take the remainder)."""
    if rounds < 1 or num_simulations < rounds:
        raise ValueError(f"need 1 <= rounds <= num_simulations, got {rounds}, {num_simulations}")
    base, extra = divmod(num_simulations, rounds)
    return [base + (r < extra) for r in range(rounds)]


Propose = Callable[[int, torch.Generator], Tensor]  # size, generator -> (size, D) float64 u
Learn = Callable[[int, int, Tensor, Tensor], None]  # round, size, u (N, D), data (N, ...)


def _float(x: Tensor) -> Tensor:
    return x.float()


def run_rounds(
    task: Task,
    num_simulations: int,
    rounds: int,
    seed: int,
    propose: Propose,
    learn: Learn,
    data: Callable[[Tensor], Tensor] = _float,
    constrained: bool = False,
) -> Simulations:
    """The round loop of a sequential method, under `seeded` (seed).

    The budget is spent in ``rounds`` near-equal parts (`round_sizes`). Round 1 simulates
    prior draws; round r > 1 simulates T(u) for ``propose(size, generator)`` (timed as the
    propose phase). After each round ``learn(r, size, u, data)`` (r from 0, timed as the
    train phase) sees every valid simulation so far: u (N, D) float32 and ``data(x)`` (N, ...)
    (float32 x unless the method models something else, such as summaries). With
    ``constrained``, u is theta itself (T the identity; proposals must lie in the support).

    Returns:
        The run's `Simulations`; its ``theta`` and ``x`` are those of the last round.
    """
    timings = Timings()
    transform = identity_transform if constrained else unconstrained(task)
    with seeded(seed) as generator:
        budget = SimulationBudget(task, num_simulations, generator, timings)
        us, datas = [], []
        for r, size in enumerate(round_sizes(num_simulations, rounds)):
            if r == 0:
                theta = budget.sample_prior(size)
            else:
                with timings.phase("propose"):
                    u_new = propose(size, generator)
                theta = transform(u_new)
            theta, x = budget.simulate(theta)
            us.append(transform.inv(theta).float())
            datas.append(data(x))
            u, values = torch.cat(us), torch.cat(datas)
            require_valid(values, budget)
            with timings.phase("train"):
                learn(r, size, u, values)
    return Simulations(task, budget, timings, generator, theta, x)


def mcmc_rounds(
    task: Task,
    observation: Tensor,
    settings: MCMCSettings,
    num_simulations: int,
    rounds: int,
    seed: int,
    learn: Callable[[int, Tensor, Tensor], Potential],
    data: Callable[[Tensor], Tensor] = _float,
) -> MCMCPosterior:
    """`run_rounds` for a potential-based method: after each round ``learn(r, u, data)``
    returns the potential fitted to every simulation so far, and the next round proposes
    from its MCMC posterior for ``observation`` (M,) (`MCMCPosterior.independent_u`, short
    independent chains). Returns the posterior of the last potential."""
    latest: list[MCMCPosterior] = []

    def propose(size: int, generator: torch.Generator) -> Tensor:
        return latest[-1].independent_u(size, observation.unsqueeze(0), generator)[:, 0]

    def fit(r: int, size: int, u: Tensor, values: Tensor) -> None:
        potential = learn(r, u, values)
        latest.append(MCMCPosterior(potential, task, settings, Bookkeeping(), observation))

    run = run_rounds(task, num_simulations, rounds, seed, propose, fit, data)
    return MCMCPosterior(latest[-1].potential, task, settings, run.bookkeeping, observation)
