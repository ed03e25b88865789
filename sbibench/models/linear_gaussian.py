"""Linear-Gaussian models: a Gaussian prior, data linear in the parameters plus Gaussian noise.

    theta ~ N(m0, S0),    x = A theta + b + sigma * eps,    eps ~ N(0, I)

The posterior is Gaussian with precision P = S0^-1 + A^T A / sigma^2 and mean
P^-1 (S0^-1 m0 + A^T (x - b) / sigma^2) (Bishop 2006, eq. 2.116). Three families use it:
``linear_gaussian`` (sbibm's ``gaussian_linear``: A = I, b = 0), ``linear_gaussian_vae`` (the
latent model of a linear VAE: A and b drawn once from a seed) and ``normal_mean`` (the mean of
i.i.d. normal draws: A is a column of ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.distributions import MultivariateNormal, Normal

from sbibench.models.common import (
    DTYPE,
    Family,
    check_data,
    check_theta,
    count,
    positive,
    real,
    seed_value,
)

__all__ = ["LinearGaussian", "LINEAR_GAUSSIAN", "LINEAR_GAUSSIAN_VAE", "NORMAL_MEAN"]


@dataclass(frozen=True)
class LinearGaussian:
    """theta ~ N(prior_mean, prior_cov); x = weights @ theta + bias + noise_scale * eps.

    Arguments:
        prior_mean: (D,) prior mean.
        prior_cov: (D, D) prior covariance.
        weights: (M, D) the matrix A.
        bias: (M,) the offset b.
        noise_scale: standard deviation sigma of the i.i.d. noise on each data dimension.
        parameter_names: D names.
        iid_draws: the data are i.i.d. draws (``normal_mean``): summarise them by their mean.
    """

    prior_mean: Tensor
    prior_cov: Tensor
    weights: Tensor
    bias: Tensor
    noise_scale: float
    parameter_names: tuple[str, ...]
    iid_draws: bool = False
    _precision_chol: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        prior_precision = torch.linalg.inv(self.prior_cov)
        precision = prior_precision + self.weights.T @ self.weights / self.noise_scale**2
        object.__setattr__(self, "_precision_chol", torch.linalg.cholesky(precision))

    @property
    def prior(self) -> MultivariateNormal:
        return MultivariateNormal(self.prior_mean, covariance_matrix=self.prior_cov)

    @property
    def data_dim(self) -> int:
        return self.weights.shape[0]

    def _mean_of_data(self, theta: Tensor) -> Tensor:
        return theta @ self.weights.T + self.bias

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(N, D) -> (N, M) float64."""
        theta = check_theta(theta, len(self.parameter_names))
        eps = torch.randn(theta.shape[0], self.data_dim, generator=generator, dtype=DTYPE)
        return self._mean_of_data(theta) + self.noise_scale * eps

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """(N, D) and (M,) or (N, M) -> (N,)."""
        theta = check_theta(theta, len(self.parameter_names))
        x = check_data(x, self.data_dim, batch=theta.shape[0])
        return Normal(self._mean_of_data(theta), self.noise_scale).log_prob(x).sum(-1)

    def summary(self, x: Tensor) -> Tensor:
        """(N, M) -> the data, or (N, 1) their mean (sufficient) for i.i.d. draws."""
        x = check_data(x, self.data_dim).reshape(-1, self.data_dim)
        return x.mean(-1, keepdim=True) if self.iid_draws else x

    def posterior(self, x: Tensor) -> MultivariateNormal:
        """(M,) or (K, M) -> Gaussian posterior with batch shape () or (K,)."""
        x = check_data(x, self.data_dim)
        prior_term = torch.linalg.solve(self.prior_cov, self.prior_mean)
        data_term = (x - self.bias) @ self.weights / self.noise_scale**2
        mean = torch.cholesky_solve(
            (prior_term + data_term).unsqueeze(-1), self._precision_chol
        ).squeeze(-1)
        return MultivariateNormal(mean, scale_tril=_inverse_cholesky(self._precision_chol))


def _inverse_cholesky(precision_chol: Tensor) -> Tensor:
    """Cholesky factor of P^-1 from the Cholesky factor of P."""
    eye = torch.eye(precision_chol.shape[0], dtype=precision_chol.dtype)
    covariance = torch.cholesky_solve(eye, precision_chol)
    return torch.linalg.cholesky((covariance + covariance.T) / 2)


def _build_linear_gaussian(prior: dict, simulator: dict) -> LinearGaussian:
    dim = simulator["dim"]
    eye = torch.eye(dim, dtype=DTYPE)
    return LinearGaussian(
        prior_mean=torch.zeros(dim, dtype=DTYPE),
        prior_cov=prior["variance"] * eye,
        weights=eye,
        bias=torch.zeros(dim, dtype=DTYPE),
        noise_scale=simulator["noise_variance"] ** 0.5,
        parameter_names=tuple(f"theta_{i + 1}" for i in range(dim)),
    )


def _build_vae(prior: dict, simulator: dict) -> LinearGaussian:
    latent, data = prior["latent_dim"], simulator["data_dim"]
    # The decoder's weights are part of the task's definition: drawn once from their own seed
    # with torch's CPU generator, W first, then b, both standard normal times their scale.
    generator = torch.Generator().manual_seed(simulator["weight_seed"])
    weights = torch.randn(data, latent, generator=generator, dtype=DTYPE)
    bias = torch.randn(data, generator=generator, dtype=DTYPE)
    return LinearGaussian(
        prior_mean=torch.zeros(latent, dtype=DTYPE),
        prior_cov=torch.eye(latent, dtype=DTYPE),
        weights=simulator["weight_scale"] * weights,
        bias=simulator["bias_scale"] * bias,
        noise_scale=simulator["noise_scale"],
        parameter_names=tuple(f"z_{i + 1}" for i in range(latent)),
    )


def _build_normal_mean(prior: dict, simulator: dict) -> LinearGaussian:
    draws = simulator["num_draws"]
    return LinearGaussian(
        prior_mean=torch.tensor([prior["mean"]], dtype=DTYPE),
        prior_cov=torch.tensor([[prior["std"] ** 2]], dtype=DTYPE),
        weights=torch.ones(draws, 1, dtype=DTYPE),
        bias=torch.zeros(draws, dtype=DTYPE),
        noise_scale=simulator["noise_std"],
        parameter_names=("mean",),
        iid_draws=True,
    )


LINEAR_GAUSSIAN = Family(
    prior={"variance": positive("prior variance of each parameter (isotropic, mean 0)")},
    simulator={
        "dim": count("number of parameters = number of data dimensions"),
        "noise_variance": positive("variance of the Gaussian noise on each data dimension"),
    },
    build=_build_linear_gaussian,
)

LINEAR_GAUSSIAN_VAE = Family(
    prior={"latent_dim": count("dimension of the latent z ~ N(0, I)")},
    simulator={
        "data_dim": count("dimension of the observed x"),
        "noise_scale": positive("standard deviation sigma of the observation noise"),
        "weight_seed": seed_value("seed of the generator that draws W then b"),
        "weight_scale": positive("W = weight_scale * standard normal (data_dim, latent_dim)"),
        "bias_scale": positive("b = bias_scale * standard normal (data_dim,)"),
    },
    build=_build_vae,
)

NORMAL_MEAN = Family(
    prior={
        "mean": real("prior mean of mu"),
        "std": positive("prior standard deviation of mu"),
    },
    simulator={
        "num_draws": count("number of i.i.d. draws in one data set"),
        "noise_std": positive("known standard deviation of each draw"),
    },
    build=_build_normal_mean,
)
