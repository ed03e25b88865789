"""The one home of posterior plumbing, and the posteriors that several methods share.

- `BasePosterior`: what every posterior repeats. It holds the task, the run's `Bookkeeping`
  (simulations used and invalid, timings: what the runner records) and, for a sequential
  method, the observation it was trained for; it checks every observation (and refuses any
  other than its own), times the ``sample`` phase and draws for one observation or a batch
  (`sample_observations`). A posterior supplies only its draws for one observation.
- `NeuralPosterior` (NPE, SNPE-B/C, any estimator with ``sample`` and ``log_prob``),
  `TruncatedPosterior` (the same fitted on theta itself, leakage rejected) and
  `ODEPosterior` (FMPE, NPSE).
- `ParticlePosterior`, `scaled_distance` and `cv_bandwidth`: the weighted-particle posterior
  and distance of the ABC methods (rejection ABC, SMC-ABC).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sbibench.autodiff import odeint
from sbibench.methods.base import (
    Bookkeeping,
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
    "BasePosterior",
    "NeuralPosterior",
    "ODEPosterior",
    "ParticlePosterior",
    "TruncatedPosterior",
    "cv_bandwidth",
    "estimator_density",
    "sample_observations",
    "scaled_distance",
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


class BasePosterior:
    """The plumbing every posterior shares; a posterior adds its draws and densities.

    ``sample(n, x, seed=None)``: x (M,) -> (n, D) float64, and x (B, M) -> (n, B, D) where
    ``batch`` is true; the phase is timed as ``sample``. A subclass supplies
    ``_draw(n, x, generator)``: x (M,) -> (n, D), and may supply ``_draw_batch(n, x)``: x (B,
    M) -> (n, B, D) for an unseeded batch in one call. Its ``log_prob`` and the like call
    `check` (or `check_batch`, `check_paired`) on their observations.

    Arguments:
        task: the task the posterior is for.
        bookkeeping: what the run spent (`Bookkeeping`); the posterior's sampling time adds
            to its timings.
        observation: (M,) the observation a sequential method was trained for, whose
            posterior refuses any other; None for an amortized posterior.
    """

    batch: ClassVar[bool] = True  # whether `sample` takes a batch (B, M) of observations
    refusal: ClassVar[str] = "this posterior was trained sequentially for another observation"
    _draw_batch: Callable[[int, Tensor], Tensor] | None = None

    def __init__(
        self, task: Task, bookkeeping: Bookkeeping, observation: Tensor | None = None
    ) -> None:
        if not isinstance(bookkeeping, Bookkeeping):
            raise TypeError(f"bookkeeping must be a Bookkeeping, got {type(bookkeeping).__name__}")
        self.task = task
        self.bookkeeping = bookkeeping
        self.observation = observation

    @property
    def num_simulations_used(self) -> int:
        return self.bookkeeping.num_simulations_used

    @property
    def num_invalid_simulations(self) -> int:
        return self.bookkeeping.num_invalid_simulations

    @property
    def timings(self) -> Timings:
        return self.bookkeeping.timings

    def _draw(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not define _draw")

    def check(self, x: Tensor, batch: bool = False) -> Tensor:
        """``x`` (M,), or (B, M) when ``batch``, as float64 (`check_observation`); a
        ValueError (``refusal``) for a sequential posterior unless it is its own observation."""
        x = check_observation(x, self.task, batch=batch)
        own = self.observation
        if own is not None and not (x.shape == own.shape and same_data(x, own)):
            raise ValueError(self.refusal)
        return x

    def check_batch(self, x: Tensor) -> Tensor:
        """`check` for a batch that must be one: x (B, M)."""
        x = self.check(x, batch=True)
        if x.ndim != 2:
            raise ValueError(f"x must be a batch (B, {self.task.dim_data}), got {tuple(x.shape)}")
        return x

    def check_paired(self, theta: Tensor, x: Tensor) -> Tensor:
        """`check` for x (M,) shared by every row of theta (N, D), or x (N, M) paired with it
        row by row."""
        x = self.check(x, batch=True)
        if x.ndim == 2 and x.shape[0] != theta.shape[0]:
            raise ValueError(
                f"x must be (M,) or have one row per theta row ({theta.shape[0]}), "
                f"got {tuple(x.shape)}"
            )
        return x

    def sample(self, n: int, x: Tensor, seed: int | None = None) -> Tensor:
        """(n, D) draws for x (M,); (n, B, D) for x (B, M) where ``batch``. With a ``seed``
        each observation's draws are a pure function of the seed and that observation."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a whole number >= 1, got {n!r}")
        x = self.check(x, batch=self.batch)
        with self.timings.phase("sample"):
            return sample_observations(self._draw, n, x, seed, self._draw_batch)


