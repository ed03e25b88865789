"""Failing simulators: a card's ``[failures]`` table, the rows it makes fail, and their errors.

A task card may say that a stated fraction of its simulations fail::

    [failures]
    fraction = 0.2   # each simulation fails with this probability, in [0, 1)
    mode = "nan"     # "nan": a failed row comes back NaN; "raise": the call raises

Which rows fail is drawn after the model has simulated the batch, one uniform per row from
the simulation's own generator (the global RNG where none is given): independently of theta
and of the data, so the simulations that succeed follow the model's likelihood and the exact
posterior, the reference posteriors and the observations are the model's (references draw
their observations from the model, which never fails). A seeded run reproduces its failures.

In mode ``"raise"`` a call with at least one failed row raises `SimulationError`, naming how
many of the batch failed; ``error.x`` holds the whole batch (N, M) with the failed rows NaN
and ``error.failed`` (N,) says which. The rest of the batch is not lost: `simulate_or_nan`
turns the error back into those NaN rows, and every budget of sbibench (`SimulationBudget`,
the budgeted simulator an ``external`` or ``sbibm`` method receives) and calibration call the
simulator through it, so both modes end the same way: every row of the call counts as spent,
the failed ones are dropped and counted as invalid (``num_invalid_simulations``), and nothing
is simulated again. Re-simulating the failed rows, or retrying the batch row by row, would give
a failed simulation a second chance to succeed (the failure rate would be below the stated
one) and spend budget that the record could not account for. Code that calls
``task.simulate`` itself, outside a budget, sees the error.

Example:
    >>> import torch
    >>> failures = Failures(fraction=0.5, mode="nan")
    >>> x = failures.apply(torch.zeros(1000, 3), torch.Generator().manual_seed(0))
    >>> int(x.isnan().all(-1).sum())
    500
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sbibench.models.common import Field, real

__all__ = ["FIELDS", "MODES", "Failures", "SimulationError", "simulate_or_nan"]

MODES = ("nan", "raise")


class SimulationError(RuntimeError):
    """Simulations of a batch failed (a task whose card says ``[failures] mode = "raise"``).

    Attributes:
        x: the whole batch (N, M), float64, the failed rows NaN.
        failed: (N,) bool, which rows failed.
    """

    def __init__(self, x: Tensor, failed: Tensor) -> None:
        self.x = x
        self.failed = failed
        super().__init__(
            f"{int(failed.sum())} of {failed.shape[0]} simulations failed; error.x holds the "
            "batch with the failed rows NaN"
        )


def _fraction(value: Any) -> float:
    number = real("").check(value)
    if not 0 <= number < 1:
        raise ValueError(f"must lie in [0, 1), got {value!r}")
    return number


def _mode(value: Any) -> str:
    if value not in MODES:
        raise ValueError(f"must be one of {', '.join(map(repr, MODES))}, got {value!r}")
    return value


# The fields of a card's [failures] table; both are required.
FIELDS = {
    "fraction": Field("the probability that a simulation fails, in [0, 1)", _fraction),
    "mode": Field('"nan" (failed rows come back NaN) or "raise" (the call raises)', _mode),
}


@dataclass(frozen=True)
class Failures:
    """A stated fraction of simulations that fail, independently of theta.

    Arguments:
        fraction: the probability that each simulation fails, in [0, 1).
        mode: ``"nan"`` or ``"raise"`` (see the module's docstring).
    """

    fraction: float
    mode: str

    def apply(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Fail each row of the simulated batch x (N, M) with probability ``fraction``: one
        uniform per row from ``generator``. Returns x with the failed rows NaN (mode "nan").

        Raises:
            SimulationError: mode "raise" and at least one row failed.
        """
        uniform = torch.rand(x.shape[0], generator=generator, dtype=torch.float64)
        failed = uniform < self.fraction
        if not failed.any():
            return x
        x = x.masked_fill(failed.unsqueeze(-1), float("nan"))
        if self.mode == "raise":
            raise SimulationError(x, failed)
        return x


def simulate_or_nan(
    simulate: Callable[[Tensor, torch.Generator | None], Tensor],
    theta: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``simulate(theta, generator)`` (N, D) -> (N, M), with a `SimulationError`'s batch
    returned instead of raised: its failed rows NaN, for the caller to drop and count."""
    try:
        return simulate(theta, generator)
    except SimulationError as error:
        return error.x
