"""A uniform prior on a box and data from a mixture of isotropic Gaussians centred on theta.

    theta ~ U(-b, b)^D,    x | theta ~ sum_c w_c N(theta, v_c I)

As a function of theta, N(x; theta, v_c I) = N(theta; x, v_c I), so the posterior is the same
mixture centred on x and truncated to the box: component c is N(x, v_c I) restricted to the box
(a product of D truncated normals), with weight proportional to w_c times its mass in the box,
w_c prod_d [Phi((b - x_d) / s_c) - Phi((-b - x_d) / s_c)], s_c = sqrt(v_c). Its density, mean
and covariance are closed form, with no constant left unknown.

Two of sbibm's tasks are this family (checked against sbibm 1.1.0's wheel,
``sbibm/tasks/gaussian_linear_uniform/task.py`` and ``sbibm/tasks/gaussian_mixture/task.py``):

- ``gaussian_linear_uniform``: one component, b = 1, D = 10, v = 0.1 (sbibm's
  ``simulator_scale = 0.1`` enters as the inverse of the precision matrix, so it is a variance,
  although its docstring calls it a standard deviation);
- ``gaussian_mixture``: b = 10, D = 2, weights (0.5, 0.5), scales (1.0, 0.1), i.e. variances
  (1, 0.01); one component index per draw, shared by both data dimensions.

References:
    Lueckmann et al. (2021), Benchmarking simulation-based inference, AISTATS, appendix T.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributions import (
    Categorical,
    Distribution,
    Independent,
    MixtureSameFamily,
    Uniform,
    constraints,
)

from sbibench.models.common import DTYPE, Family, Field, check_data, check_theta, count, positive

__all__ = ["BoxGaussianMixture", "TruncatedNormal", "UniformGaussianMixture", "UNIFORM_MIXTURE"]
_EMPTY = torch.Size()


def _log_mass(alpha: Tensor, beta: Tensor) -> Tensor:
    """log(Phi(beta) - Phi(alpha)) for alpha < beta, accurate in either tail."""
    flip = alpha > 0  # mirror intervals in the upper tail, where Phi rounds to 1
    low, high = torch.where(flip, -beta, alpha), torch.where(flip, -alpha, beta)
    log_high, log_low = torch.special.log_ndtr(high), torch.special.log_ndtr(low)
    return log_high + torch.log(-torch.expm1(log_low - log_high))


def _phi(z: Tensor) -> Tensor:
    return torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)


class TruncatedNormal(Distribution):
    """N(loc, scale^2) restricted to [low, high], elementwise (batch shape of the broadcast).

    Sampled by inverting the CDF (mirrored in the upper tail, so it stays accurate for
    intervals many standard deviations from ``loc``); ``mean`` and ``variance`` are closed form
    (Johnson, Kotz and Balakrishnan 1994, sec. 10.1).
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = False

    def __init__(self, loc: Tensor, scale: Tensor, low: Tensor, high: Tensor) -> None:
        self.loc, self.scale, self.low, self.high = torch.broadcast_tensors(loc, scale, low, high)
        self.alpha = (self.low - self.loc) / self.scale
        self.beta = (self.high - self.loc) / self.scale
        self.log_mass = _log_mass(self.alpha, self.beta)
        super().__init__(self.loc.shape, validate_args=False)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.interval(self.low, self.high)

    def sample(self, sample_shape: torch.Size = _EMPTY) -> Tensor:
        shape = self._extended_shape(sample_shape)
        flip = self.alpha > 0
        low = torch.where(flip, -self.beta, self.alpha)
        high = torch.where(flip, -self.alpha, self.beta)
        p_low, p_high = torch.special.ndtr(low), torch.special.ndtr(high)
        u = torch.rand(shape, dtype=self.loc.dtype)
        z = torch.special.ndtri(p_low + u * (p_high - p_low)).clamp(low, high)
        theta = self.loc + self.scale * torch.where(flip, -z, z)
        # Uniform priors are half-open, [low, high): keep draws strictly below high.
        return theta.clamp(self.low, torch.nextafter(self.high, self.low))

    def log_prob(self, value: Tensor) -> Tensor:
        z = (value - self.loc) / self.scale
        density = -0.5 * z**2 - 0.5 * math.log(2 * math.pi) - self.scale.log() - self.log_mass
        inside = (value >= self.low) & (value <= self.high)
        return torch.where(inside, density, torch.full_like(density, -math.inf))

    @property
    def _ratios(self) -> tuple[Tensor, Tensor]:
        mass = self.log_mass.exp()
        first = (_phi(self.alpha) - _phi(self.beta)) / mass
        second = (self.alpha * _phi(self.alpha) - self.beta * _phi(self.beta)) / mass
        return first, second

    @property
    def mean(self) -> Tensor:
        return self.loc + self.scale * self._ratios[0]

    @property
    def variance(self) -> Tensor:
        first, second = self._ratios
        return self.scale**2 * (1 + second - first**2)


