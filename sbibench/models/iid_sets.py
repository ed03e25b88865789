"""i.i.d. sets of varying size: the mean of n normal draws, n varying between data sets.

    mu ~ N(m0, s0^2),    n ~ Uniform(set_sizes),    x_1..x_n | mu ~ N(mu, sigma^2) i.i.d.

A data set is a row of M = max(set_sizes) entries: its n draws first, then M - n NaN (the
padding of `sbibench.nn.pad_sets`, one scalar per element). The size is drawn independently of
mu, so it is ancillary: the likelihood of a padded row is that of its n present entries, and
the posterior is conjugate with that n (Bishop 2006, eq. 2.141),

    precision = 1 / s0^2 + n / sigma^2,    mean = (m0 / s0^2 + sum_j x_j / sigma^2) / precision,

so the exact posterior (its width above all) depends on n. The observations have stated sizes
(the card's ``observation_sizes``, one per observation), drawn by `simulate_observations`.
A model whose data are padded sets says so with ``padded_sets = True``; `valid_sets` is then
what makes a row valid (`sbibench.task.Task.valid`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributions import MultivariateNormal

from sbibench.checks import is_whole
from sbibench.models.common import (
    DTYPE,
    Family,
    Field,
    check_data,
    check_theta,
)
from sbibench.models.linear_gaussian import NORMAL_MEAN

__all__ = ["NORMAL_MEAN_SETS", "NormalMeanSets", "set_sizes", "valid_sets"]


def valid_sets(x: Tensor) -> Tensor:
    """(N, M) NaN-padded sets -> (N,) bool: at least one entry, no infinite entry, and NaN
    only as trailing padding (a NaN followed by a number is a damaged row, not a shorter set).
    A failed simulation (an all-NaN row) is invalid.

    Example:
        >>> nan, inf = float("nan"), float("inf")
        >>> valid_sets(torch.tensor([[1.0, nan], [nan, nan], [nan, 1.0], [inf, nan]]))
        tensor([ True, False, False, False])
    """
    present = ~torch.isnan(x)
    trailing = (present[..., 1:] <= present[..., :-1]).all(-1)
    return present[..., 0] & trailing & ~torch.isinf(x).any(-1)


def set_sizes(x: Tensor) -> Tensor:
    """(..., M) padded sets -> (...) int64: the number of present (non-NaN) entries."""
    return (~torch.isnan(x)).sum(-1)


def _sizes(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be a non-empty list of whole numbers, got {value!r}")
    for item in value:
        if not is_whole(item, 1):
            raise ValueError(f"must hold whole numbers >= 1, got {item!r}")
    return tuple(value)


def sizes(meaning: str) -> Field:
    """A non-empty list of whole numbers >= 1 (set sizes)."""
    return Field(meaning, _sizes)


@dataclass(frozen=True)
class NormalMeanSets:
    """The mean of n i.i.d. N(mu, noise_std^2) draws, n uniform over ``sizes``; see the module.

    Arguments:
        prior_mean: m0.
        prior_std: s0.
        noise_std: sigma, the known standard deviation of each draw.
        sizes: the set sizes a simulation draws n from, uniformly.
        observation_sizes: n of observation k = 1..K, in order.
    """

    prior_mean: float
    prior_std: float
    noise_std: float
    sizes: tuple[int, ...]
    observation_sizes: tuple[int, ...]
    parameter_names: tuple[str, ...] = ("mean",)
    padded_sets: bool = True

    @property
    def prior(self) -> MultivariateNormal:
        return MultivariateNormal(
            torch.tensor([self.prior_mean], dtype=DTYPE),
            covariance_matrix=torch.tensor([[self.prior_std**2]], dtype=DTYPE),
        )

    @property
    def data_dim(self) -> int:
        return max(self.sizes)

    def _draw(self, theta: Tensor, n: Tensor, generator: torch.Generator | None) -> Tensor:
        eps = torch.randn(theta.shape[0], self.data_dim, generator=generator, dtype=DTYPE)
        x = theta + self.noise_std * eps
        padding = torch.arange(self.data_dim) >= n.unsqueeze(-1)
        return x.masked_fill(padding, float("nan"))

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(N, 1) -> (N, M) float64: per row, n uniform over ``sizes`` (one draw per row from
        ``generator``, before the noise), then M standard normals, entries n + 1..M NaN."""
        theta = check_theta(theta, 1)
        choice = torch.randint(len(self.sizes), (theta.shape[0],), generator=generator)
        return self._draw(theta, torch.tensor(self.sizes)[choice], generator)

    def simulate_observations(self, theta: Tensor, generator: torch.Generator) -> Tensor:
        """(K, 1) -> (K, M): observation k with n = ``observation_sizes[k - 1]``."""
        theta = check_theta(theta, 1)
        if theta.shape[0] != len(self.observation_sizes):
            raise ValueError(
                f"{len(self.observation_sizes)} observation sizes for {theta.shape[0]} rows"
            )
        return self._draw(theta, torch.tensor(self.observation_sizes), generator)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """(N, 1) and (M,) or (N, M) -> (N,): the sum over the present entries."""
        theta = check_theta(theta, 1)
        x = check_data(x, self.data_dim, batch=theta.shape[0])
        # NaN padding would fail Normal's support check: the density, written out
        z = (x - theta) / self.noise_std
        log_density = -0.5 * z.square() - math.log(self.noise_std) - 0.5 * math.log(2 * math.pi)
        return log_density.nansum(-1)

    def summary(self, x: Tensor) -> Tensor:
        """(N, M) -> (N, 2): the mean of the present entries (sufficient given n) and log n."""
        x = check_data(x, self.data_dim).reshape(-1, self.data_dim)
        n = set_sizes(x).to(DTYPE)
        return torch.stack((x.nansum(-1) / n, n.log()), dim=-1)

    def posterior(self, x: Tensor) -> MultivariateNormal:
        """(M,) or (K, M) -> Gaussian posterior with batch shape () or (K,), n per row."""
        x = check_data(x, self.data_dim)
        n = set_sizes(x).to(DTYPE)
        precision = 1 / self.prior_std**2 + n / self.noise_std**2
        mean = (self.prior_mean / self.prior_std**2 + x.nansum(-1) / self.noise_std**2) / precision
        return MultivariateNormal(
            mean.unsqueeze(-1), scale_tril=precision.rsqrt().unsqueeze(-1).unsqueeze(-1)
        )


def _build(prior: dict, simulator: dict) -> NormalMeanSets:
    missing = sorted(set(simulator["observation_sizes"]) - set(simulator["set_sizes"]))
    if missing:
        raise ValueError(
            f"field simulator.observation_sizes holds {missing}, not among simulator.set_sizes "
            "(the sizes the simulator draws, so the methods are trained on them)"
        )
    return NormalMeanSets(
        prior_mean=prior["mean"],
        prior_std=prior["std"],
        noise_std=simulator["noise_std"],
        sizes=simulator["set_sizes"],
        observation_sizes=simulator["observation_sizes"],
    )


NORMAL_MEAN_SETS = Family(  # normal_mean's prior and noise, sets of stated sizes for its draws
    prior=NORMAL_MEAN.prior,
    simulator={
        "set_sizes": sizes("the sizes n that each simulation draws from, uniformly"),
        "noise_std": NORMAL_MEAN.simulator["noise_std"],
        "observation_sizes": sizes("n of observation k = 1..K, one per observation"),
    },
    build=_build,
)
