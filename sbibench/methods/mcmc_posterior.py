"""Posteriors sampled by MCMC from a potential: the shared back end of NLE, NRE and oracle MCMC.

A method supplies a potential ``log f(u, x)`` on u = T^-1(theta) (a learned log-likelihood, a
log-ratio or the exact log-likelihood); the target is log f(u, x) + log p_u(u), with p_u the
prior pushed to u (its Jacobian included), so chains move freely on R^D and every draw
T(u) lies in the prior's support. Chains start by sampling-importance-resampling from the
prior (the weights are f itself) and advance together, for one observation or a batch of them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import Tensor

from sbibench.mcmc import SAMPLERS, MCMCResult, sample_mcmc, sir_init
from sbibench.methods.base import (
    SimulationBudget,
    Timings,
    check_observation,
    log_abs_det,
    observation_generator,
    unconstrained,
)
from sbibench.task import Task

__all__ = ["MCMCPosterior", "MCMCSettings", "Potential"]

Potential = Callable[[Tensor, Tensor], Tensor]  # u (K, D), x (K, M) -> (K,) float64


@dataclasses.dataclass(frozen=True)
class MCMCSettings:
    """How a potential-based posterior is sampled (`sbibench.mcmc.sample_mcmc`).

    Arguments:
        sampler: ``"slice"``, ``"hmc"`` or ``"mala"``.
        num_chains: chains per observation.
        warmup: transitions before draws are kept (adaptation happens only then).
        thin: keep every ``thin``-th transition.
        init_candidates: prior draws per observation that the chains are resampled from.
    """

    sampler: str = "slice"
    num_chains: int = 500
    warmup: int = 50
    thin: int = 1
    init_candidates: int = 10_000

    def check_mcmc(self) -> None:
        """Raise ValueError naming the first bad setting."""
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        for name in ("num_chains", "warmup", "thin", "init_candidates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (name != "warmup"):
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.init_candidates < self.num_chains:
            raise ValueError(
                f"init_candidates ({self.init_candidates}) must be >= num_chains ({self.num_chains})"
            )


class MCMCPosterior:
    """p(theta | x) ∝ f(u, x) p_u(u), sampled by vectorised MCMC (amortized unless it was
    trained sequentially for one ``observation``).

    ``sample(n, x, seed)``: x (M,) -> (n, D); x (B, M) -> (n, B, D). With a seed each
    observation runs on its own generator (`observation_generator`); without one, the chains
    of all B observations advance together in one batch. ``last_run`` keeps the last
    `MCMCResult` (R-hat, ESS, acceptance). ``unnormalized_log_prob(theta, x)`` is
    log f + log p(theta) (normalised only up to a constant in theta).
    """

    def __init__(
        self,
        potential: Potential,
        task: Task,
        settings: MCMCSettings,
        budget: SimulationBudget | None,
        timings: Timings,
        observation: Tensor | None = None,
    ) -> None:
        settings.check_mcmc()
        self.potential = potential
        self.task = task
        self.settings = settings
        self.transform = unconstrained(task)
        self.observation = observation
        self.num_simulations_used = budget.used if budget is not None else 0
        self.num_invalid_simulations = budget.invalid if budget is not None else 0
        self.timings = timings
        self.last_run: MCMCResult | None = None

    def _check(self, x: Tensor, batch: bool) -> Tensor:
        x = check_observation(x, self.task, batch=batch)
        if self.observation is not None and not torch.equal(x, self.observation):
            raise ValueError("this posterior was trained sequentially for another observation")
        return x

    @torch.no_grad()
    def sample_u(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """(n, B, D) draws in u-space for observations x (B, M), all chains at once."""
        s, b = self.settings, x.shape[0]
        theta = self.task.sample_prior(b * s.init_candidates, generator)
        candidates = self.transform.inv(theta)
        rows_x = x.repeat_interleave(s.init_candidates, 0)
        log_w = self.potential(candidates, rows_x).reshape(b, s.init_candidates)
        candidates = candidates.reshape(b, s.init_candidates, -1)
        init = torch.cat(
            [
                sir_init(c, w, s.num_chains, generator)
                for c, w in zip(candidates, log_w, strict=True)
            ]
        )
        groups = torch.arange(b).repeat_interleave(s.num_chains)
        prior = self.task.prior  # built once: a task builds its prior on every access

        def log_prob(u: Tensor, chains: Tensor) -> Tensor:
            # -inf wherever T(u) overflows or leaves the support (far leapfrog or slice steps)
            theta = self.transform(u)
            ok = (torch.isfinite(theta).all(-1) & prior.support.check(theta)).nonzero().squeeze(1)
            out = torch.full((u.shape[0],), -math.inf, dtype=torch.float64)
            if len(ok) == 0:
                return out + 0 * u.sum(-1)  # keep the graph for gradient-based samplers
            u, theta = u[ok], theta[ok]
            log_prior = prior.log_prob(theta) + log_abs_det(self.transform, u, theta)
            return out.index_put((ok,), self.potential(u, x[groups[chains[ok]]]) + log_prior)

        result = sample_mcmc(
            log_prob, init, n, sampler=s.sampler, warmup=s.warmup, thin=s.thin,
            groups=groups, generator=generator,
        )  # fmt: skip
        self.last_run = result
        return torch.stack([result.samples(n, g) for g in range(b)], dim=1)

    def _one(self, n: int, x: Tensor, seed: int | None) -> Tensor:
        generator = observation_generator(seed, x) if seed is not None else None
        return self.transform(self.sample_u(n, x.unsqueeze(0), generator)[:, 0])

    def sample(self, n: int, x: Tensor, seed: int | None = None) -> Tensor:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a whole number >= 1, got {n!r}")
        x = self._check(x, batch=True)
        with self.timings.phase("sample"):
            if x.ndim == 1:
                return self._one(n, x, seed)
            if seed is None:
                return self.transform(self.sample_u(n, x, None))
            return torch.stack([self._one(n, row, seed) for row in x], dim=1)

    @torch.no_grad()
    def unnormalized_log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log f(T^-1(theta), x) + log p(theta): (N, D) and (M,) -> (N,), up to a constant."""
        x = self._check(x, batch=False)
        theta = theta.double()
        u = self.transform.inv(theta)
        return self.potential(u, x.expand(theta.shape[0], -1)) + self.task.prior.log_prob(theta)
