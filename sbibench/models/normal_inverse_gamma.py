"""Normal draws with unknown mean and variance under a Normal-Inverse-Gamma prior.

    sigma^2 ~ InvGamma(alpha0, beta0),  mu | sigma^2 ~ N(mu0, sigma^2 / kappa0),
    x_1..x_n ~ N(mu, sigma^2) i.i.d.

The posterior is NIG(mu_n, kappa_n, alpha_n, beta_n) with kappa_n = kappa0 + n,
mu_n = (kappa0 mu0 + n xbar) / kappa_n, alpha_n = alpha0 + n / 2 and
beta_n = beta0 + S / 2 + kappa0 n (xbar - mu0)^2 / (2 kappa_n), S = sum (x_i - xbar)^2
(Murphy 2007, "Conjugate Bayesian analysis of the Gaussian distribution", sec. 6).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Distribution, InverseGamma, Normal, constraints

from sbibench.models.common import (
    DTYPE,
    Family,
    check_data,
    check_theta,
    count,
    positive,
    real,
)

__all__ = ["NormalInverseGamma", "NormalMeanVariance", "NORMAL_INVERSE_GAMMA"]


class NormalInverseGamma(Distribution):
    """The joint distribution of (mu, sigma^2): event shape (2,), batched over its parameters.

    Arguments:
        loc: mu0, shape (*batch,).
        precision: kappa0 > 0 (a pseudo-count), broadcastable to ``loc``.
        concentration: alpha0 > 0.
        scale: beta0 > 0.
    """

    arg_constraints = {
        "loc": constraints.real,
        "precision": constraints.positive,
        "concentration": constraints.positive,
        "scale": constraints.positive,
    }
    support = constraints.independent(
        constraints.cat([constraints.real, constraints.positive], dim=-1, lengths=[1, 1]), 1
    )
    has_rsample = False

    def __init__(
        self,
        loc: Tensor,
        precision: Tensor,
        concentration: Tensor,
        scale: Tensor,
        validate_args: bool | None = None,
    ) -> None:
        self.loc, self.precision, self.concentration, self.scale = torch.broadcast_tensors(
            loc, precision, concentration, scale
        )
        super().__init__(self.loc.shape, torch.Size([2]), validate_args=validate_args)

    def _variance_dist(self) -> InverseGamma:
        return InverseGamma(self.concentration, self.scale)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        with torch.no_grad():
            variance = self._variance_dist().sample(sample_shape)
            mu = Normal(self.loc, (variance / self.precision).sqrt()).sample()
            return torch.stack([mu, variance], dim=-1)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        mu, variance = value[..., 0], value[..., 1]
        log_variance = self._variance_dist().log_prob(variance)
        return log_variance + Normal(self.loc, (variance / self.precision).sqrt()).log_prob(mu)

    @property
    def mean(self) -> Tensor:
        """(E[mu], E[sigma^2]); the second is finite for alpha > 1."""
        return torch.stack([self.loc, self.scale / (self.concentration - 1)], dim=-1)

    @property
    def variance(self) -> Tensor:
        """Var[mu] = beta / ((alpha - 1) kappa) and Var[sigma^2]; finite for alpha > 2."""
        alpha, beta = self.concentration, self.scale
        var_mu = beta / ((alpha - 1) * self.precision)
        var_sigma2 = beta**2 / ((alpha - 1) ** 2 * (alpha - 2))
        return torch.stack([var_mu, var_sigma2], dim=-1)

    @property
    def covariance_matrix(self) -> Tensor:
        """mu and sigma^2 are uncorrelated (E[mu - mu0 | sigma^2] = 0): a diagonal matrix."""
        return torch.diag_embed(self.variance)


@dataclass(frozen=True)
class NormalMeanVariance:
    """(mu, sigma^2) of ``num_draws`` i.i.d. normal draws under a NIG prior."""

    mean: float
    kappa: float
    alpha: float
    beta: float
    num_draws: int
    parameter_names: tuple[str, ...] = ("mean", "variance")

    @property
    def prior(self) -> NormalInverseGamma:
        return NormalInverseGamma(*(torch.tensor(v, dtype=DTYPE) for v in self._prior_args()))

    def _prior_args(self) -> tuple[float, float, float, float]:
        return self.mean, self.kappa, self.alpha, self.beta

    @property
    def data_dim(self) -> int:
        return self.num_draws

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(N, 2) (mu, sigma^2) -> (N, n) float64."""
        theta = check_theta(theta, 2)
        eps = torch.randn(theta.shape[0], self.num_draws, generator=generator, dtype=DTYPE)
        return theta[:, :1] + theta[:, 1:].sqrt() * eps

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """(N, 2) and (n,) or (N, n) -> (N,)."""
        theta = check_theta(theta, 2)
        x = check_data(x, self.num_draws, batch=theta.shape[0])
        return Normal(theta[:, :1], theta[:, 1:].sqrt()).log_prob(x).sum(-1)

    def summary(self, x: Tensor) -> Tensor:
        """(N, n) -> (N, 2): sample mean and standard deviation, sufficient statistics."""
        x = check_data(x, self.num_draws).reshape(-1, self.num_draws)
        return torch.stack([x.mean(-1), x.std(-1)], dim=-1)

    def posterior(self, x: Tensor) -> NormalInverseGamma:
        """(n,) or (K, n) -> NIG posterior, batch shape () or (K,)."""
        x = check_data(x, self.num_draws)
        n = self.num_draws
        xbar = x.mean(-1)
        spread = ((x - xbar.unsqueeze(-1)) ** 2).sum(-1)
        kappa_n = self.kappa + n
        loc = (self.kappa * self.mean + n * xbar) / kappa_n
        beta_n = self.beta + spread / 2 + self.kappa * n * (xbar - self.mean) ** 2 / (2 * kappa_n)
        alpha_n = torch.full_like(xbar, self.alpha + n / 2)
        return NormalInverseGamma(loc, torch.full_like(xbar, kappa_n), alpha_n, beta_n)


NORMAL_INVERSE_GAMMA = Family(
    prior={
        "mean": real("mu0, prior mean of mu"),
        "kappa": positive("kappa0, prior pseudo-count: Var[mu | sigma^2] = sigma^2 / kappa0"),
        "alpha": positive("alpha0, shape of the inverse-gamma prior on sigma^2"),
        "beta": positive("beta0, scale of the inverse-gamma prior on sigma^2"),
    },
    simulator={"num_draws": count("number of i.i.d. normal draws in one data set")},
    build=lambda prior, simulator: NormalMeanVariance(
        prior["mean"], prior["kappa"], prior["alpha"], prior["beta"], simulator["num_draws"]
    ),
)