class BoxGaussianMixture(MixtureSameFamily):
    """A mixture of products of truncated normals, with its exact ``covariance_matrix``.

    ``component_distribution`` is ``Independent(TruncatedNormal, 1)`` with batch (..., C).
    """

    @property
    def covariance_matrix(self) -> Tensor:
        probs = self.mixture_distribution.probs  # (..., C)
        means = self.component_distribution.mean  # (..., C, D)
        centred = means - self.mean.unsqueeze(-2)
        within = torch.diag_embed(self.component_distribution.variance)
        between = centred.unsqueeze(-1) * centred.unsqueeze(-2)
        return (probs[..., None, None] * (within + between)).sum(-3)


@dataclass(frozen=True)
class UniformGaussianMixture:
    """theta ~ U(-bound, bound)^dim; x ~ sum_c weights[c] N(theta, variances[c] I).

    Arguments:
        bound: half-width b of the prior box.
        dim: number of parameters D = number of data dimensions.
        weights: (C,) mixture weights, summing to 1.
        variances: (C,) variance of each component on every data dimension.

    Example:
        >>> model = UniformGaussianMixture(10.0, 2, (0.5, 0.5), (1.0, 0.01))
        >>> posterior = model.posterior(torch.tensor([9.5, 0.0], dtype=torch.float64))
        >>> posterior.sample((4,)).shape, posterior.covariance_matrix.shape
        (torch.Size([4, 2]), torch.Size([2, 2]))
    """

    bound: float
    dim: int
    weights: tuple[float, ...]
    variances: tuple[float, ...]

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(f"theta_{i + 1}" for i in range(self.dim))

    @property
    def data_dim(self) -> int:
        return self.dim

    @property
    def prior(self) -> Independent:
        high = torch.full((self.dim,), self.bound, dtype=DTYPE)
        return Independent(Uniform(-high, high), 1)

    def _scales(self) -> Tensor:
        return torch.tensor(self.variances, dtype=DTYPE).sqrt()

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(N, D) -> (N, D): a component per row (drawn first), then its Gaussian noise."""
        theta = check_theta(theta, self.dim)
        weights = torch.tensor(self.weights, dtype=DTYPE)
        index = torch.multinomial(weights, theta.shape[0], replacement=True, generator=generator)
        eps = torch.randn(theta.shape, generator=generator, dtype=DTYPE)
        return theta + self._scales()[index].unsqueeze(-1) * eps

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """(N, D) and (D,) or (N, D) -> (N,): log sum_c w_c N(x; theta, v_c I)."""
        theta = check_theta(theta, self.dim)
        x = check_data(x, self.dim, batch=theta.shape[0])
        variances = torch.tensor(self.variances, dtype=DTYPE)  # (C,)
        squared = ((x - theta) ** 2).sum(-1, keepdim=True)  # (N, 1)
        log_normal = -0.5 * squared / variances - 0.5 * self.dim * torch.log(
            2 * math.pi * variances
        )
        return torch.logsumexp(torch.tensor(self.weights, dtype=DTYPE).log() + log_normal, -1)

    def summary(self, x: Tensor) -> Tensor:
        """(N, D) -> the data themselves."""
        return check_data(x, self.dim).reshape(-1, self.dim)

    def posterior(self, x: Tensor) -> BoxGaussianMixture:
        """(D,) or (K, D) -> the truncated mixture, batch shape () or (K,), event (D,)."""
        x = check_data(x, self.dim)
        scales = self._scales().unsqueeze(-1)  # (C, 1)
        loc = x.unsqueeze(-2).expand(*x.shape[:-1], len(self.weights), self.dim)  # (..., C, D)
        high = torch.full_like(loc, self.bound)
        components = TruncatedNormal(loc, scales.expand_as(loc), -high, high)
        log_mass = components.log_mass.sum(-1)  # (..., C): log of each component's box mass
        logits = torch.tensor(self.weights, dtype=DTYPE).log() + log_mass
        # Unvalidated, so that log_prob is -inf outside the box rather than an error.
        return BoxGaussianMixture(
            Categorical(logits=logits), Independent(components, 1), validate_args=False
        )


def _check_list(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be a non-empty list of numbers, got {value!r}")
    return tuple(positive("an entry").check(entry) for entry in value)


def _build(prior: dict, simulator: dict) -> UniformGaussianMixture:
    weights, variances = simulator["weights"], simulator["variances"]
    if len(weights) != len(variances):
        raise ValueError(
            f"simulator.weights has {len(weights)} entries but simulator.variances has "
            f"{len(variances)}"
        )
    if not math.isclose(sum(weights), 1.0, abs_tol=1e-12):
        raise ValueError(f"simulator.weights must sum to 1, got {sum(weights)!r}")
    return UniformGaussianMixture(prior["bound"], simulator["dim"], weights, variances)


UNIFORM_MIXTURE = Family(
    prior={"bound": positive("half-width b of the uniform prior box [-b, b]^D")},
    simulator={
        "dim": count("number of parameters = number of data dimensions"),
        "weights": Field("mixture weights w_c (> 0, summing to 1)", _check_list),
        "variances": Field("variance v_c of component c on each data dimension", _check_list),
    },
    build=_build,
)
