"""Adaptive importance sampling: weighted draws of a target from rounds of proposals that
learn its shape, so that MCMC chains start spread over its modes in proportion to their mass.

Round 0 draws from a base (the prior). Each later round fits a proposal to the weighted draws
so far (population Monte Carlo, Cappe et al. 2004) and draws from a mixture of three parts:

- the base, with weight ``defensive``: no draw's weight exceeds 1 / ``defensive`` times its
  weight under the base alone, so a proposal that missed a mode cannot hide it (Hesterberg's
  defensive mixture, 1995);
- a Gaussian with the draws' weighted mean and covariance: the whole posterior's extent;
- kernels at ``centers`` draws resampled by weight, each a Gaussian with that covariance scaled
  by half Silverman's factor: the modes' own shapes (two crescents; a narrow component beside
  a broad one).

Each round's draws are weighted against the proposal that drew them; the rounds are then
pooled with each round's weights normalised and scaled by its effective sample size, so a
round counts as much as its weights inform (the prior round's few huge weights would
otherwise swamp the later rounds). Rounds are added until the pooled effective sample size
reaches a target. With the exact likelihood and 10,000 draws a round, ESS 20,000 took 7-28
rounds on two_moons, gaussian_mixture, linear_gaussian and gaussian_linear_uniform (28 on the
10-D gaussian_linear_uniform), against ESS 16-64 a round from the prior alone on two_moons
(docs/methods.md, "The MCMC sampler").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import Tensor

from sbibench.mcmc import importance_ess, sir_init

__all__ = ["adaptive_importance"]

_JITTER = 1e-9  # relative: keeps a covariance fitted to few distinct draws invertible
# Silverman's rule assumes one Gaussian mode and oversmooths separated or curved ones; half its
# bandwidth took 4-16 rounds of 10,000 to reach ESS 10,000 with the exact likelihood, against
# 4-21 at the full rule (two_moons, gaussian_mixture, linear_gaussian, gaussian_linear_uniform)
_BANDWIDTH = 0.5


@dataclasses.dataclass(frozen=True)
class _Proposal:
    """A defensive mixture: base, Gaussian (mean, scale_tril), kernels at centers (scale_tril)."""

    mean: Tensor  # (d,)
    scale_tril: Tensor  # (d, d)
    centers: Tensor  # (M, d)
    kernel_tril: Tensor  # (d, d)
    weights: tuple[float, float, float]  # base, Gaussian, kernels

    def sample(self, n: int, sample_base: Callable, generator) -> Tensor:
        """(n, d) draws, each part's share fixed (a deterministic mixture: lower variance)."""
        n_base = round(self.weights[0] * n)
        n_gauss = round(self.weights[1] * n)
        n_kernel = n - n_base - n_gauss
        d = self.mean.shape[0]
        z = torch.randn(n_gauss + n_kernel, d, generator=generator, dtype=torch.float64)
        picks = torch.randint(len(self.centers), (n_kernel,), generator=generator)
        gauss = self.mean + z[:n_gauss] @ self.scale_tril.T
        kernel = self.centers[picks] + z[n_gauss:] @ self.kernel_tril.T
        return torch.cat([sample_base(n_base).double(), gauss, kernel])

    def log_prob(self, u: Tensor, log_base: Tensor) -> Tensor:
        """log q(u), (N,), given the base's log-density at u (N,)."""
        gauss = _log_normal(u, self.mean[None], self.scale_tril).squeeze(1)
        kernel = torch.logsumexp(_log_normal(u, self.centers, self.kernel_tril), 1)
        parts = torch.stack([log_base, gauss, kernel - math.log(len(self.centers))])
        log_w = torch.tensor(self.weights, dtype=torch.float64).log()[:, None]
        return torch.logsumexp(parts + log_w, 0)


