"""Scores against the exact posterior moments and density: free of reference sampling noise.

Analytic tasks know the posterior mean m and covariance C exactly (they are stored in each
reference posterior's manifest), so a method's samples can be scored against them without
drawing reference samples. Both errors are measured in the posterior's own units (whitened
by C), so parameters of different scales weigh alike, and each comes with the value a
perfect sampler of the same size would get on average (``details["exact_rms"]``): the
method's own Monte Carlo noise, which no method can beat at that sample size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from sbibench.metrics.score import Estimate, as_samples

__all__ = ["mean_error", "covariance_error", "nll_true_parameters"]


# An eigenvalue below this fraction of the largest makes a covariance singular: whitened in
# its range. The simplex's covariance has one eigenvalue ~1e-16 of the others (rounding).
_SINGULAR = 1e-10


def _moments(
    mean: Tensor | np.ndarray | None, covariance: Tensor | np.ndarray, dim: int
) -> tuple[Tensor | None, Callable[[Tensor], Tensor], int]:
    """Check the exact moments against dimension ``dim``; return (mean, whitening, rank).

    ``whitening`` maps (D, N) to (r, N) whitened coordinates, r = rank of the covariance C:
    by C's Cholesky factor when C is positive definite; by its eigenvectors and eigenvalues,
    restricted to C's range, when it is singular (parameters on the simplex sum to 1, so C's
    null space holds the all-ones direction and no sample deviates along it).
    """
    cov = torch.as_tensor(np.asarray(covariance, dtype=np.float64))
    if cov.shape != (dim, dim) or not torch.isfinite(cov).all():
        raise ValueError(
            f"covariance must be a finite ({dim}, {dim}) matrix, got {tuple(cov.shape)}"
        )
    values, vectors = torch.linalg.eigh(cov)  # reads the lower triangle, as Cholesky does
    top = float(values[-1])
    if not top > 0 or float(values[0]) < -_SINGULAR * top:
        raise ValueError("covariance must be symmetric positive semi-definite and not zero")
    kept = values > _SINGULAR * top
    if bool(kept.all()):
        chol = torch.linalg.cholesky(cov)

        def whiten(v: Tensor) -> Tensor:
            return torch.linalg.solve_triangular(chol, v, upper=False)

    else:
        basis = vectors[:, kept] / values[kept].sqrt()  # (D, r): C's range, unit variances

        def whiten(v: Tensor) -> Tensor:
            return basis.T @ v

    rank = int(kept.sum())
    if mean is None:
        return None, whiten, rank
    mu = torch.as_tensor(np.asarray(mean, dtype=np.float64))
    if mu.shape != (dim,) or not torch.isfinite(mu).all():
        raise ValueError(f"mean must be a finite vector of shape ({dim},), got {tuple(mu.shape)}")
    return mu, whiten, rank


def mean_error(
    samples: Tensor | np.ndarray, mean: Tensor | np.ndarray, covariance: Tensor | np.ndarray
) -> Estimate:
    """Standardised error of the posterior mean: the Mahalanobis distance of the sample mean.

    ``sqrt((mean_hat - m)^T C^-1 (mean_hat - m))``, the distance in posterior standard
    deviations. For N exact samples its root mean square is ``sqrt(D / N)``. A singular C
    (parameters on the simplex) is inverted on its range, of dimension r = rank C (C^-1 its
    pseudo-inverse; ``D`` above reads r): a deviation outside the range, which samples on the
    posterior's affine subspace do not have, is not measured.

    Arguments:
        samples: The method's posterior samples, shape (N, D).
        mean: The exact posterior mean, shape (D,).
        covariance: The exact posterior covariance, shape (D, D), positive semi-definite.

    Returns:
        An :class:`~sbibench.metrics.Estimate`, method ``"mahalanobis-mean"``; ``details`` holds
        ``num_samples``, ``rank`` = r and ``exact_rms`` = sqrt(r / N).

    Example:
        >>> s = mean_error(torch.randn(4000, 2) + 1.0, torch.ones(2), torch.eye(2))
        >>> s.value < 0.1
        True
    """
    x = as_samples(samples, "samples")
    n, dim = x.shape
    mu, whiten, rank = _moments(mean, covariance, dim)
    delta = whiten((x.mean(0) - mu)[:, None])
    details = {"num_samples": n, "rank": rank, "exact_rms": math.sqrt(rank / n)}
    return Estimate(float(delta.norm()), "mahalanobis-mean", details)


def covariance_error(samples: Tensor | np.ndarray, covariance: Tensor | np.ndarray) -> Estimate:
    """Relative error of the posterior covariance, in whitened coordinates.

    ``|L^-1 C_hat L^-T - I|_F / sqrt(D)`` with ``C = L L^T`` the exact covariance and
    ``C_hat`` the sample covariance (unbiased, N - 1). It is 0 for the exact covariance, 1 for
    a posterior collapsed to a point, 3 for one twice too wide (variances 4x) and 0.75 for
    one twice too narrow; for N exact samples its root mean square is
    ``sqrt((D + 1) / (N - 1))`` (the Wishart variance). A singular C (parameters on the
    simplex) is whitened on its range, of dimension r = rank C, where ``D`` above reads r
    and I is r x r (see `mean_error`).

    Arguments:
        samples: The method's posterior samples, shape (N, D), N >= 2.
        covariance: The exact posterior covariance, shape (D, D), positive semi-definite.

    Returns:
        An :class:`~sbibench.metrics.Estimate`, method ``"whitened-covariance"``; ``details``
        holds ``num_samples``, ``rank`` and ``exact_rms``.

    Example:
        >>> s = covariance_error(2.0 * torch.randn(4000, 3), torch.eye(3))
        >>> 2.8 < s.value < 3.2
        True
    """
    x = as_samples(samples, "samples")
    n, dim = x.shape
    if n < 2:
        raise ValueError(f"samples needs at least 2 rows for a covariance, got {n}")
    _, whiten, rank = _moments(None, covariance, dim)
    white = whiten((x - x.mean(0)).T)
    sample_cov = white @ white.T / (n - 1)
    err = (sample_cov - torch.eye(rank, dtype=sample_cov.dtype)).norm() / math.sqrt(rank)
    details = {"num_samples": n, "rank": rank, "exact_rms": math.sqrt((rank + 1) / (n - 1))}
    return Estimate(float(err), "whitened-covariance", details)


def nll_true_parameters(
    log_prob: Callable[[Tensor], Tensor], theta: Tensor | np.ndarray
) -> Estimate:
    """Negative log-density of the true parameters under the method's posterior.

    Arguments:
        log_prob: The method's posterior log-density, mapping parameters of shape (K, D) to
            log-densities of shape (K,); row k is evaluated under the posterior for the
            observation generated by ``theta[k]``.
        theta: True parameters, shape (K, D) (K = 1 for a single observation).

    Returns:
        An :class:`~sbibench.metrics.Estimate` with the mean of ``-log_prob(theta)`` over the K
        rows (nats), method ``"nll-true-parameters"``. Compare it with the same function of
        the exact posterior's ``log_prob``: a perfect method matches it in expectation.

    Raises:
        ValueError: If ``log_prob`` returns a wrong shape or NaN (``-inf`` gives ``inf``).

    Example:
        >>> post = torch.distributions.Normal(torch.zeros(1), torch.ones(1))
        >>> round(nll_true_parameters(lambda t: post.log_prob(t).sum(-1), torch.zeros(1, 1)).value, 4)
        0.9189
    """
    theta = as_samples(theta, "theta")
    if not callable(log_prob):
        raise TypeError(f"log_prob must be callable, got {type(log_prob).__name__}")
    with torch.no_grad():
        values = torch.as_tensor(log_prob(theta)).to(torch.float64)
    if values.shape != (len(theta),):
        raise ValueError(
            f"log_prob must return shape ({len(theta)},) for theta of shape "
            f"{tuple(theta.shape)}, got {tuple(values.shape)}"
        )
    if torch.isnan(values).any() or (values == math.inf).any():
        raise ValueError("log_prob returned NaN or +inf for the true parameters")
    return Estimate(float(-values.mean()), "nll-true-parameters", {"num_parameters": len(theta)})
