"""Oracles that use the task's exact likelihood: MCMC on the exact posterior, and amortized VI.

- ``oracle_mcmc``: the MCMC that NLE and NRE use (`sbibench.methods.mcmc_posterior`), run on
  the exact unnormalised posterior p(x | theta) p(theta). Its scores are what those methods
  would reach with a perfect estimator: what remains of their error beyond it is the
  estimator's, and its distance to the `exact` oracle is the sampler's.
- ``amortized_vi``: a Gaussian encoder q_phi(u | x) = N(mu(x), L(x) L(x)^T) on u = T^-1(theta),
  trained on the simulated data x_i ~ p(x) by maximising the reparameterised evidence lower
  bound (Kingma & Welling 2014), as for a VAE's encoder with a known decoder:
  ELBO(phi) = E_x E_{eps ~ N(0, I)} [log p(x | T(u)) + log p_u(u) - log q_phi(u | x)],
  u = mu(x) + L(x) eps, with the "sticking the landing" gradient (Roeder et al. 2017): the
  score term of log q is dropped, so the gradient's variance vanishes at the exact posterior.
  The mean is affine in x plus an MLP, the Cholesky factor a constant plus an MLP: on
  ``linear_gaussian_vae`` the exact posterior lies in the family, and its remaining gap measures
  optimisation alone.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from sbibench.methods.base import (
    Bookkeeping,
    dim_unconstrained,
    log_abs_det,
    log_prior_unconstrained,
    refuse_padded_sets,
    unconstrained,
)
from sbibench.methods.mcmc_posterior import MCMCPosterior, MCMCSettings, Potential
from sbibench.methods.posteriors import BasePosterior
from sbibench.methods.settings import fraction, positive, setting, widths
from sbibench.methods.training import prior_simulations
from sbibench.nn import ZScore, mlp, train
from sbibench.task import Task

__all__ = ["AmortizedVI", "GaussianEncoder", "OracleMCMC", "exact_potential"]


def exact_potential(task: Task) -> Potential:
    """log p(x | T(u)) as a potential: u (K, D), x (K, M) -> (K,)."""
    transform = unconstrained(task)

    def potential(u: Tensor, x: Tensor) -> Tensor:
        return task.log_likelihood(transform(u.double()), x.double())

    return potential


@dataclasses.dataclass(frozen=True)
class OracleMCMC(MCMCSettings):
    """The MCMC of NLE/NRE on the exact posterior (no simulation); see the module docstring."""

    name: ClassVar[str] = "oracle_mcmc"
    amortized: ClassVar[bool] = True

    def fit(self, task: Task, num_simulations: int, seed: int) -> MCMCPosterior:
        return MCMCPosterior(exact_potential(task), task, self, Bookkeeping())


class GaussianEncoder(nn.Module):
    """q(z | x) = N(mu(x), L(x) L(x)^T) on standardised z, in float64.

    mu(x) = A x + b + MLP(x); L(x) = tril(C + MLP(x)) with a softplus on the diagonal.

    Arguments:
        features: D.
        context: M.
        hidden_features: widths of the two MLPs.
    """

    def __init__(self, features: int, context: int, hidden_features: tuple = (64, 64)) -> None:
        super().__init__()
        self.features = features
        self.x_norm = ZScore(context)
        self.linear = nn.Linear(context, features)
        self.mean_net = mlp(context, features, hidden_features)
        self.scale_net = mlp(context, features * (features + 1) // 2, hidden_features)
        self.scale_bias = nn.Parameter(torch.zeros(features * (features + 1) // 2))
        self.register_buffer("rows", torch.tril_indices(features, features)[0])
        self.register_buffer("cols", torch.tril_indices(features, features)[1])
        for net in (self.mean_net, self.scale_net):  # start at the affine part
            nn.init.zeros_(net[-1].weight)
            nn.init.zeros_(net[-1].bias)
        self.double()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (N, M) -> mean (N, D) and Cholesky factor (N, D, D)."""
        h = self.x_norm(x)
        mean = self.linear(h) + self.mean_net(h)
        entries = self.scale_bias + self.scale_net(h)
        factor = torch.zeros(*entries.shape[:-1], self.features, self.features, dtype=h.dtype)
        factor[..., self.rows, self.cols] = entries
        diagonal = nn.functional.softplus(factor.diagonal(dim1=-2, dim2=-1) + 0.5413) + 1e-6
        return mean, factor.tril(-1) + torch.diag_embed(diagonal)  # softplus(0.5413) = 1


