"""What every method shares: the budgeted simulator, posteriors, seeds, timings, config hashes."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.distributions import Transform, biject_to

from sbibench.failures import simulate_or_nan
from sbibench.task import Task

__all__ = [
    "Bookkeeping",
    "BudgetError",
    "HasLogProb",
    "HasSampleBatch",
    "HasUnnormalizedLogProb",
    "Posterior",
    "SimulationBudget",
    "Timings",
    "check_observation",
    "config_hash",
    "dim_unconstrained",
    "log_abs_det",
    "log_prior_unconstrained",
    "observation_generator",
    "require_valid",
    "other_rows",
    "refuse_padded_sets",
    "same_data",
    "seeded",
    "unconstrained",
]


class BudgetError(RuntimeError):
    """A method asked for more simulations than its budget, or got no valid simulation."""


@dataclasses.dataclass
class Timings:
    """Wall-clock seconds per phase of a method's run: ``propose`` is drawing the proposals of
    a sequential method's rounds after the first, ``sample`` drawing from the final posterior."""

    simulate: float = 0.0
    train: float = 0.0
    propose: float = 0.0
    sample: float = 0.0

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the time spent inside the ``with`` block to ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, name, getattr(self, name) + time.perf_counter() - start)


@dataclasses.dataclass
class Bookkeeping:
    """What a posterior's run spent, which the runner records: simulations used, those dropped
    as invalid (NaN, inf or failed; counted among the used), and seconds per phase."""

    num_simulations_used: int = 0
    num_invalid_simulations: int = 0
    timings: Timings = dataclasses.field(default_factory=Timings)

    @classmethod
    def of(cls, budget: SimulationBudget) -> Bookkeeping:
        """The bookkeeping of a spent budget: its counts now, its timings (shared, so that
        the posterior's own sampling time adds to them)."""
        return cls(budget.used, budget.invalid, budget.timings)


@runtime_checkable
class Posterior(Protocol):
    """What a method returns. ``D`` parameters, ``M`` data dimensions; float64 throughout.

    ``sample(n, x, seed=None)``: x (M,) -> (n, D); amortized posteriors also take x (B, M)
    -> (n, B, D). With a ``seed`` the draws for each observation are a pure function of the
    seed and that observation alone (see `observation_generator`), so sampling a batch of
    observations gives each one exactly the draws it would get on its own.
    ``num_simulations_used``, ``num_invalid_simulations`` and ``timings`` are the run's
    bookkeeping (`Bookkeeping`), which the runner records.

    Optional members, each its own protocol (test with ``isinstance(posterior, HasLogProb)``
    and so on, rather than looking the attribute up by name):

    - ``log_prob(theta, x)`` (`HasLogProb`, where the method has a normalised density):
      (N, D) and (M,) -> (N,).
    - ``unnormalized_log_prob(theta, x)`` (`HasUnnormalizedLogProb`, instead of ``log_prob``):
      a log-density up to a constant per observation; (N, D) and x (M,) or x (N, M) paired
      with theta row by row -> (N,), so the datasets of a calibration share one batched call.
    - ``sample_batch(n, x, seed)`` (`HasSampleBatch`): x (B, M) -> (n, B, D), draws for many
      observations in one run; a pure function of ``seed`` and the whole batch, not
      per-observation reproducible like ``sample`` (MCMC posteriors: one vectorised run
      instead of one MCMC per dataset).

    Calibration (SBC, coverage) uses them where present.
    """

    num_simulations_used: int
    num_invalid_simulations: int
    timings: Timings

    def sample(self, n: int, x: Tensor, seed: int | None = None) -> Tensor: ...


@runtime_checkable
class HasLogProb(Protocol):
    """A `Posterior` with a normalised density: ``log_prob(theta, x)``, (N, D) and (M,) -> (N,)."""

    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor: ...


@runtime_checkable
class HasUnnormalizedLogProb(Protocol):
    """A `Posterior` with a density up to a constant per observation:
    ``unnormalized_log_prob(theta, x)``, (N, D) and x (M,) or (N, M) -> (N,)."""

    def unnormalized_log_prob(self, theta: Tensor, x: Tensor) -> Tensor: ...


