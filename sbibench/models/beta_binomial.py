"""Binomial counts with a Beta prior on their success probability.

    p ~ Beta(a, b),    x_1..x_m ~ Binomial(N, p) i.i.d.

Conjugacy gives the posterior Beta(a + sum(x), b + m N - sum(x)) (Gelman et al., BDA3,
sec. 2.4). The parameter is bounded: p lies in (0, 1), which methods must respect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Beta, Independent

from sbibench.models.common import DTYPE, Family, check_data, check_theta, count, positive

__all__ = ["BetaBinomial", "BETA_BINOMIAL", "binomial_log_pmf"]


def binomial_log_pmf(x: Tensor, trials: float, p: Tensor) -> Tensor:
    """log Binomial(x; N, p), elementwise, exact at p = 0 and p = 1 (0 log 0 = 0)."""
    log_choose = (
        torch.lgamma(torch.as_tensor(trials + 1.0, dtype=DTYPE))
        - torch.lgamma(x + 1)
        - torch.lgamma(trials - x + 1)
    )
    return log_choose + torch.xlogy(x, p) + torch.special.xlog1py(trials - x, -p)


@dataclass(frozen=True)
class BetaBinomial:
    """Success probability ``p`` (one parameter) of ``num_draws`` i.i.d. Binomial counts.

    Arguments:
        alpha: Beta prior's first shape a.
        beta: Beta prior's second shape b.
        num_trials: trials N of each Binomial count.
        num_draws: number of counts m in one data set.

    Example:
        >>> model = BetaBinomial(2.0, 2.0, num_trials=20, num_draws=10)
        >>> x = model.simulate(torch.full((3, 1), 0.4), torch.Generator().manual_seed(0))
        >>> x.shape, bool((x >= 0).all() and (x <= 20).all())
        (torch.Size([3, 10]), True)
    """

    alpha: float
    beta: float
    num_trials: int
    num_draws: int
    parameter_names: tuple[str, ...] = ("p",)
    discrete_data: ClassVar[bool] = True  # counts

    @property
    def prior(self) -> Independent:
        return _beta(
            torch.tensor([self.alpha], dtype=DTYPE), torch.tensor([self.beta], dtype=DTYPE)
        )

    @property
    def data_dim(self) -> int:
        return self.num_draws

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(N, 1) probabilities -> (N, m) counts, float64 holding whole numbers in 0..N."""
        theta = check_theta(theta, 1)
        p = theta.expand(-1, self.num_draws).contiguous()
        trials = torch.full_like(p, float(self.num_trials))
        return torch.binomial(trials, p, generator=generator)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """(N, 1) and (m,) or (N, m) -> (N,)."""
        theta = check_theta(theta, 1)
        x = check_data(x, self.num_draws, batch=theta.shape[0])
        return binomial_log_pmf(x, float(self.num_trials), theta).sum(-1)

    def summary(self, x: Tensor) -> Tensor:
        """(N, m) -> (N, 1): the mean count, a sufficient statistic."""
        return check_data(x, self.num_draws).reshape(-1, self.num_draws).mean(-1, keepdim=True)

    def posterior(self, x: Tensor) -> Independent:
        """(m,) or (K, m) -> Beta(a + sum x, b + m N - sum x), batch shape () or (K,), event (1,)."""
        x = check_data(x, self.num_draws)
        successes = x.sum(-1, keepdim=True)
        failures = self.num_draws * self.num_trials - successes
        return _beta(self.alpha + successes, self.beta + failures)


def _beta(concentration1: Tensor, concentration0: Tensor) -> Independent:
    return Independent(Beta(concentration1, concentration0), 1)


BETA_BINOMIAL = Family(
    prior={
        "alpha": positive("Beta prior's first shape a (pseudo-successes)"),
        "beta": positive("Beta prior's second shape b (pseudo-failures)"),
    },
    simulator={
        "num_trials": count("trials N of each Binomial count"),
        "num_draws": count("number of i.i.d. Binomial counts in one data set"),
    },
    build=lambda prior, simulator: BetaBinomial(
        prior["alpha"], prior["beta"], simulator["num_trials"], simulator["num_draws"]
    ),
)
