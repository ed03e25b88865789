"""Posterior plumbing: one observation or a batch, a sequential posterior's own observation,
and the two learned posteriors that several methods share (a conditional estimator; an ODE).

- `sample_observations`: draws for x (M,) -> (n, D) or x (B, M) -> (n, B, D), each
  observation on its own generator when seeded (`observation_generator`), so a batch gives
  every observation exactly the draws it gets alone.
- `check_own_observation`: validate x and refuse any but the observation a sequential
  posterior was trained for.
- `record_budget`: the bookkeeping every posterior carries (simulations used, invalid, timings).
- `NeuralPosterior` (NPE, SNPE-B/C) and `ODEPosterior` (FMPE, NPSE).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from sbibench.autodiff import odeint
from sbibench.methods.base import (
    SimulationBudget,
    Timings,
    check_observation,
    dim_unconstrained,
    log_abs_det,
    observation_generator,
    same_data,
    unconstrained,
)
from sbibench.nn import Estimator, ZScore
from sbibench.task import Task

__all__ = [
    "NeuralPosterior",
    "ODEPosterior",
    "check_own_observation",
    "record_budget",
    "sample_observations",
]

Draw = Callable[[int, Tensor, torch.Generator | None], Tensor]  # n, x (M,), generator -> (n, D)


def sample_observations(
    one: Draw,
    n: int,
    x: Tensor,
    seed: int | None,
    batched: Callable[[int, Tensor], Tensor] | None = None,
) -> Tensor:
    """``one(n, x, generator)`` for x (M,) -> (n, D); for x (B, M) -> (n, B, D), one call per
    row, each on its own `observation_generator` (None without a seed). Without a seed and
    with ``batched(n, x)``, the batch is drawn in one call instead."""
    if x.ndim == 1:
        return one(n, x, observation_generator(seed, x) if seed is not None else None)
    if seed is None and batched is not None:
        return batched(n, x)
    rows = [
        one(n, row, observation_generator(seed, row) if seed is not None else None) for row in x
    ]
    return torch.stack(rows, dim=1)


def check_own_observation(
    x: Tensor,
    task: Task,
    observation: Tensor | None,
    batch: bool = False,
    message: str = "this posterior was trained sequentially for another observation",
) -> Tensor:
    """``x`` as float64 (`check_observation`); a ValueError with ``message`` unless it equals
    ``observation`` (None: an amortized posterior, which takes any)."""
    x = check_observation(x, task, batch=batch)
    if observation is not None and not (x.shape == observation.shape and same_data(x, observation)):
        raise ValueError(message)
    return x


def record_budget(posterior: object, budget: SimulationBudget | None, timings: Timings) -> None:
    """Give ``posterior`` the bookkeeping the runner reads: simulations used and dropped as
    invalid (0 and 0 without a budget), and the run's timings."""
    posterior.num_simulations_used = budget.used if budget is not None else 0
    posterior.num_invalid_simulations = budget.invalid if budget is not None else 0
    posterior.timings = timings