def _log_normal(u: Tensor, means: Tensor, scale_tril: Tensor) -> Tensor:
    """log N(u_i; means_j, L L^T): u (N, d), means (M, d) -> (N, M), in chunks of rows."""
    d = u.shape[1]
    inv = torch.linalg.inv(scale_tril)
    centers = means @ inv.T
    constant = -0.5 * d * math.log(2 * math.pi) - torch.log(torch.diagonal(scale_tril)).sum()
    rows = max(1, 2**22 // max(1, len(means)))
    out = [constant - 0.5 * torch.cdist(part @ inv.T, centers).square() for part in u.split(rows)]
    return torch.cat(out)


def _fit(u: Tensor, log_w: Tensor, centers: int, weights, generator) -> _Proposal:
    """The next proposal from weighted draws u (N, d), log-weights (N,)."""
    d = u.shape[1]
    w = torch.softmax(log_w, 0)
    mean = w @ u
    centred = u - mean
    cov = (w[:, None] * centred).T @ centred
    # shrunk towards the draws' unweighted covariance (the proposals' own spread) while the
    # weights rest on few draws: a covariance from ESS < d draws is singular
    ess = float(importance_ess(log_w))
    shrink = d / (d + ess)
    spread = torch.cov(u.T).reshape(d, d) if len(u) > 1 else torch.eye(d, dtype=torch.float64)
    cov = (1 - shrink) * cov + shrink * spread
    cov = cov + _JITTER * (cov.diagonal().mean() + 1.0) * torch.eye(d, dtype=torch.float64)
    scale_tril = torch.linalg.cholesky(cov)
    # Silverman's rule for a Gaussian kernel, with as many points as the weights support
    points = max(1.0, min(float(centers), ess))
    factor = _BANDWIDTH * (4 / (d + 2)) ** (1 / (d + 4)) * points ** (-1 / (d + 4))
    picked = sir_init(u, log_w, centers, generator)
    return _Proposal(mean, scale_tril, picked, factor * scale_tril, weights)


def adaptive_importance(
    log_target: Callable[[Tensor], Tensor],
    sample_base: Callable[[int], Tensor],
    log_base: Callable[[Tensor], Tensor],
    *,
    draws: int,
    target_ess: float,
    max_rounds: int,
    generator: torch.Generator | None,
    defensive: float = 0.1,
    gaussian: float = 0.3,
    centers: int = 200,
) -> tuple[Tensor, Tensor]:
    """Weighted draws of an unnormalised target on R^d.

    Arguments:
        log_target: u (N, d) -> (N,) log-density up to a constant; -inf or NaN off its support.
        sample_base: n -> (n, d) draws from the base (round 0's proposal).
        log_base: u (N, d) -> (N,) the base's log-density (normalised; -inf off its support).
        draws: draws per round, K.
        target_ess: rounds are added until the weights' effective sample size reaches it
            (`sbibench.mcmc.importance_ess`) ...
        max_rounds: ... or this many rounds were drawn.
        generator: the source of every draw.
        defensive, gaussian: the base's and the Gaussian's share of each later proposal; the
            kernels have the rest.
        centers: kernels in each later proposal, M.

    Returns:
        u (R K, d) and log-weights (R K,), R the rounds drawn: each round's log target - log
        of its own proposal, shifted so the round's weights sum to its effective sample size
        (`_combine`; -inf for NaN). Self-normalised, they estimate expectations under the
        target; they do not estimate its normalising constant.
    """
    weights = (defensive, gaussian, 1.0 - defensive - gaussian)
    if min(weights) < 0 or defensive <= 0:
        raise ValueError(f"defensive must be > 0 and defensive + gaussian <= 1, got {weights}")
    u = sample_base(draws).double()
    rounds = [(u, _clean(log_target(u)) - log_base(u).nan_to_num(-math.inf))]
    log_w = _combine(rounds)
    while len(rounds) < max_rounds and importance_ess(log_w) < target_ess:
        if not torch.isfinite(log_w).any():
            break
        proposal = _fit(torch.cat([r[0] for r in rounds]), log_w, centers, weights, generator)
        new = proposal.sample(draws, sample_base, generator)
        log_q = proposal.log_prob(new, log_base(new).nan_to_num(-math.inf))
        rounds.append((new, (_clean(log_target(new)) - log_q).nan_to_num(-math.inf)))
        log_w = _combine(rounds)
    return torch.cat([r[0] for r in rounds]), log_w


def _clean(log_density: Tensor) -> Tensor:
    return log_density.double().nan_to_num(-math.inf, posinf=-math.inf)


def _combine(rounds: list[tuple[Tensor, Tensor]]) -> Tensor:
    """One set of log-weights for the draws of all rounds: each round's weights (against its
    own proposal) normalised, then scaled by the round's effective sample size, so a round
    counts as much as its weights are informative (a prior round's few huge weights would
    otherwise swamp the later rounds)."""
    out = []
    for _, log_w in rounds:
        ess = importance_ess(log_w)
        scale = torch.log(ess) - torch.logsumexp(log_w, 0) if ess > 0 else -math.inf
        out.append(log_w + scale)
    return torch.cat(out)
