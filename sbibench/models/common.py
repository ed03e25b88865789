"""What every model family shares: the model protocol, card-field checks and seeded sampling."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.distributions import Distribution

from sbibench.checks import is_seed, is_whole

__all__ = [
    "DTYPE",
    "MAX_MAGNITUDE",
    "Family",
    "Field",
    "Model",
    "check_data",
    "check_theta",
    "count",
    "positive",
    "real",
    "sample",
    "seed_value",
]

DTYPE = torch.float64

# The largest magnitude of a real number on a card: its square stays finite in float32. Models
# compute in float64, but methods train on float32 copies of parameters and data, and square
# them (standardisation, Gaussian log-densities, losses); a family squares its own numbers too
# (a prior std of 1e300 makes std**2 overflow while the card is built). A positive number (a
# scale, variance, rate or shape) must also have its reciprocal within this bound: precisions
# 1/s**2 and standardising by s overflow the other way. A bound that is needed, not one that
# promises a method learns well at such scales.
MAX_MAGNITUDE = math.sqrt(torch.finfo(torch.float32).max)  # about 1.8e19


class Model(Protocol):
    """An analytic model: what a family's ``build`` returns and a `Task` wraps.

    Shapes: ``D`` parameters, ``M`` data dimensions, ``N`` a batch.
    """

    prior: Distribution  # event shape (D,)
    parameter_names: tuple[str, ...]
    data_dim: int
    # Optional: True where the data are whole numbers (counts), so that density estimators of
    # the data dequantise them; a family without the attribute has continuous data.
    discrete_data: bool
    # Optional: True where each row is a set of i.i.d. scalars of varying size, NaN-padded to
    # M (`sbibench.models.iid_sets`): validity is then `iid_sets.valid_sets` (`Task.valid`)
    # and such a model has ``simulate_observations(theta, generator)``, which draws the
    # reference observations at their stated sizes.
    padded_sets: bool

    def simulate(self, theta: Tensor, generator: torch.Generator) -> Tensor:
        """(N, D) parameters -> (N, M) data, float64."""

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """(N, D) parameters and (M,) or (N, M) data -> (N,) log p(x | theta)."""

    def posterior(self, x: Tensor) -> Distribution:
        """(M,) or (K, M) data -> the exact posterior, batch shape () or (K,), event (D,)."""

    def summary(self, x: Tensor) -> Tensor:
        """(N, M) data -> (N, S) summary statistics for distance-based methods such as ABC
        (the data themselves where a family has no natural summary)."""


class Field:
    """A card field: its meaning and a check that returns the value or raises ValueError."""

    def __init__(self, meaning: str, check: Callable[[Any], Any]) -> None:
        self.meaning = meaning
        self.check = check


@dataclass(frozen=True)
class Family:
    """A model family: the fields of its card's ``[prior]`` and ``[simulator]`` tables, and
    ``build(prior, simulator) -> Model`` taking those tables after their fields are checked."""

    prior: dict[str, Field]
    simulator: dict[str, Field]
    build: Callable[[dict, dict], Model]


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"must be finite, got {value!r}")
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError(
            f"must be at most {MAX_MAGNITUDE:.3g} in magnitude (its square must stay finite in "
            f"float32, which methods train in), got {value!r}"
        )
    return float(value)


def real(meaning: str) -> Field:
    """A finite real number, at most `MAX_MAGNITUDE` in magnitude."""
    return Field(meaning, _number)


def positive(meaning: str) -> Field:
    """A finite number > 0 (scales, variances, rates), within `MAX_MAGNITUDE` and its
    reciprocal."""

    def check(value: Any) -> float:
        number = _number(value)
        if number <= 0:
            raise ValueError(f"must be > 0, got {value!r}")
        if number < 1 / MAX_MAGNITUDE:
            raise ValueError(
                f"must be at least {1 / MAX_MAGNITUDE:.3g} (the square of its reciprocal must "
                f"stay finite in float32, which methods train in), got {value!r}"
            )
        return number

    return Field(meaning, check)


def count(meaning: str, minimum: int = 1) -> Field:
    """A whole number >= ``minimum`` (dimensions, numbers of draws)."""

    def check(value: Any) -> int:
        if not is_whole(value):
            raise ValueError(f"must be a whole number, got {value!r}")
        if value < minimum:
            raise ValueError(f"must be >= {minimum}, got {value!r}")
        return value

    return Field(meaning, check)


def seed_value(meaning: str) -> Field:
    """A seed for ``torch.Generator.manual_seed``: a whole number in 0..2**63-1
    (`sbibench.checks.MAX_SEED`)."""
    inner = count(meaning, minimum=0).check

    def check(value: Any) -> int:
        number = inner(value)
        if not is_seed(number):
            raise ValueError(f"must be < 2**63, got {value!r}")
        return number

    return Field(meaning, check)


def sample(distribution: Distribution, n: int, generator: torch.Generator | None) -> Tensor:
    """Draw ``n`` samples (n, *batch, *event) from a torch distribution under ``generator``.

    ``torch.distributions`` draw from the global RNG; this forks that RNG and seeds it from
    ``generator``, so the draw is a pure function of the generator's state and leaves the
    global state untouched. ``generator=None`` draws from the global RNG as usual.
    """
    if generator is None:
        return distribution.sample((n,))
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return distribution.sample((n,))


def check_theta(theta: Tensor, dim: int) -> Tensor:
    """Validate a (N, D) parameter batch and return it as float64."""
    if not isinstance(theta, Tensor):
        raise TypeError(f"theta must be a torch.Tensor, got {type(theta).__name__}")
    if theta.ndim != 2 or theta.shape[1] != dim:
        raise ValueError(f"theta must have shape (N, {dim}), got {tuple(theta.shape)}")
    return theta.to(DTYPE)


def check_data(x: Tensor, dim: int, batch: int | None = None) -> Tensor:
    """Validate data of shape (M,) or (K, M) (K == ``batch`` when given); return float64."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim not in (1, 2) or x.shape[-1] != dim:
        raise ValueError(f"x must have shape ({dim},) or (K, {dim}), got {tuple(x.shape)}")
    if batch is not None and x.ndim == 2 and x.shape[0] != batch:
        raise ValueError(f"x has {x.shape[0]} rows but theta has {batch}; pass (M,) or (N, M)")
    return x.to(DTYPE)