def _log_normal(eps: Tensor, factor: Tensor) -> Tensor:
    """log N(mean + L eps; mean, L L^T) for eps (N, D): -|eps|^2/2 - log|det L| - D/2 log 2 pi."""
    log_det = factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return -0.5 * eps.square().sum(-1) - log_det - 0.5 * eps.shape[-1] * math.log(2 * math.pi)


class VIPosterior(BasePosterior):
    """The trained encoder behind the `Posterior` interface (amortized); float64."""

    def __init__(
        self, encoder: GaussianEncoder, task: Task, norm: ZScore, bookkeeping: Bookkeeping
    ) -> None:
        self.encoder, self.norm = encoder.eval(), norm
        super().__init__(task, bookkeeping)
        self.transform = unconstrained(task)

    @torch.no_grad()
    def _draw(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        mean, factor = self.encoder(x.unsqueeze(0))
        eps = torch.randn(n, dim_unconstrained(self.task), generator=generator, dtype=torch.float64)
        z = mean + eps @ factor[0].T
        return self.transform(self.norm.inverse(z))

    @torch.no_grad()
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log q(theta | x): (N, D) and (M,) -> (N,), Jacobians of T and the z-scoring included."""
        x = self.check(x)
        theta = theta.double()
        u = self.transform.inv(theta)
        mean, factor = self.encoder(x.unsqueeze(0))
        z = self.norm(u)
        eps = torch.linalg.solve_triangular(factor[0], (z - mean).T, upper=False).T
        log_q = _log_normal(eps, factor[0]) + self.norm.log_abs_det(dim_unconstrained(self.task))
        return log_q - log_abs_det(self.transform, u, theta)


@dataclasses.dataclass(frozen=True)
class AmortizedVI:
    """Amortized variational inference with the exact likelihood; see the module docstring.

    Arguments:
        hidden_features: widths of the encoder's MLPs.
        batch_size, learning_rate, validation_fraction, patience, max_epochs: training (Adam;
            a patience of 40 epochs, as the ELBO's last gains come slowly; no clipping).
    """

    name: ClassVar[str] = "amortized_vi"
    amortized: ClassVar[bool] = True
    hidden_features: tuple = setting((64, 64), widths)
    batch_size: int = 200
    learning_rate: float = setting(1e-3, positive)
    validation_fraction: float = setting(0.1, fraction)
    patience: int = 40
    max_epochs: int | None = None

    def fit(self, task: Task, num_simulations: int, seed: int) -> VIPosterior:
        refuse_padded_sets(task, "amortized_vi", "its encoder is an MLP of the raw data")
        transform = unconstrained(task)
        with prior_simulations(task, num_simulations, seed) as run:
            theta, x = run.theta, run.x
            dim = dim_unconstrained(task)
            norm = ZScore(dim).double().fit_(transform.inv(theta))
            encoder = GaussianEncoder(dim, task.dim_data, self.hidden_features)
            encoder.x_norm.fit_(x)
            log_det_norm = norm.log_abs_det(dim)

            def negative_elbo(x_: Tensor) -> Tensor:
                mean, factor = encoder(x_)
                eps = torch.randn_like(mean)
                z = mean + (factor @ eps.unsqueeze(-1)).squeeze(-1)
                u = norm.inverse(z)
                # sticking the landing: log q at fixed (detached) variational parameters
                fixed = factor.detach()
                eps_fixed = torch.linalg.solve_triangular(
                    fixed, (z - mean.detach()).unsqueeze(-1), upper=False
                ).squeeze(-1)
                log_q = _log_normal(eps_fixed, fixed) + log_det_norm
                log_joint = task.log_likelihood(transform(u), x_) + log_prior_unconstrained(task, u)
                return -(log_joint - log_q).mean()

            train(
                encoder, negative_elbo, (x,), batch_size=self.batch_size,
                learning_rate=self.learning_rate, validation_fraction=self.validation_fraction,
                patience=self.patience, max_epochs=self.max_epochs, clip_norm=None, seed=seed,
            )  # fmt: skip
        return VIPosterior(encoder, task, norm, run.bookkeeping)
