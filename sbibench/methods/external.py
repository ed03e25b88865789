"""Methods from elsewhere: a user's own function, and sbibm-style algorithms unchanged.

A method from outside sbibench is named by an import path ``"package.module:function"`` (or
given as the function itself), so that its configuration is plain data: hashed into run keys by
that name, and sent to any worker process.
The task it receives has a budgeted simulator: a method that asks for more simulations than
its budget gets a `BudgetError`, and ``num_simulations_used`` and ``num_invalid_simulations``
(the simulations that came back NaN or infinite) are counted, not trusted. A failing task's
failed simulations (`sbibench.failures`) come back as NaN rows in either mode: a
`SimulationError` of mode "raise" is caught by the budgeted simulator, which returns the
batch with the failed rows NaN, for the method to drop like any invalid simulation.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from sbibench.failures import simulate_or_nan
from sbibench.methods.base import (
    Bookkeeping,
    BudgetError,
    Timings,
    check_observation,
    refuse_padded_sets,
    seeded,
    unconstrained,
)
from sbibench.methods.posteriors import BasePosterior
from sbibench.registry import load
from sbibench.task import Task

__all__ = ["External", "Float32Prior", "SamplesPosterior", "Sbibm", "SbibmTask", "budgeted"]


def _import(path: str | Callable) -> Callable:
    return path if callable(path) else load(path, "function")


class _BudgetedModel:
    """A task's model whose simulator is the task's (its failures included), counts rows,
    refuses to exceed ``budget`` and counts the invalid rows it returns (`Task.valid`);
    the caller's code decides what to do with them."""

    def __init__(self, task: Task, budget: int, timings: Timings) -> None:
        self._task = task
        self.budget = budget
        self.used = 0
        self.invalid = 0
        self.timings = timings

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task.model, name)

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.used + theta.shape[0] > self.budget:
            raise BudgetError(
                f"{theta.shape[0]} simulations requested with {self.budget - self.used} of "
                f"{self.budget} left"
            )
        self.used += theta.shape[0]
        with self.timings.phase("simulate"):
            x = simulate_or_nan(self._task.simulate, theta, generator)
        self.invalid += int((~self._task.valid(x.reshape(x.shape[0], -1))).sum())
        return x


def budgeted(task: Task, budget: int, timings: Timings) -> Task:
    """A copy of ``task`` whose simulator enforces ``budget`` and counts its use (the
    budgeted model runs the task's failures, so the copy has none of its own)."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"num_simulations must be a whole number >= 1, got {budget!r}")
    model = _BudgetedModel(task, budget, timings)
    return dataclasses.replace(task, model=model, failures=None)


class SamplesPosterior(BasePosterior):
    """A posterior given only by samples (N, D) for one observation: ``sample(n)`` draws n of
    them without replacement (with replacement when n > N), seeded per observation."""

    batch = False
    refusal = "this posterior was run for another observation"

    def __init__(self, task: Task, observation: Tensor, samples: Tensor, timings: Timings) -> None:
        samples = torch.as_tensor(samples).detach().double()
        if samples.ndim != 2 or samples.shape[1] != task.dim_parameters:
            raise ValueError(
                f"the method returned samples of shape {tuple(samples.shape)}; expected "
                f"(N, {task.dim_parameters})"
            )
        if not torch.isfinite(samples).all():
            raise ValueError("the method returned NaN or inf samples")
        bookkeeping = Bookkeeping(task.model.used, task.model.invalid, timings)
        super().__init__(task, bookkeeping, observation)
        self.samples = samples

    def _draw(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        count = self.samples.shape[0]
        if n <= count:
            index = torch.randperm(count, generator=generator)[:n]
        else:
            index = torch.randint(count, (n,), generator=generator)
        return self.samples[index]


@dataclasses.dataclass(frozen=True)
class External:
    """A user's function as a method.

    With ``amortized=True`` the function is called as ``function(task, num_simulations,
    seed)`` and returns a `Posterior` (``sample(n, x, seed=None)``, optionally ``log_prob``);
    otherwise as ``function(task, observation, num_simulations, seed)`` and returns a
    `Posterior` or a tensor of posterior samples (N, D).

    Arguments:
        function: ``"package.module:function"``.
        amortized: which of the two shapes the function has.
    """

    name: ClassVar[str] = "external"
    function: str | Callable = ""
    amortized: bool = False

    def __post_init__(self) -> None:
        _import(self.function)  # a typo stops a suite when it loads, before any work

    def _call(self, task: Task, *args: Any) -> tuple[Any, Task, Timings]:
        timings = Timings()
        task = budgeted(task, args[-2], timings)
        seed = args[-1]
        with seeded(seed), timings.phase("train"):
            result = _import(self.function)(task, *args)
        timings.train -= timings.simulate  # simulation time was counted inside the call
        return result, task, timings

    def fit(self, task: Task, num_simulations: int, seed: int) -> Any:
        if not self.amortized:
            raise TypeError(f"{self.function} is sequential (amortized=False): call run()")
        posterior, task, timings = self._call(task, num_simulations, seed)
        _annotate(posterior, task, timings)
        return posterior

    def run(self, task: Task, observation: Tensor, num_simulations: int, seed: int) -> Any:
        if self.amortized:
            raise TypeError(f"{self.function} is amortized: call fit()")
        observation = check_observation(observation, task, batch=False)
        result, task, timings = self._call(task, observation, num_simulations, seed)
        if isinstance(result, Tensor):
            return SamplesPosterior(task, observation, result, timings)
        _annotate(result, task, timings)
        return result


def _annotate(posterior: Any, task: Task, timings: Timings) -> None:
    """Give a user's posterior the bookkeeping the runner reads, where it lacks it."""
    if not callable(getattr(posterior, "sample", None)):
        raise TypeError(f"the method returned {type(posterior).__name__}, which has no sample()")
    for attribute, value in (
        ("num_simulations_used", task.model.used),
        ("num_invalid_simulations", task.model.invalid),
        ("timings", timings),
    ):
        if not hasattr(posterior, attribute):
            setattr(posterior, attribute, value)


