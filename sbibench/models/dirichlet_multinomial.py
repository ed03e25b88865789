"""Multinomial counts with a Dirichlet prior on their category probabilities.

    theta ~ Dirichlet(alpha_1..alpha_K),    x_1..x_m ~ Multinomial(N, theta) i.i.d.

Conjugacy gives the posterior Dirichlet(alpha + x_1 + ... + x_m), the prior's concentrations
plus the category totals (Gelman et al., BDA3, sec. 3.4). The parameter lies on the simplex
(theta_k >= 0, sum_k theta_k = 1): K coordinates with K - 1 degrees of freedom, so a method's
unconstrained space (stick-breaking) has K - 1 dimensions. Densities on the simplex, the
prior's and the posterior's as torch's ``Dirichlet.log_prob`` gives them, are with respect to
Lebesgue measure on the first K - 1 coordinates.

A data set is the m count vectors one after the other: x = (x_11..x_1K, ..., x_m1..x_mK),
M = m K numbers, each block of K summing to N.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.distributions import Dirichlet

from sbibench.models.common import (
    DTYPE,
    Family,
    Field,
    check_data,
    check_theta,
    count,
    positive,
)

__all__ = ["DirichletMultinomial", "DIRICHLET_MULTINOMIAL"]


@dataclass(frozen=True)
class DirichletMultinomial:
    """Category probabilities ``theta`` (K parameters on the simplex) of ``num_draws`` i.i.d.
    Multinomial count vectors.

    Arguments:
        concentration: the Dirichlet prior's alpha_1..alpha_K, K >= 2.
        num_trials: trials N of each Multinomial count vector.
        num_draws: number of count vectors m in one data set.

    Example:
        >>> model = DirichletMultinomial((1.0, 1.0, 1.0), num_trials=20, num_draws=5)
        >>> theta = torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64)
        >>> x = model.simulate(theta, torch.Generator().manual_seed(0))
        >>> x.shape, x.reshape(5, 3).sum(-1).tolist()
        (torch.Size([1, 15]), [20.0, 20.0, 20.0, 20.0, 20.0])
    """

    concentration: tuple[float, ...]
    num_trials: int
    num_draws: int
    discrete_data: ClassVar[bool] = True  # counts

    @property
    def num_categories(self) -> int:
        return len(self.concentration)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(f"theta_{k + 1}" for k in range(self.num_categories))

    @property
    def prior(self) -> Dirichlet:
        return Dirichlet(torch.tensor(self.concentration, dtype=DTYPE))

    @property
    def data_dim(self) -> int:
        return self.num_draws * self.num_categories

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(N, K) probabilities -> (N, m K) counts, float64 holding whole numbers.

        Each count vector is drawn as K - 1 conditional Binomials: x_k ~ Binomial(N - x_1 -
        ... - x_{k-1}, theta_k / (theta_k + ... + theta_K)), and x_K takes the rest; the
        factorisation of the Multinomial, exact, and O(N m K) memory whatever the trials.
        """
        theta = check_theta(theta, self.num_categories)
        rows, k = theta.shape[0], self.num_categories
        # the tail mass theta_k + ... + theta_K, summed from the end for accuracy
        tail = theta.flip(-1).cumsum(-1).flip(-1)
        share = torch.where(tail > 0, theta / tail, torch.ones_like(theta)).clamp(0.0, 1.0)
        share = share.unsqueeze(1).expand(rows, self.num_draws, k)
        left = torch.full((rows, self.num_draws), float(self.num_trials), dtype=DTYPE)
        counts = []
        for j in range(k - 1):
            x_j = torch.binomial(left, share[..., j].contiguous(), generator=generator)
            counts.append(x_j)
            left = left - x_j
        counts.append(left)
        return torch.stack(counts, -1).reshape(rows, self.data_dim)

    def _counts(self, x: Tensor, batch: int | None = None) -> Tensor:
        """(M,) or (N, M) data -> (m, K) or (N, m, K) count vectors."""
        x = check_data(x, self.data_dim, batch=batch)
        return x.reshape(*x.shape[:-1], self.num_draws, self.num_categories)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """(N, K) and (m K,) or (N, m K) -> (N,): sum over the m vectors of
        log N! - sum_k log x_k! + sum_k x_k log theta_k (0 log 0 = 0)."""
        theta = check_theta(theta, self.num_categories)
        counts = self._counts(x, batch=theta.shape[0])
        log_coefficient = (
            torch.lgamma(torch.tensor(self.num_trials + 1.0, dtype=DTYPE))
            - torch.lgamma(counts + 1).sum(-1)
        ).sum(-1)
        totals = counts.sum(-2)  # (K,) or (N, K): sum_i x_ik log theta_k over the draws
        return log_coefficient + torch.xlogy(totals, theta).sum(-1)

    def summary(self, x: Tensor) -> Tensor:
        """(N, m K) -> (N, K - 1): the mean counts of the first K - 1 categories, a sufficient
        statistic (the K-th is N minus their sum, so leaving it out keeps the summaries'
        distribution non-degenerate)."""
        counts = self._counts(x).reshape(-1, self.num_draws, self.num_categories)
        return counts.mean(-2)[:, :-1]

    def posterior(self, x: Tensor) -> Dirichlet:
        """(m K,) or (B, m K) -> Dirichlet(alpha + sum_i x_i), batch shape () or (B,), event (K,)."""
        totals = self._counts(x).sum(-2)
        return Dirichlet(torch.tensor(self.concentration, dtype=DTYPE) + totals)


def _check_concentration(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) < 2:
        raise ValueError(f"must be a list of at least 2 numbers, got {value!r}")
    return tuple(positive("an entry").check(entry) for entry in value)


DIRICHLET_MULTINOMIAL = Family(
    prior={
        "concentration": Field(
            "the Dirichlet prior's concentrations alpha_1..alpha_K (each > 0; K >= 2 categories)",
            _check_concentration,
        ),
    },
    simulator={
        "num_trials": count("trials N of each Multinomial count vector"),
        "num_draws": count("number of i.i.d. Multinomial count vectors in one data set"),
    },
    build=lambda prior, simulator: DirichletMultinomial(
        prior["concentration"], simulator["num_trials"], simulator["num_draws"]
    ),
)