class NeuralPosterior:
    """q(theta | x) from a conditional estimator of u = T^-1(theta) (amortized).

    ``sample(n, x, seed)``: x (M,) -> (n, D); x (B, M) -> (n, B, D) (`sample_observations`;
    one batched pass without a seed). float64 out. ``log_prob(theta, x)``: (N, D) and (M,)
    -> (N,), the Jacobian of T included. A posterior of a sequential method is given its
    ``observation`` and refuses any other.
    """

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
        record_budget(self, budget, timings)

    def _one(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        u = self.estimator.sample(n, x.float(), generator=generator)
        return self.transform(u.double())

    def _batched(self, n: int, x: Tensor) -> Tensor:  # noise for every observation at once
        return self.transform(self.estimator.sample(n, x.float()).double())

    @torch.no_grad()
    def sample(self, n: int, x: Tensor, seed: int | None = None) -> Tensor:
        x = check_own_observation(x, self.task, self.observation, batch=True)
        with self.timings.phase("sample"):
            return sample_observations(self._one, n, x, seed, self._batched)

    @torch.no_grad()
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log q(theta | x): theta (N, D) and x (M,) -> (N,), Jacobian included."""
        x = check_own_observation(x, self.task, self.observation)
        theta = theta.double()
        u = self.transform.inv(theta)
        log_q = self.estimator.log_prob(u.float(), x.float()).double()
        return log_q - log_abs_det(self.transform, u, theta)


Field = Callable[[Tensor, Tensor, Tensor], Tensor]  # y (N, D), time (), x (N, M) -> (N, D)


class ODEPosterior:
    """q(theta | x) as the flow of dy/dt = field(y, t, x) along ``times``, from
    N(0, base_scale^2 I) at times[0] to z-scored u at times[-1] (amortized).

    ``sample(n, x, seed)``: x (M,) -> (n, D); x (B, M) -> (n, B, D) (one batched solve without a
    seed; with one, each observation on its own generator). ``log_prob(theta, x)``: (N, D) and
    (M,) -> (N,), from the exact divergence, Jacobians included.
    """

    def __init__(
        self,
        field: Field | nn.Module,
        times: Tensor,
        base_scale: float,
        norm: ZScore,
        task: Task,
        budget: SimulationBudget,
        timings: Timings,
    ) -> None:
        self.field, self.times, self.base_scale, self.norm = field, times, base_scale, norm
        self.task = task
        self.transform = unconstrained(task)
        record_budget(self, budget, timings)

    def _solve(self, eps: Tensor, x: Tensor) -> Tensor:
        y = _row_blocks(
            lambda e, x_: odeint(
                lambda y_, t: self.field(y_, t, x_), self.base_scale * e, self.times
            ),
            eps,
            x,
        )
        return self.transform(self.norm.inverse(y).double())

    def _noise(self, n: int, generator: torch.Generator | None) -> Tensor:
        return torch.randn(n, dim_unconstrained(self.task), generator=generator)

    def _one(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return self._solve(self._noise(n, generator), x.float())

    def _batched(self, n: int, x: Tensor) -> Tensor:  # one solve for every observation
        rows = x.float().repeat(n, 1)
        return self._solve(self._noise(n * len(x), None), rows).reshape(n, len(x), -1)

    @torch.no_grad()
    def sample(self, n: int, x: Tensor, seed: int | None = None) -> Tensor:
        x = check_observation(x, self.task, batch=True)
        with self.timings.phase("sample"):
            return sample_observations(self._one, n, x, seed, self._batched)

    @torch.no_grad()
    def sample_batch(self, n: int, x: Tensor, seed: int) -> Tensor:
        """Draws for many observations in one solve, for calibration: x (B, M) -> (n, B, D), a
        pure function of ``seed`` and the whole batch (one solve of n B rows instead of B
        solves of n; FMPE on linear_gaussian, 50 datasets x 100 draws: 0.86 s vs 2.89 s)."""
        x = check_observation(x, self.task, batch=True)
        if x.ndim != 2:
            raise ValueError(f"x must be a batch (B, {self.task.dim_data}), got {tuple(x.shape)}")
        with self.timings.phase("sample"):
            noise = self._noise(n * len(x), torch.Generator().manual_seed(seed))
            return self._solve(noise, x.float().repeat(n, 1)).reshape(n, len(x), -1)

    @torch.no_grad()
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log q(theta | x): (N, D) and (M,) -> (N,)."""
        return self._log_prob(theta, check_observation(x, self.task, batch=False))

    @torch.no_grad()
    def unnormalized_log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """`log_prob` (normalised, in fact) for theta (N, D) and x (M,), or x (N, M) paired with
        theta row by row: many observations in one solve, as calibration's HPD regions ask
        (FMPE on linear_gaussian, 50 datasets x 100 draws: 15.6 s vs 32.6 s for 50 calls; the
        exact divergence, 10 backward passes per field call, is most of either)."""
        x = check_observation(x, self.task, batch=True)
        if x.ndim == 2 and x.shape[0] != theta.shape[0]:
            raise ValueError(
                f"x must be (M,) or have one row per theta row ({theta.shape[0]}), "
                f"got {tuple(x.shape)}"
            )
        return self._log_prob(theta, x)

    def _log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        theta = theta.double()
        u = self.transform.inv(theta)
        y = self.norm(u).float()
        y0, integral = _row_blocks(
            lambda y, x_: odeint(
                lambda y_, t: self.field(y_, t, x_), y, self.times.flip(0), with_divergence=True
            ),
            y,
            x.float(),
        )
        d = y.shape[1]
        s = self.base_scale
        log_base = -0.5 * (y0.double() / s).square().sum(-1) - d * math.log(
            s * math.sqrt(2 * math.pi)
        )
        # backwards along the grid, integral = -int_0^1 div v dt
        log_q = log_base + integral.double() + self.norm.log_abs_det(d).double()
        return log_q - log_abs_det(self.transform, u, theta)


ROW_BLOCK = 4096


def _row_blocks(solve: Callable, y: Tensor, x: Tensor) -> Tensor | tuple[Tensor, ...]:
    """``solve(y, x)`` on blocks of at most `ROW_BLOCK` rows of y (N, D), with x (M,) shared or
    (N, M) split alike; rows are independent, so only the blocks' size changes. Why: the exact
    divergence's D tangents keep D x N x width activations alive, which at N = 100,000 leave the
    cache; in blocks of 4,096 a 10-D FMPE field's divergence ran 3x faster (1.2-1.7 s against
    3.7-5.6 s per call at N = 100,000, one thread, `benchmarks/bench_ode.py`)."""
    paired = x.ndim == 2
    parts = [
        solve(y[i : i + ROW_BLOCK], x[i : i + ROW_BLOCK] if paired else x)
        for i in range(0, len(y), ROW_BLOCK)
    ]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(column) for column in zip(*parts, strict=True))
    return torch.cat(parts)