@runtime_checkable
class HasSampleBatch(Protocol):
    """A `Posterior` that draws for a batch of observations in one run:
    ``sample_batch(n, x, seed)``, x (B, M) -> (n, B, D)."""

    def sample_batch(self, n: int, x: Tensor, seed: int) -> Tensor: ...


class SimulationBudget:
    """A task's simulator that counts calls, refuses to exceed its budget and drops invalid
    simulations (`Task.valid`: NaN or infinite, or for padded sets an all-NaN row, an infinite
    entry or NaN before a number), counting them.

    A failing task's simulations (`sbibench.failures`) are invalid simulations like any other:
    where its simulator raises a `SimulationError` for a batch, the rows that succeeded are
    kept, the failed ones dropped and counted, every row of the batch is spent, and nothing is
    simulated again.

    Arguments:
        task: the task whose prior and simulator are used.
        budget: the most simulations that may be run.
        generator: the source of all randomness in prior draws and simulations.
        timings: where simulation time is added (phase ``simulate``).
    """

    def __init__(
        self, task: Task, budget: int, generator: torch.Generator, timings: Timings
    ) -> None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ValueError(f"num_simulations must be a whole number >= 1, got {budget!r}")
        self.task = task
        self.budget = budget
        self.generator = generator
        self.timings = timings
        self.used = 0
        self.invalid = 0

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    def sample_prior(self, n: int) -> Tensor:
        """(n, D) prior draws."""
        return self.task.sample_prior(n, self.generator)

    def simulate(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Simulate (N, D) parameters; returns the valid (theta, x) pairs, float64. All N
        count as spent (``used``), the invalid or failed ones as ``invalid`` too.

        Raises:
            BudgetError: the N simulations would exceed the budget.
        """
        x = self.simulate_rows(theta)
        valid = self.task.valid(x)
        return theta[valid], x[valid]

    def simulate_rows(self, theta: Tensor) -> Tensor:
        """Simulate (N, D) parameters; returns every row x (N, M), float64, the invalid or
        failed ones too (NaN), counted as `simulate` counts them. What `simulate` keeps of it
        is what a method learns from; the whole of it is what `sbibench simulate` exports.

        Raises:
            BudgetError: the N simulations would exceed the budget.
        """
        if theta.shape[0] > self.remaining:
            raise BudgetError(
                f"{theta.shape[0]} simulations requested with {self.remaining} of "
                f"{self.budget} left"
            )
        with self.timings.phase("simulate"):
            x = simulate_or_nan(self.task.simulate, theta, self.generator)
        self.used += theta.shape[0]
        self.invalid += int((~self.task.valid(x)).sum())
        return x

    def prior_predictive(self, n: int) -> tuple[Tensor, Tensor]:
        """Draw n parameters from the prior, simulate them; the valid pairs."""
        return self.simulate(self.sample_prior(n))


def require_valid(x: Tensor, budget: SimulationBudget) -> None:
    """Raise if a method is left without any valid simulation to learn from."""
    if x.shape[0] == 0:
        raise BudgetError(
            f"all {budget.used} simulations of task {budget.task.name!r} were invalid "
            "(NaN or inf): nothing to learn from"
        )


def log_abs_det(transform: Transform, u: Tensor, theta: Tensor) -> Tensor:
    """log|det dT/du| per row, (N,), whatever the transform's event dimension."""
    log_det = transform.log_abs_det_jacobian(u, theta)
    return log_det.sum(-1) if log_det.ndim == 2 else log_det


def log_prior_unconstrained(task: Task, u: Tensor) -> Tensor:
    """log density of the prior pushed to u = T^-1(theta): log p(T(u)) + log|det dT/du|."""
    transform = unconstrained(task)
    theta = transform(u.double())
    return task.prior.log_prob(theta) + log_abs_det(transform, u.double(), theta)


def unconstrained(task: Task) -> Transform:
    """The bijection from R^d onto the prior's support (``biject_to(prior.support)``), with
    d = `dim_unconstrained` (D, or D - 1 on the simplex).

    Learned estimators work on ``u = T^{-1}(theta)``; densities map back with
    ``log p(theta) = log q(u) - log|det dT/du|``. On the simplex T is torch's stick-breaking
    transform and its Jacobian is that of the first D - 1 coordinates of theta, the same
    measure as ``Dirichlet.log_prob``'s.
    """
    return biject_to(task.prior.support)


def dim_unconstrained(task: Task) -> int:
    """The dimension of u = T^-1(theta), where learned estimators, MCMC chains, ABC kernels and
    ODE noise live: D for a prior on a box or a product of intervals and half-lines, D - 1
    for a prior on the simplex (stick-breaking drops the coordinate that the sum fixes).

    Example:
        >>> from sbibench import get_task
        >>> task = get_task("dirichlet_multinomial")
        >>> task.dim_parameters, dim_unconstrained(task)
        (4, 3)
    """
    shape = unconstrained(task).inverse_shape(task.prior.event_shape)
    return int(math.prod(shape))


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[torch.Generator]:
    """Fork torch's global RNG, seed it with ``seed`` (for network initialisation and any
    library code that draws globally) and yield a fresh generator seeded with ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield torch.Generator().manual_seed(seed)


def other_rows(batch: int, count: int, generator: torch.Generator | None = None) -> Tensor:
    """(batch, count) indices: for each row i, ``count`` distinct rows other than i.

    Row i takes the ``count`` rows that follow it in one random cyclic order of the batch, so
    each row's set is a uniformly random subset of the others (the rows' sets are not
    independent of each other, which no per-row loss term can see). The contrastive losses
    (SNPE-C's atoms, NRE's marginal pairs) draw these every minibatch: one permutation costs
    O(B), where ``torch.multinomial`` on a (B, B) weight matrix cost a seventh of an SNPE-C fit.
    """
    if not 0 <= count <= batch - 1:
        raise ValueError(f"count must be in 0..batch - 1 = {batch - 1}, got {count}")
    order = torch.randperm(batch, generator=generator)
    position = torch.empty_like(order)
    position[order] = torch.arange(batch)
    return order[(position.unsqueeze(1) + torch.arange(1, count + 1)) % batch]


def observation_generator(seed: int, x: Tensor) -> torch.Generator:
    """A generator that is a pure function of ``seed`` and the bytes of one observation."""
    digest = hashlib.sha256(f"{seed}:".encode() + x.detach().double().numpy().tobytes())
    return torch.Generator().manual_seed(int.from_bytes(digest.digest()[:8], "little") >> 1)


def _plain(value: Any) -> str:
    """A stable text for a config value JSON cannot hold: a function by its import path."""
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{value.__module__}:{value.__qualname__}"
    return repr(value)


def config_hash(name: str, config: Any) -> str:
    """A short stable hash of a method's name and configuration dataclass."""
    fields = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    text = json.dumps({"method": name, **fields}, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_observation(x: Tensor, task: Task, batch: bool) -> Tensor:
    """Validate an observation (M,) (or (B, M) when ``batch``) and return it as float64:
    its shape, and its values by `Task.valid` (NaN or inf is refused, except a padded set's
    trailing NaN padding for a task with ``padded_sets``)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    allowed = (1, 2) if batch else (1,)
    if x.ndim not in allowed or x.shape[-1] != task.dim_data:
        shapes = f"({task.dim_data},)" + (f" or (B, {task.dim_data})" if batch else "")
        raise ValueError(f"x must have shape {shapes} for task {task.name!r}, got {tuple(x.shape)}")
    if not task.valid(x.reshape(-1, task.dim_data)).all():
        if task.padded_sets:
            raise ValueError(
                f"x is not a valid padded set for task {task.name!r}: it needs at least one "
                "number, no inf, and NaN only as trailing padding"
            )
        raise ValueError("x contains NaN or inf")
    return x.double()


def same_data(x: Tensor, y: Tensor) -> bool:
    """Whether data x and y (broadcastable) are equal entry by entry, NaN padding equal to
    NaN padding (``torch.equal`` would call two padded sets different)."""
    both_nan = torch.isnan(x) & torch.isnan(y)
    return bool(((x == y) | both_nan).all())


def refuse_padded_sets(task: Task, method: str, why: str) -> None:
    """Raise a ValueError naming ``method``, the task and ``why`` where the task's data are
    NaN-padded sets of varying size (`Task.padded_sets`) that the method cannot take."""
    if task.padded_sets:
        raise ValueError(
            f"method {method!r} cannot run task {task.name!r}: its data are i.i.d. sets of "
            f"varying size, NaN-padded to {task.dim_data} entries, and {why}"
        )
