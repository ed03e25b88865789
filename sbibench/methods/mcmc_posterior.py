"""Posteriors sampled by MCMC from a potential: the shared back end of NLE, NRE and oracle MCMC.

A method supplies a potential ``log f(u, x)`` on u = T^-1(theta) (a learned log-likelihood, a
log-ratio or the exact log-likelihood); the target is log f(u, x) + log p_u(u), with p_u the
prior pushed to u (its Jacobian included), so chains move freely on R^D and every draw
T(u) lies in the prior's support. For n draws of one observation, n slice chains (one draw
each) start from adaptive importance sampling of the target (`sbibench.importance`: rounds
until the weights' effective sample size reaches 2 n), resampled systematically along the
weighted draws' principal axis (`sbibench.mcmc.sir_init`), and keep their state after 20
warm-up sweeps. Why so: a chain's draws share its mode, and chains cross between modes
(two_moons' crescents) during warm-up, so the modes' balance in the draws is only that of n
independent draws with a chain per draw, and only as good as the start's weights. With the
exact likelihood (oracle_mcmc) the draws' largest excess over the noise floors, on two_moons
and gaussian_mixture at 2,000 and 10,000 draws, came down from 3.8-14.7 floor sds to 1.6-4.9,
that of exact draws (docs/methods.md, "The MCMC sampler").

Calibration (SBC, coverage) needs L draws for each of ~1,000 datasets: `MCMCPosterior.sample_batch`
runs them all as one slice-sampling run of short, independent chains (see its docstring).
With the exact likelihood (oracle_mcmc), 1,000 datasets x 100 draws: on gaussian_mixture the
ECDF p-value is 0.08 and coverage's largest deviation 0.045 after 30 warm-up sweeps (3.6e-7 and
0.17 after 6, which left the narrow component with 37% of the draws instead of ~52%); on
two_moons 0.089 and 0.040 (0.008 and 0.070 after 6). See docs/methods.md, "The MCMC sampler".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import Tensor

from sbibench.importance import adaptive_importance
from sbibench.mcmc import LogDensity, MCMCResult, sample_mcmc, sir_init
from sbibench.methods.base import Bookkeeping, dim_unconstrained, log_abs_det, unconstrained
from sbibench.methods.posteriors import BasePosterior
from sbibench.methods.settings import check_settings, sampler_name, setting, whole
from sbibench.task import Task

__all__ = ["MCMCPosterior", "MCMCSettings", "Potential"]

# `MCMCPosterior.sample_batch`: per observation, ceil(n / 2) chains (at least 2 D + 1, so that
# the sampler whitens with a full covariance), each keeping 2 draws 3 sweeps apart after 30
# sweeps of warm-up, started from the best of 20 of its own prior draws. Measured with the exact
# likelihood (oracle_mcmc) on linear_gaussian, linear_gaussian_vae, normal_mean_variance and
# poisson_gamma, 1,000 datasets x 100 draws (with 6 warm-up sweeps): the draws' variance is
# within 0.6% of the exact posterior's and the lag-3 autocorrelation within a chain is below
# 0.02 (0.1-0.3 at lag 1). Six sweeps were too few to move chains started near the prior into
# gaussian_mixture's narrow component or along two_moons' crescents (module docstring).
_BATCH_DRAWS_PER_CHAIN = 2
_BATCH_THIN = 3
_BATCH_WARMUP = 30
_BATCH_CANDIDATES = 20
_CHUNK = 2**17  # rows per potential call outside the sampler: bounds the memory

Potential = Callable[[Tensor, Tensor], Tensor]  # u (K, D), x (K, M) -> (K,) float64


@dataclasses.dataclass(frozen=True)
class MCMCSettings:
    """How a potential-based posterior is sampled (`sbibench.mcmc.sample_mcmc`).

    Arguments:
        sampler: ``"slice"``, ``"hmc"`` or ``"mala"``.
        num_chains: chains per observation. None (the default): one chain per draw (at least
            2 D + 1, so the whitening has a full covariance), each keeping one draw after
            warm-up. A chain's draws share its mode, and chains cross between modes during
            warm-up, so the modes' balance in the draws is that of independent draws only
            with a chain per draw (module docstring). A number C: each chain keeps ceil(n / C)
            draws ``thin`` transitions apart (sbibm's setting: 100 chains).
        warmup: transitions before draws are kept (adaptation happens only then).
        thin: keep every ``thin``-th transition.
        init_candidates: draws per observation and round of the importance sampling that the
            chains start from (`sbibench.importance.adaptive_importance`, then systematic
            resampling, `sbibench.mcmc.sir_init`).
        init_rounds: most rounds: rounds are added until the importance weights' effective
            sample size (`sbibench.mcmc.importance_ess`) reaches twice the draws asked for
            (and at least the chains' number), so that the chains start spread over the modes
            in proportion to their mass with an error below the draws' own.
    """

    sampler: str = setting("slice", sampler_name)
    num_chains: int | None = None
    warmup: int = setting(20, whole(0))
    thin: int = 2
    init_candidates: int = setting(10_000, whole(1))
    init_rounds: int = setting(50, whole(1))


class MCMCPosterior(BasePosterior):
    """p(theta | x) ∝ f(u, x) p_u(u), sampled by vectorised MCMC (amortized unless it was
    trained sequentially for one ``observation``).

    ``sample(n, x, seed)``: x (M,) -> (n, D); x (B, M) -> (n, B, D). With a seed each
    observation runs on its own generator (`observation_generator`); without one, the chains
    of all B observations advance together in one batch. ``sample_batch(n, x, seed)``: draws
    for many observations in one short run, for calibration. ``last_run`` keeps the last
    `MCMCResult` (R-hat, ESS, acceptance; NaN with fewer than 4 draws per chain).
    ``unnormalized_log_prob(theta, x)`` is log f + log p(theta) (normalised only up to a
    constant in theta).
    """

    def __init__(
        self,
        potential: Potential,
        task: Task,
        settings: MCMCSettings,
        bookkeeping: Bookkeeping,
        observation: Tensor | None = None,
    ) -> None:
        check_settings(settings)
        super().__init__(task, bookkeeping, observation)
        self.potential = potential
        self.settings = settings
        self.transform = unconstrained(task)
        self.last_run: MCMCResult | None = None

    @torch.no_grad()
    def sample_u(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """(n, B, D) draws in u-space for observations x (B, M), all chains at once."""
        s, b = self.settings, x.shape[0]
        chains = s.num_chains or max(n, 2 * dim_unconstrained(self.task) + 1)
        init = []
        for row in x:  # each observation's start from its own rounds of importance sampling
            u, log_w = adaptive_importance(
                lambda u, row=row: self._log_target_rows(u, row),
                lambda k: self.transform.inv(self.task.sample_prior(k, generator)),
                self._log_prior_u,
                draws=s.init_candidates, target_ess=max(chains, 2 * n),
                max_rounds=s.init_rounds, generator=generator,
            )  # fmt: skip
            init.append(sir_init(u, log_w, chains, generator))
        init = torch.cat(init)
        groups = torch.arange(b).repeat_interleave(chains)
        result = sample_mcmc(
            self._target(x, groups), init, n, sampler=s.sampler, warmup=s.warmup, thin=s.thin,
            groups=groups, generator=generator,
        )  # fmt: skip
        self.last_run = result
        return torch.stack([result.samples(n, g) for g in range(b)], dim=1)

    def _log_prior_u(self, u: Tensor, prior=None) -> Tensor:
        """log p_u(u), (N,): the prior pushed to u, -inf wherever T(u) overflows or leaves the
        support (far leapfrog or slice steps, the tails of a fitted proposal)."""
        prior = self.task.prior if prior is None else prior
        theta = self.transform(u)
        ok = (torch.isfinite(theta).all(-1) & prior.support.check(theta)).nonzero().squeeze(1)
        out = torch.full((u.shape[0],), -math.inf, dtype=torch.float64)
        if len(ok) == 0:
            return out
        u, theta = u[ok], theta[ok]
        return out.index_put(
            (ok,), (prior.log_prob(theta) + log_abs_det(self.transform, u, theta)).double()
        )

    def _log_target_rows(self, u: Tensor, x: Tensor) -> Tensor:
        """log f(u_i, x) + log p_u(u_i) for rows u (N, D) and one observation x (M,), in
        chunks: (N,), -inf where T(u) leaves the support (the potential is not called there)."""
        out = self._log_prior_u(u)
        ok = torch.isfinite(out).nonzero().squeeze(1)
        rows = u[ok]
        potential = [self.potential(part, x.expand(len(part), -1)) for part in rows.split(_CHUNK)]
        if len(ok):
            out = out.index_put((ok,), out[ok] + torch.cat(potential).double())
        return out

    def _target(self, x: Tensor, groups: Tensor) -> LogDensity:
        """The log-density on u of every chain: chain i targets observation x[groups[i]]."""
        prior = self.task.prior  # built once: a task builds its prior on every access

        def log_prob(u: Tensor, chains: Tensor) -> Tensor:
            log_prior = self._log_prior_u(u, prior)
            ok = torch.isfinite(log_prior).nonzero().squeeze(1)
            if len(ok) == 0:
                return log_prior + 0 * u.sum(-1)  # keep the graph for gradient-based samplers
            potential = self.potential(u[ok], x[groups[chains[ok]]])
            return log_prior.index_put((ok,), log_prior[ok] + potential)

        return log_prob

    @torch.no_grad()
    def sample_batch(
        self,
        n: int,
        x: Tensor,
        seed: int,
        *,
        draws_per_chain: int = _BATCH_DRAWS_PER_CHAIN,
        thin: int = _BATCH_THIN,
        warmup: int = _BATCH_WARMUP,
        candidates: int = _BATCH_CANDIDATES,
    ) -> Tensor:
        """Draws for many observations in one run, for calibration (SBC, coverage).

        One slice-sampling run (`sample_mcmc` with a group per observation) advances every
        chain of every observation together, whatever the configured sampler: slice sampling
        needs no tuning, which is what makes short chains valid (HMC and MALA adapt a step
        size during a long warm-up). Per observation there are C = max(ceil(n /
        draws_per_chain), 2 D + 1) chains, so that the per-observation whitening uses a full
        covariance. Each chain starts from one sampling-importance-resampling draw out of
        ``candidates`` prior draws of its own, so the chains start, and stay, independent;
        few candidates suffice, as the warm-up moves the chains to the posterior anyway
        (starting points between prior and posterior are forgotten geometrically, in a few
        sweeps). After ``warmup`` sweeps each chain keeps ``draws_per_chain`` states ``thin``
        sweeps apart. Draws of different chains are independent; two draws of one chain are
        ``thin`` sweeps apart, which leaves a lag correlation below 0.02 on the tasks
        measured (about 0.2 one sweep apart). Cost per observation: C (warmup + thin *
        draws_per_chain) sweeps of D coordinates, about 4.5 potential calls each, plus
        C * candidates calls to start.

        Arguments:
            n: draws per observation, L.
            x: (B, M) observations.
            seed: the seed of the whole run: the draws are a pure function of ``seed`` and the
                whole batch (not per-observation reproducible like `sample`).
            draws_per_chain, thin, warmup, candidates: see above (defaults: 2, 3, 30, 20).

        Returns:
            (n, B, D) draws; draw j of observation b comes from chain j mod C of b.
        """
        for name, value, low in (
            ("n", n, 1),
            ("draws_per_chain", draws_per_chain, 1),
            ("thin", thin, 1),
            ("warmup", warmup, 0),
            ("candidates", candidates, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        x = self.check_batch(x)
        with self.timings.phase("sample"):
            generator = torch.Generator().manual_seed(seed)
            u = self.independent_u(n, x, generator, draws_per_chain, thin, warmup, candidates)
            return self.transform(u)

    @torch.no_grad()
    def independent_u(
        self,
        n: int,
        x: Tensor,
        generator: torch.Generator | None,
        draws_per_chain: int = _BATCH_DRAWS_PER_CHAIN,
        thin: int = _BATCH_THIN,
        warmup: int = _BATCH_WARMUP,
        candidates: int = _BATCH_CANDIDATES,
    ) -> Tensor:
        """The short independent chains of `sample_batch`, in u-space and untimed: x (B, M)
        -> (n, B, D). Sequential methods draw their proposals with it (1,000 draws a round
        in 36 sweeps instead of the 50 warm-up sweeps of `sample`)."""
        b, d = x.shape[0], dim_unconstrained(self.task)
        chains = max(-(-n // draws_per_chain), 2 * d + 1)
        u = self.transform.inv(self.task.sample_prior(b * chains * candidates, generator))
        rows_x = x.repeat_interleave(chains * candidates, 0)
        parts = zip(u.split(_CHUNK), rows_x.split(_CHUNK), strict=True)
        log_w = torch.cat([self.potential(*part) for part in parts])
        init = _sir_rows(u.reshape(b * chains, candidates, d), log_w, generator)
        groups = torch.arange(b).repeat_interleave(chains)
        result = sample_mcmc(
            self._target(x, groups), init, n, sampler="slice", warmup=warmup, thin=thin,
            groups=groups, generator=generator,
        )  # fmt: skip
        self.last_run = result
        kept = result.chains.shape[1]  # ceil(n / chains) <= draws_per_chain
        # interleave the chains of each observation, as `MCMCResult.samples` does
        draws = result.chains.reshape(b, chains, kept, d).transpose(1, 2)
        return draws.reshape(b, kept * chains, d)[:, :n].transpose(0, 1)

    def _draw(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return self.transform(self.sample_u(n, x.unsqueeze(0), generator)[:, 0])

    def _draw_batch(self, n: int, x: Tensor) -> Tensor:  # the chains of every x together
        return self.transform(self.sample_u(n, x, None))

    @torch.no_grad()
    def unnormalized_log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log f(T^-1(theta), x) + log p(theta), up to a constant per observation.

        theta (N, D) and x (M,), or x (N, M) paired with theta row by row (many observations
        in one batched call) -> (N,).
        """
        x = self.check_paired(theta, x)
        theta = theta.double()
        u = self.transform.inv(theta)
        return self.potential(u, x.expand(theta.shape[0], -1)) + self.task.prior.log_prob(theta)


def _sir_rows(candidates: Tensor, log_weights: Tensor, generator: torch.Generator) -> Tensor:
    """One sampling-importance-resampling draw per row (Gumbel max): candidates (R, K, D) and
    log-weights (R * K,) -> (R, D); NaN weighs as -inf."""
    r, k, _ = candidates.shape
    w = torch.nan_to_num(log_weights.double().reshape(r, k), nan=-math.inf, posinf=math.inf)
    u = torch.rand(w.shape, generator=generator, dtype=torch.float64).clamp_min(1e-300)
    keys = torch.where(torch.isfinite(w), w - torch.log(-torch.log(u)), -math.inf)
    return candidates[torch.arange(r), keys.argmax(1)]