def float32_constraint(constraint: Any) -> Any:
    """``constraint`` with its bounds in float32: sbi builds its transform from the support
    and checks it on float32 draws, which float64 bounds would turn into float64. Constraints
    without bounds come back as they are."""
    if isinstance(constraint, constraints.independent):
        base = float32_constraint(constraint.base_constraint)
        return constraints.independent(base, constraint.reinterpreted_batch_ndims)
    bounds = {
        name: getattr(constraint, name).float()
        for name in ("lower_bound", "upper_bound")
        if isinstance(getattr(constraint, name, None), Tensor)
    }
    if not bounds:
        return constraint
    fresh = copy.copy(constraint)  # interval, half-open interval, greater/less than: same kind
    fresh.__dict__.update(bounds)
    return fresh


class Float32Prior(Distribution):
    """A task's float64 prior seen in float32, as the sbi package and sbibm expect."""

    def __init__(self, prior: Distribution) -> None:
        self.base = prior
        super().__init__(prior.batch_shape, prior.event_shape, validate_args=False)

    @property
    def support(self) -> Any:
        return float32_constraint(self.base.support)

    @property
    def mean(self) -> Tensor:
        return self.base.mean.float()

    @property
    def variance(self) -> Tensor:
        return self.base.variance.float()

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        return self.base.sample(sample_shape).float()

    def log_prob(self, value: Tensor) -> Tensor:
        return self.base.log_prob(value.double()).float()


class SbibmTask:
    """The parts of an sbibm ``Task`` that sbibm's algorithms call, over an sbibench task
    (float32, as in sbibm; the simulator is the budgeted one)."""

    def __init__(self, task: Task) -> None:
        self._task = task
        self.name = task.name
        self.dim_parameters = task.dim_parameters
        self.dim_data = task.dim_data
        self.num_observations = task.num_observations

    def get_prior_dist(self) -> Float32Prior:
        return Float32Prior(self._task.prior)

    def get_prior(self) -> Callable[[int], Tensor]:
        return lambda num_samples=1: self.get_prior_dist().sample((num_samples,))

    def get_simulator(self, max_calls: int | None = None) -> Callable[[Tensor], Tensor]:
        def simulator(parameters: Tensor) -> Tensor:
            return self._task.simulate(parameters.double()).float()

        return simulator

    def get_observation(self, num_observation: int) -> Tensor:
        return self._task.observation(num_observation).float().unsqueeze(0)

    def get_true_parameters(self, num_observation: int) -> Tensor:
        return self._task.true_parameters(num_observation).float().unsqueeze(0)

    def get_reference_posterior_samples(self, num_observation: int) -> Tensor:
        return self._task.reference_samples(num_observation).float()

    def get_labels_parameters(self) -> list[str]:
        return list(self._task.parameter_names)

    def get_labels_data(self) -> list[str]:
        return [f"x_{i + 1}" for i in range(self._task.dim_data)]

    def get_param_transforms(self) -> Any:
        """sbibm's automatic transform: from the prior's support to R^D."""
        return unconstrained(self._task).inv

    def _get_transforms(self, automatic_transforms_enabled: bool = True) -> dict:
        identity = torch.distributions.transforms.identity_transform
        transform = self.get_param_transforms() if automatic_transforms_enabled else identity
        return {"parameters": transform}


@dataclasses.dataclass(frozen=True)
class Sbibm:
    """An sbibm-style algorithm, brought unchanged: ``algorithm(task=..., num_samples=...,
    num_simulations=..., num_observation=k, **options)`` returning samples (or a tuple whose
    first element is the samples, as sbibm's algorithms do). ``num_observation`` is passed when
    the observation is one of the task's; otherwise ``observation`` (1, M) is.

    Arguments:
        algorithm: ``"package.module:run"``.
        num_samples: how many posterior samples to ask the algorithm for.
        options: further keyword arguments for the algorithm.
    """

    name: ClassVar[str] = "sbibm"
    algorithm: str | Callable = ""
    num_samples: int = 10_000
    options: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _import(self.algorithm)  # a typo stops a suite when it loads, before any work

    def run(
        self, task: Task, observation: Tensor, num_simulations: int, seed: int
    ) -> SamplesPosterior:
        refuse_padded_sets(task, "sbibm", "sbibm's algorithms take fixed-length data without NaN")
        observation = check_observation(observation, task, batch=False)
        timings = Timings()
        task = budgeted(task, num_simulations, timings)
        numbers = range(1, task.num_observations + 1)
        number = next((k for k in numbers if torch.equal(task.observation(k), observation)), None)
        where = (
            {"num_observation": number}
            if number is not None
            else {"observation": observation.float().unsqueeze(0)}
        )
        with seeded(seed), timings.phase("train"):
            result = _import(self.algorithm)(
                task=SbibmTask(task),
                num_samples=self.num_samples,
                num_simulations=num_simulations,
                **where,
                **self.options,
            )
        timings.train -= timings.simulate
        samples = result[0] if isinstance(result, tuple) else result
        return SamplesPosterior(task, observation, samples, timings)
