"""Flow-matching posterior estimation (FMPE; Dax et al. 2023), and the ODE posterior it shares
with score-based estimation.

FMPE learns a time-conditioned vector field v_phi(z, t, x) on z-scored u = T^-1(theta) whose
flow carries N(0, I) at t = 0 to the posterior at t = 1. On the optimal-transport path
z_t = t z_1 + (1 - (1 - sigma_min) t) eps (Lipman et al. 2023) it minimises the conditional
flow-matching loss

    E_{t ~ p(t), (theta, x), eps ~ N(0, I)} || v_phi(z_t, t, x) - (z_1 - (1 - sigma_min) eps) ||^2,

with p(t) ∝ t^a (``time_power`` = a; 0 is uniform; Dax et al.'s p(t) ∝ t^(1 / (1 + alpha))
weights times near the data in the same way). Samples solve dz/dt = v from t = 0 to 1 (fixed-step RK4); the
log-density follows the instantaneous change of variables (Chen et al. 2018),
log q(z_1) = log N(z_0) - int_0^1 div v(z_t, t) dt, integrated backwards with the exact
divergence (D forward-mode JVPs, `sbibench.autodiff.divergence`), then mapped to theta with the
Jacobians of the z-scoring and of T.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

from sbibench.autodiff import divergence
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
from sbibench.methods.npe import fit_settings
from sbibench.nn import DeepSet, VectorField, ZScore, train
from sbibench.task import Task

__all__ = ["FMPE", "ODEPosterior", "context_embedding", "odeint", "validation_noise"]

Field = Callable[[Tensor, Tensor], Tensor]  # (N, D) states and a scalar time -> (N, D)


def odeint(field: Field, y: Tensor, times: Tensor, with_divergence: bool = False):  # noqa: ANN201
    """Classical RK4 along the grid ``times`` (K + 1,) from y (N, D) at times[0].

    Returns y at times[-1] and, with ``with_divergence``, also int div field dt (N,) along the
    path (signed by the direction of the grid), from the exact divergence.
    """

    def step(y_: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        if not with_divergence:
            return field(y_, t), torch.zeros(y_.shape[0], dtype=y_.dtype)
        return divergence(lambda z: field(z, t), y_, with_value=True)

    total = torch.zeros(y.shape[0], dtype=y.dtype)
    for t0, t1 in zip(times[:-1], times[1:], strict=True):
        h = t1 - t0
        k1, d1 = step(y, t0)
        k2, d2 = step(y + h / 2 * k1, t0 + h / 2)
        k3, d3 = step(y + h / 2 * k2, t0 + h / 2)
        k4, d4 = step(y + h * k3, t1)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        total = total + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
    return (y, total) if with_divergence else y


def validation_noise(net: nn.Module) -> torch.Generator | None:
    """None in training (torch's forked global RNG); in evaluation, a generator seeded with 0
    on every call, so the validation loss of every epoch uses the same noise (common random
    numbers, 16 draws per row) and early stopping compares epochs rather than noise draws."""
    return None if getattr(net, "training", True) else torch.Generator().manual_seed(0)


def context_embedding(embedding: str | None, task: Task) -> tuple[nn.Module | None, int]:
    """(embedding net, context features) for ``None`` or ``"deepset"``, as in NPE."""
    if embedding is None:
        return None, task.dim_data
    if embedding == "deepset":
        return nn.Sequential(nn.Unflatten(-1, (task.dim_data, 1)), DeepSet(1, 20)), 20
    raise ValueError(f"embedding must be None or 'deepset', got {embedding!r}")


class ODEPosterior:
    """q(theta | x) as the flow of dy/dt = field(y, t, x) along ``times``, from
    N(0, base_scale^2 I) at times[0] to z-scored u at times[-1] (amortized).

    ``sample(n, x, seed)``: x (M,) -> (n, D); x (B, M) -> (n, B, D) (one batched solve without a
    seed; with one, each observation on its own generator). ``log_prob(theta, x)``: (N, D) and
    (M,) -> (N,), from the exact divergence, Jacobians included.
    """

    def __init__(self, field, times, base_scale, norm, task, budget, timings) -> None:  # noqa: ANN001
        self.field, self.times, self.base_scale, self.norm = field, times, base_scale, norm
        self.task, self.timings = task, timings
        self.transform = unconstrained(task)
        self.num_simulations_used = budget.used
        self.num_invalid_simulations = budget.invalid

    def _solve(self, eps: Tensor, x: Tensor) -> Tensor:
        y = odeint(lambda y_, t: self.field(y_, t, x), self.base_scale * eps, self.times)
        return self.transform(self.norm.inverse(y).double())

    def _noise(self, n: int, generator: torch.Generator | None) -> Tensor:
        return torch.randn(n, self.task.dim_parameters, generator=generator)

    @torch.no_grad()
    def sample(self, n: int, x: Tensor, seed: int | None = None) -> Tensor:
        x = check_observation(x, self.task, batch=True)
        with self.timings.phase("sample"):
            if x.ndim == 1:
                generator = observation_generator(seed, x) if seed is not None else None
                return self._solve(self._noise(n, generator), x.float())
            if seed is None:  # one solve for every observation
                rows = x.float().repeat(n, 1)
                return self._solve(self._noise(n * len(x), None), rows).reshape(n, len(x), -1)
            return torch.stack([self.sample(n, row, seed) for row in x], dim=1)

    @torch.no_grad()
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log q(theta | x): (N, D) and (M,) -> (N,)."""
        x = check_observation(x, self.task, batch=False)
        theta = theta.double()
        u = self.transform.inv(theta)
        y = self.norm(u).float()
        y0, integral = odeint(
            lambda y_, t: self.field(y_, t, x.float()), y, self.times.flip(0), with_divergence=True
        )
        d = y.shape[1]
        s = self.base_scale
        log_base = -0.5 * (y0.double() / s).square().sum(-1) - d * math.log(
            s * math.sqrt(2 * math.pi)
        )
        # backwards along the grid, integral = -int_0^1 div v dt
        log_q = log_base + integral.double() + self.norm.log_abs_det(d).double()
        return log_q - log_abs_det(self.transform, u, theta)


@dataclasses.dataclass(frozen=True)
class FMPE:
    """Flow-matching posterior estimation; see the module docstring.

    Arguments:
        hidden_features: widths of the vector field's MLP.
        embedding: None, or ``"deepset"`` for i.i.d. data.
        sigma_min: width of the path's end point around each training parameter.
        time_power: a of p(t) ∝ t^a on [0, 1].
        ode_steps: RK4 steps from t = 0 to 1 (4 field evaluations each).
        batch_size, learning_rate, validation_fraction, patience, max_epochs, clip_norm:
            the training loop's settings (sbi's defaults).
    """

    name: ClassVar[str] = "fmpe"
    amortized: ClassVar[bool] = True
    hidden_features: tuple = (64, 64, 64)
    embedding: str | None = None
    sigma_min: float = 1e-4
    time_power: float = 0.0
    ode_steps: int = 50
    batch_size: int = 200
    learning_rate: float = 5e-4
    validation_fraction: float = 0.1
    patience: int = 20
    max_epochs: int | None = None
    clip_norm: float | None = 5.0

    def fit(self, task: Task, num_simulations: int, seed: int) -> ODEPosterior:
        if (
            isinstance(self.ode_steps, bool)
            or not isinstance(self.ode_steps, int)
            or self.ode_steps < 1
        ):
            raise ValueError(f"ode_steps must be a whole number >= 1, got {self.ode_steps!r}")
        timings = Timings()
        with seeded(seed) as generator:
            budget = SimulationBudget(task, num_simulations, generator, timings)
            theta, x = budget.prior_predictive(num_simulations)
            require_valid(x, budget)
            with timings.phase("train"):
                u, x = unconstrained(task).inv(theta).float(), x.float()
                norm = ZScore(task.dim_parameters).fit_(u)
                embedding, context = context_embedding(self.embedding, task)
                net = VectorField(
                    task.dim_parameters, context, tuple(self.hidden_features), embedding=embedding
                )
                net.standardize_(x)
                shrink, power = 1 - self.sigma_min, self.time_power

                def loss(z1: Tensor, x_: Tensor) -> Tensor:
                    generator = validation_noise(net)
                    if generator is not None:  # validation: 16 noise draws per row
                        z1, x_ = z1.repeat(16, 1), x_.repeat(16, 1)
                    t = torch.rand(len(z1), 1, generator=generator) ** (1 / (1 + power))
                    eps = torch.randn(z1.shape, generator=generator)
                    z_t = t * z1 + (1 - shrink * t) * eps
                    return (net(z_t, t[:, 0], x_) - (z1 - shrink * eps)).square().sum(-1).mean()

                train(net, loss, (norm(u), x), **fit_settings(self, seed))
        net.eval().requires_grad_(False)
        times = torch.linspace(0, 1, self.ode_steps + 1)
        return ODEPosterior(net, times, 1.0, norm, task, budget, timings)