class NeuralPosterior(BasePosterior):
    """q(theta | x) from a conditional estimator of u = T^-1(theta) (amortized, unless given
    the ``observation`` of a sequential method).

    ``sample(n, x, seed)``: x (M,) -> (n, D); x (B, M) -> (n, B, D) (one batched pass without
    a seed). float64 out. ``log_prob(theta, x)``: (N, D) and (M,) -> (N,), the Jacobian of T
    included.
    """

    def __init__(
        self,
        estimator: Estimator,
        task: Task,
        bookkeeping: Bookkeeping,
        observation: Tensor | None = None,
    ) -> None:
        self.estimator = estimator.eval()
        super().__init__(task, bookkeeping, observation)
        self.transform = unconstrained(task)

    @torch.no_grad()
    def _draw(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        u = self.estimator.sample(n, x.float(), generator=generator)
        return self.transform(u.double())

    @torch.no_grad()
    def _draw_batch(self, n: int, x: Tensor) -> Tensor:  # noise for every observation at once
        return self.transform(self.estimator.sample(n, x.float()).double())

    @torch.no_grad()
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log q(theta | x): theta (N, D) and x (M,) -> (N,), Jacobian included."""
        log_q, _, log_det = estimator_density(self.estimator, self.transform, theta, self.check(x))
        return log_q - log_det


class TruncatedPosterior(BasePosterior):
    """q(theta | x) restricted to the prior's support: an estimator of theta itself whose draws
    outside the support are rejected, and whose density is divided by its mass inside
    (amortized, unless given the ``observation`` of a sequential method). sbi's leakage
    correction; NPE and SNPE-C with ``space = "constrained"``.

    ``sample(n, x, seed)``: x (M,) -> (n, D) float64, every draw inside the support.
    ``log_prob(theta, x)``: (N, D) and (M,) -> (N,), -inf outside the support.
    ``acceptance(x)``: the estimator's mass inside the support, from ``leakage_draws`` draws.
    """

    batch = True
    leakage_draws: ClassVar[int] = 10_000
    min_acceptance: ClassVar[float] = 1e-4  # below it, sampling would take too long: refused

    def __init__(
        self,
        estimator: Estimator,
        task: Task,
        bookkeeping: Bookkeeping,
        observation: Tensor | None = None,
    ) -> None:
        self.estimator = estimator.eval()
        super().__init__(task, bookkeeping, observation)

    def _inside(self, theta: Tensor) -> Tensor:
        return self.task.prior.support.check(theta)

    @torch.no_grad()
    def _draw(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        kept: list[Tensor] = []
        found, drawn = 0, 0
        while found < n:
            # ask for what is missing over the acceptance so far, a fifth more, at least 1,000
            rate = found / drawn if drawn else 1.0
            if drawn >= self.leakage_draws and rate < self.min_acceptance:
                raise RuntimeError(self._leaking(x, rate))
            size = max(1000, math.ceil(1.2 * (n - found) / max(rate, self.min_acceptance)))
            size = min(size, 1_000_000)
            theta = self.estimator.sample(size, x.float(), generator=generator).double()
            inside = theta[self._inside(theta)]
            kept.append(inside)
            found, drawn = found + len(inside), drawn + size
        return torch.cat(kept)[:n]

    def _leaking(self, x: Tensor, rate: float) -> str:
        return (
            f"task {self.task.name!r}: only {rate:.2e} of the estimator's draws fall inside the "
            f"prior's support for x = {x.tolist()}; fit with space = 'unconstrained'"
        )

    @torch.no_grad()
    def acceptance(self, x: Tensor) -> float:
        """The share of the estimator's draws for x (M,) that fall inside the support."""
        x = self.check(x)
        gen = torch.Generator().manual_seed(0)  # the same estimate on every call
        theta = self.estimator.sample(self.leakage_draws, x.float(), generator=gen).double()
        return float(self._inside(theta).double().mean())

    @torch.no_grad()
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log q(theta | x) - log P_q(support | x): theta (N, D) and x (M,) -> (N,)."""
        x = self.check(x)
        theta = theta.double()
        accepted = self.acceptance(x)
        if accepted < self.min_acceptance:
            raise RuntimeError(self._leaking(x, accepted))
        log_q = self.estimator.log_prob(theta.float(), x.float()).double() - math.log(accepted)
        return torch.where(self._inside(theta), log_q, -math.inf)


def estimator_density(
    estimator: Estimator, transform: Any, theta: Tensor, x: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """An estimator's log q(u | x) at u = T^-1(theta), u, and log|det dT/du|: theta (N, D),
    x (M,) -> (N,), (N, D'), (N,), float64 (the estimator runs in float32)."""
    theta = theta.double()
    u = transform.inv(theta)
    log_q = estimator.log_prob(u.float(), x.float()).double()
    return log_q, u, log_abs_det(transform, u, theta)


Field = Callable[[Tensor, Tensor, Tensor], Tensor]  # y (N, D), time (), x (N, M) -> (N, D)


class ODEPosterior(BasePosterior):
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
        bookkeeping: Bookkeeping,
    ) -> None:
        self.field, self.times, self.base_scale, self.norm = field, times, base_scale, norm
        super().__init__(task, bookkeeping)
        self.transform = unconstrained(task)

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

    @torch.no_grad()
    def _draw(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return self._solve(self._noise(n, generator), x.float())

    @torch.no_grad()
    def _draw_batch(self, n: int, x: Tensor) -> Tensor:  # one solve for every observation
        rows = x.float().repeat(n, 1)
        return self._solve(self._noise(n * len(x), None), rows).reshape(n, len(x), -1)

    @torch.no_grad()
    def sample_batch(self, n: int, x: Tensor, seed: int) -> Tensor:
        """Draws for many observations in one solve of n B rows (instead of B solves of n
        rows), for calibration: x (B, M) -> (n, B, D), a pure function of ``seed`` and the
        whole batch."""
        x = self.check_batch(x)
        with self.timings.phase("sample"):
            noise = self._noise(n * len(x), torch.Generator().manual_seed(seed))
            return self._solve(noise, x.float().repeat(n, 1)).reshape(n, len(x), -1)

    @torch.no_grad()
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log q(theta | x): (N, D) and (M,) -> (N,)."""
        return self._log_prob(theta, self.check(x))

    @torch.no_grad()
    def unnormalized_log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """`log_prob` (normalised, in fact) for theta (N, D) and x (M,), or x (N, M) paired with
        theta row by row: many observations in one solve, as calibration's HPD regions ask."""
        return self._log_prob(theta, self.check_paired(theta, x))

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
    divergence's D tangents keep D x N x width activations alive, which for large N leave the
    cache; blocks keep them in it (`benchmarks/bench_ode.py` measures it)."""
    paired = x.ndim == 2
    parts = [
        solve(y[i : i + ROW_BLOCK], x[i : i + ROW_BLOCK] if paired else x)
        for i in range(0, len(y), ROW_BLOCK)
    ]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(column) for column in zip(*parts, strict=True))
    return torch.cat(parts)


def scaled_distance(summaries: Tensor, observed: Tensor, scale: Tensor) -> Tensor:
    """Euclidean distance of (N, S) summaries to (S,) observed ones, each summary divided by
    its ``scale`` (S,) (a zero scale counts as 1: a constant summary adds nothing)."""
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return ((summaries - observed) / scale).norm(dim=-1)


class ParticlePosterior(BasePosterior):
    """A posterior given by weighted particles for one observation (ABC), sampled by a
    Gaussian KDE in the unconstrained space, or by plain resampling when ``kde`` is false.

    The kernel is isotropic, ``h^2 I`` with ``h`` chosen by cross-validated likelihood
    (`cv_bandwidth`), as sbibm's ABC posteriors (sbi's ``get_kde(bandwidth="cv")``); Scott's
    rule on the weighted covariance smoothed over the gap between two_moons' crescents.

    Arguments:
        task: the task (for the support transform and shapes).
        observation: the (M,) observation these particles are for.
        particles: (P, D) particles in the unconstrained space.
        weights: (P,) normalised importance weights, or None for equal weights.
        kde: smooth the resampled particles with the Gaussian kernel.
        bookkeeping: what the run spent.
    """

    batch = False
    refusal = "this ABC posterior was run for another observation; ABC is not amortized"

    def __init__(
        self,
        task: Task,
        observation: Tensor,
        particles: Tensor,
        weights: Tensor | None,
        kde: bool,
        bookkeeping: Bookkeeping,
    ) -> None:
        super().__init__(task, bookkeeping, observation)
        self.particles = particles
        count = particles.shape[0]
        self.weights = weights if weights is not None else torch.full((count,), 1.0 / count)
        self.weights = self.weights.double()
        self.kde = kde
        self.transform = unconstrained(task)
        self.bandwidth = cv_bandwidth(particles.double(), self.weights) if kde else 0.0

    def _draw(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        index = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        u = self.particles[index]
        if self.kde:
            noise = torch.randn(n, u.shape[1], generator=generator, dtype=u.dtype)
            u = u + self.bandwidth * noise
        return self.transform(u)


def cv_bandwidth(
    particles: Tensor, weights: Tensor, folds: int = 20, steps: int = 10, zooms: int = 5
) -> float:
    """The isotropic Gaussian-kernel bandwidth of largest cross-validated log-likelihood.

    sbi's ``get_kde(bandwidth="cv")``, which sbibm's ABC methods use, in substance: a grid of
    ``steps`` bandwidths from 0.1 to 0.5 times the standard deviation of all entries of the
    particles, ``folds``-fold held-out log-likelihood (weighted by the particles' weights),
    then ``zooms - 1`` finer grids between the best bandwidth and its better neighbour, stopping
    when the best score changes by less than 1e-3. Folds are fixed (a seeded permutation), so
    the choice is deterministic. Where sbi zooms out at the edge of its grid, here the grid
    is extended by one step past the edge instead.

    Arguments:
        particles: (P, D) particles, P >= 2.
        weights: (P,) normalised weights.
        folds: Number of folds (at most P).
        steps: Bandwidths per grid.
        zooms: Grids at most, the first included.

    Returns:
        The bandwidth, in the particles' units.

    Example:
        >>> u = torch.randn(200, 2, dtype=torch.float64)
        >>> 0.05 < cv_bandwidth(u, torch.full((200,), 1 / 200, dtype=torch.float64)) < 1.0
        True
    """
    count, dim = particles.shape
    folds = min(folds, count)
    fold = torch.empty(count, dtype=torch.long)
    fold[torch.randperm(count, generator=torch.Generator().manual_seed(0))] = (
        torch.arange(count) % folds
    )
    held_out = fold.unsqueeze(0) != fold.unsqueeze(1)  # (P, P): j may explain i
    squared = torch.cdist(particles, particles).square()
    # log weight of j as a kernel centre for i: -inf within i's own fold
    log_w = torch.where(held_out, weights.log().unsqueeze(0), -math.inf)
    log_mass = torch.logsumexp(log_w, 1)  # the other folds' total weight, per point

    def score(h: float) -> float:
        log_kernel = -0.5 * squared / h**2 - dim * math.log(h * math.sqrt(2 * math.pi))
        density = torch.logsumexp(log_w + log_kernel, 1) - log_mass  # under the other folds
        return float((weights * density).sum())

    spread = float(particles.std())
    if not spread > 0:  # all particles equal: nothing to smooth
        return 0.0
    low, high, best = 0.1 * spread, 0.5 * spread, -math.inf
    for _ in range(zooms):
        grid = torch.linspace(low, high, steps, dtype=torch.float64).tolist()
        scores = [score(h) for h in grid]
        top = max(range(steps), key=scores.__getitem__)
        if abs(scores[top] - best) < 1e-3:
            break
        best, chosen = scores[top], grid[top]
        step = grid[1] - grid[0]
        if top in (0, steps - 1):  # at an edge: one step further out
            low, high = max(grid[top] - step, 1e-3 * step), grid[top] + step
        else:
            neighbour = top - 1 if scores[top - 1] > scores[top + 1] else top + 1
            low, high = sorted((grid[top], grid[neighbour]))
    return chosen
