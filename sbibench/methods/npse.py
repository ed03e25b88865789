"""Neural posterior score estimation (NPSE; Sharrock et al. 2022, Geffner et al. 2023) with a
variance-preserving diffusion, sampled by its probability-flow ODE.

The forward diffusion on z-scored u = T^-1(theta) is the VP SDE of Song et al. (2021) with
beta(t) = beta_min + t (beta_max - beta_min): z_t = alpha_t z + sigma_t eps, alpha_t =
exp(-int_0^t beta / 2), sigma_t^2 = 1 - alpha_t^2. In the scaled variable y = z_t / alpha_t it is
y = z + s_t eps with noise level s_t = sigma_t / alpha_t, so a `sbibench.nn.ScoreNet`
s_phi(y, s, x) (preconditioned for that form) learns grad_y log p_s(y | x) by denoising score
matching, weighted by s^2:

    E_{t ~ U(t_eps, 1), (theta, x), eps} || s_t s_phi(z + s_t eps, s_t, x) + eps ||^2.

The VP probability-flow ODE dz/dt = -beta(t) / 2 (z + grad log p_t(z)) is, in y and s, the ODE
dy/ds = -s grad_y log p_s(y) (Karras et al. 2022): samples start from N(0, (1 + s_max^2) I) at
s_max = s_1 (the VP prior N(0, I) scaled by 1 / alpha_1) and are integrated with RK4 on the
noise levels of Karras et al. (rho = 7) down to s_min = s_{t_eps}, then one last RK4 step from
s_min to 0 (`score_flow`); the log-density follows the same ODE backwards with the exact
divergence (`sbibench.methods.posteriors.ODEPosterior`).

The last step is the denoising one: stopping at s_min would return the posterior convolved with
N(0, s_min^2 I) (on normal_mean, s_min = 0.0105 against a z-scored posterior sd of 0.105: sd
0.5% too large, log-density off by 0.015 nats at 2 sd and 0.07 at 4 sd). The network is
trained on s >= s_min only, so below s_min the field uses the score at s_min: over [0, s_min]
the flow moves y by a fraction of about s_min^2 / (2 var) of its distance to the mean, and the
score changes there by a fraction s_min^2 / var, so freezing it errs by about
(s_min^2 / var)^2 / 4 of a posterior sd (3e-5 on normal_mean). A Tweedie step
y + s_min^2 score (Karras et al.'s last Euler step) would denoise the mean but shrink the
spread by as much as the noise widened it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from sbibench.methods.posteriors import ODEPosterior
from sbibench.methods.settings import (
    above,
    check_settings,
    fraction,
    positive,
    setting,
)
from sbibench.methods.training import (
    FieldSettings,
    TrainingSettings,
    noised_rows,
    prior_simulations,
)
from sbibench.nn import ScoreNet, train
from sbibench.task import Task

__all__ = ["NPSE", "noise_levels", "score_flow"]


def noise_levels(t: Tensor, beta_min: float, beta_max: float) -> Tensor:
    """s_t = sigma_t / alpha_t of the VP SDE with linear beta, for t in (0, 1]."""
    integral = beta_min * t + 0.5 * (beta_max - beta_min) * t.square()  # int_0^t beta
    return torch.expm1(integral).sqrt()  # sigma^2 / alpha^2 = exp(int beta) - 1


def karras_grid(s_max: float, s_min: float, steps: int, rho: float = 7.0) -> Tensor:
    """Noise levels from s_max down to s_min, (steps + 1,), dense near s_min."""
    i = torch.linspace(0, 1, steps + 1)
    return (s_max ** (1 / rho) + i * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho


Score = Callable[[Tensor, Tensor, Tensor], Tensor]  # y (N, D), s (scalar), x -> (N, D)


def score_flow(
    score: Score, s_max: float, s_min: float, steps: int
) -> tuple[Callable[[Tensor, Tensor, Tensor], Tensor], Tensor, float]:
    """The probability-flow ODE dy/ds = -s score(y, s, x) of a noise-level-conditioned score,
    as `sbibench.methods.posteriors.ODEPosterior` takes it: (field, noise levels, base scale).

    The noise levels are ``karras_grid(s_max, s_min, steps)`` followed by 0, (steps + 2,); below
    s_min the score is taken at s_min (see the module docstring). The base is N(0, (1 +
    s_max^2) I), the VP prior scaled to y.
    """
    grid = torch.cat([karras_grid(s_max, s_min, steps), torch.zeros(1)])

    def field(y: Tensor, s: Tensor, x: Tensor) -> Tensor:
        return -s * score(y, s.clamp(min=s_min), x)

    return field, grid, (1 + s_max**2) ** 0.5


@dataclasses.dataclass(frozen=True)
class NPSE(FieldSettings, TrainingSettings):
    """Score-based posterior estimation with a VP diffusion; see the module docstring.

    Arguments:
        hidden_features: widths of the score network's MLP.
        embedding: None, or ``"deepset"`` for i.i.d. data.
        beta_min, beta_max: the VP noise schedule (Song et al. 2021: 0.1 and 20).
        t_eps: smallest diffusion time trained on; the ODE goes on from s_{t_eps} to zero
            noise with the score frozen there.
        ode_steps: RK4 steps of the probability-flow ODE from s_max to s_min (4 score
            evaluations each); one more step goes from s_min to 0.
        batch_size, learning_rate, validation_fraction, patience, max_epochs, clip_norm:
            the training loop's settings (`TrainingSettings`): sbi's, except a learning rate
            of 1e-3 and a patience of 100 epochs, as the denoising loss improves slowly and
            noisily.
    """

    name: ClassVar[str] = "npse"
    amortized: ClassVar[bool] = True
    beta_min: float = setting(0.1, positive)
    beta_max: float = setting(20.0, above("beta_min"))
    t_eps: float = setting(1e-3, fraction)
    learning_rate: float = setting(1e-3, positive)
    patience: int = 100

    def fit(self, task: Task, num_simulations: int, seed: int) -> ODEPosterior:
        check_settings(self)
        with prior_simulations(task, num_simulations, seed) as run:
            u, x = run.u, run.x.float()
            norm, net = self.network(ScoreNet, task, u, x)

            def loss(z: Tensor, x_: Tensor) -> Tensor:
                generator, (z, x_) = noised_rows(net, z, x_)
                t = self.t_eps + (1 - self.t_eps) * torch.rand(len(z), generator=generator)
                eps = torch.randn(z.shape, generator=generator)
                s = noise_levels(t, self.beta_min, self.beta_max)
                y = z + s.unsqueeze(1) * eps
                return (s.unsqueeze(1) * net(y, s, x_) + eps).square().sum(-1).mean()

            train(net, loss, (norm(u), x), **self.fit_settings(seed))
        net.eval().requires_grad_(False)
        levels = noise_levels(torch.tensor([1.0, self.t_eps]), self.beta_min, self.beta_max)
        s_max, s_min = float(levels[0]), float(levels[1])
        field, grid, base_scale = score_flow(net, s_max, s_min, self.ode_steps)
        return ODEPosterior(field, grid, base_scale, norm, task, run.bookkeeping)
