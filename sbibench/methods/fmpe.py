"""Flow-matching posterior estimation (FMPE; Dax et al. 2023).

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
Jacobians of the z-scoring and of T (`sbibench.methods.posteriors.ODEPosterior`, which score-based
estimation shares).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor

from sbibench.methods.posteriors import ODEPosterior
from sbibench.methods.settings import check_settings, positive, setting
from sbibench.methods.training import (
    FieldSettings,
    TrainingSettings,
    noised_rows,
    prior_simulations,
)
from sbibench.nn import VectorField, train
from sbibench.task import Task

__all__ = ["FMPE"]


@dataclasses.dataclass(frozen=True)
class FMPE(FieldSettings, TrainingSettings):
    """Flow-matching posterior estimation; see the module docstring.

    Arguments:
        hidden_features: widths of the vector field's MLP.
        embedding: None, or ``"deepset"`` for i.i.d. data.
        sigma_min: width of the path's end point around each training parameter.
        time_power: a of p(t) ∝ t^a on [0, 1].
        ode_steps: RK4 steps from t = 0 to 1 (4 field evaluations each).
        batch_size, learning_rate, validation_fraction, patience, max_epochs, clip_norm:
            the training loop's settings (`TrainingSettings`, sbi's defaults).
    """

    name: ClassVar[str] = "fmpe"
    amortized: ClassVar[bool] = True
    sigma_min: float = setting(1e-4, positive)
    time_power: float = 0.0

    def fit(self, task: Task, num_simulations: int, seed: int) -> ODEPosterior:
        check_settings(self)
        with prior_simulations(task, num_simulations, seed) as run:
            u, x = run.u, run.x.float()
            norm, net = self.network(VectorField, task, u, x)
            shrink, power = 1 - self.sigma_min, self.time_power

            def loss(z1: Tensor, x_: Tensor) -> Tensor:
                generator, (z1, x_) = noised_rows(net, z1, x_)
                t = torch.rand(len(z1), 1, generator=generator) ** (1 / (1 + power))
                eps = torch.randn(z1.shape, generator=generator)
                z_t = t * z1 + (1 - shrink * t) * eps
                return (net(z_t, t[:, 0], x_) - (z1 - shrink * eps)).square().sum(-1).mean()

            train(net, loss, (norm(u), x), **self.fit_settings(seed))
        net.eval().requires_grad_(False)
        times = torch.linspace(0, 1, self.ode_steps + 1)
        return ODEPosterior(net, times, 1.0, norm, task, run.bookkeeping)
