"""Poisson counts with a Gamma prior on their rate.

    lambda ~ Gamma(shape a, rate b),    x_1..x_n ~ Poisson(lambda) i.i.d.

Conjugacy gives the posterior Gamma(a + sum(x), b + n) (Gelman et al., BDA3, sec. 2.6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Gamma, Independent, Poisson

from sbibench.models.common import DTYPE, Family, check_data, check_theta, count, positive

__all__ = ["PoissonGamma", "POISSON_GAMMA"]


@dataclass(frozen=True)
class PoissonGamma:
    """Rate ``lambda`` (one parameter) of ``num_draws`` i.i.d. Poisson counts.

    Arguments:
        shape: Gamma prior shape a.
        rate: Gamma prior rate b (inverse scale).
        num_draws: number of counts n in one data set.
    """

    shape: float
    rate: float
    num_draws: int
    parameter_names: tuple[str, ...] = ("rate",)
    discrete_data: ClassVar[bool] = True  # counts

    @property
    def prior(self) -> Independent:
        return _gamma(
            torch.tensor([self.shape], dtype=DTYPE), torch.tensor([self.rate], dtype=DTYPE)
        )

    @property
    def data_dim(self) -> int:
        return self.num_draws

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(N, 1) rates -> (N, n) counts, float64 holding whole numbers."""
        theta = check_theta(theta, 1)
        return torch.poisson(theta.expand(-1, self.num_draws).contiguous(), generator=generator)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """(N, 1) and (n,) or (N, n) -> (N,)."""
        theta = check_theta(theta, 1)
        x = check_data(x, self.num_draws, batch=theta.shape[0])
        return Poisson(theta).log_prob(x).sum(-1)

    def summary(self, x: Tensor) -> Tensor:
        """(N, n) -> (N, 1): the mean count, a sufficient statistic."""
        return check_data(x, self.num_draws).reshape(-1, self.num_draws).mean(-1, keepdim=True)

    def posterior(self, x: Tensor) -> Independent:
        """(n,) or (K, n) -> Gamma(a + sum x, b + n), batch shape () or (K,), event (1,)."""
        x = check_data(x, self.num_draws)
        concentration = self.shape + x.sum(-1, keepdim=True)
        rate = torch.full_like(concentration, self.rate + self.num_draws)
        return _gamma(concentration, rate)


def _gamma(concentration: Tensor, rate: Tensor) -> Independent:
    return Independent(Gamma(concentration, rate), 1)


POISSON_GAMMA = Family(
    prior={
        "shape": positive("Gamma prior shape a"),
        "rate": positive("Gamma prior rate b (inverse scale)"),
    },
    simulator={"num_draws": count("number of i.i.d. Poisson counts in one data set")},
    build=lambda prior, simulator: PoissonGamma(
        prior["shape"], prior["rate"], simulator["num_draws"]
    ),
)
