"""The sbi package's inference classes (NPE, NLE, NRE, FMPE) as sbibench methods.

Install with ``pip install "sbibench[sbi]"``. sbi trains with its own defaults (which sbibench's
``npe`` mirrors); sbi works in float32, so the task's prior is handed over in float32 and
samples come back as float64. The same grid can then benchmark sbi's implementations beside
sbibench's, on the same simulations budget and seeds.

sbi fits the parameters theta as they are, with transforms of its own that keep the dimension.
A prior on the simplex (K coordinates summing to 1) defeats that: a K-dimensional density has
no density on a (K - 1)-dimensional set, and sbi's transform check refuses stick-breaking. For
such a prior (`dim_unconstrained` below D) sbi is handed the prior pushed to u = T^-1(theta)
in R^(K - 1) and the simulations' u, and its samples come back through T (its densities with
log|det dT/du| taken off): what sbibm's automatic transforms do. Other priors go as they are.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, Transform, TransformedDistribution

from sbibench.methods.base import (
    Bookkeeping,
    dim_unconstrained,
    log_abs_det,
    refuse_padded_sets,
    unconstrained,
)
from sbibench.methods.external import Float32Prior
from sbibench.methods.posteriors import BasePosterior
from sbibench.methods.training import prior_simulations
from sbibench.task import Task

__all__ = ["Sbi", "SbiDensityPosterior", "SbiPosterior", "SbiPotentialPosterior", "sbi_prior"]

INFERENCE = ("NPE", "NLE", "NRE", "FMPE")


def sbi_prior(task: Task) -> tuple[Distribution, Transform | None]:
    """The prior sbi is given and the map from its parameters to theta: (prior, None) where
    sbi can fit theta itself; (the prior of u = T^-1(theta), T) on the simplex."""
    if dim_unconstrained(task) == task.dim_parameters:
        return task.prior, None
    transform = unconstrained(task)
    return TransformedDistribution(task.prior, [transform.inv]), transform


class SbiPosterior(BasePosterior):
    """An sbi posterior behind sbibench's `Posterior` interface (amortized); ``transform``
    maps sbi's parameters to theta (None: sbi's parameters are theta)."""

    def __init__(
        self,
        posterior: Any,
        task: Task,
        bookkeeping: Bookkeeping,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(task, bookkeeping)
        self.posterior = posterior
        self.transform = transform

    def _draw(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        with torch.random.fork_rng(devices=[]):
            if generator is not None:  # sbi draws from torch's global RNG
                torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            samples = self.posterior.sample(
                (n,), x=x.float().unsqueeze(0), show_progress_bars=False
            )
        samples = samples.double()
        return samples if self.transform is None else self.transform(samples)

    def _log_q(self, theta: Tensor, x: Tensor) -> Tensor:
        """sbi's log-density of theta (N, D) at x (M,), Jacobian of ``transform`` included."""
        x = self.check(x)
        if self.transform is None:
            return self.posterior.log_prob(theta.float(), x=x.float().unsqueeze(0)).double()
        theta = theta.double()
        u = self.transform.inv(theta)
        log_q = self.posterior.log_prob(u.float(), x=x.float().unsqueeze(0)).double()
        return log_q - log_abs_det(self.transform, u, theta)


class SbiDensityPosterior(SbiPosterior):
    """An sbi posterior whose density sbi normalises (NPE, FMPE)."""

    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """(N, D) and (M,) -> (N,)."""
        return self._log_q(theta, x)


class SbiPotentialPosterior(SbiPosterior):
    """An sbi posterior sampled by MCMC (NLE, NRE), whose density sbi knows only up to a
    constant per observation: no NLL is scored from it, as for sbibench's own NLE and NRE."""

    def unnormalized_log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """(N, D) and x (M,) or (N, M) -> (N,), up to a constant per observation."""
        if x.ndim == 2:  # rows paired with theta's, as calibration asks
            return torch.cat([self._log_q(t[None], row) for t, row in zip(theta, x, strict=True)])
        with warnings.catch_warnings():  # sbi warns that it is unnormalised: we know
            warnings.filterwarnings("ignore", "The log-probability is unnormalized")
            return self._log_q(theta, x)


@dataclasses.dataclass(frozen=True)
class Sbi:
    """One of sbi's inference classes, trained once on the whole budget (amortized).

    Arguments:
        inference: ``"NPE"``, ``"NLE"``, ``"NRE"`` or ``"FMPE"``.
        estimator: sbi's ``density_estimator`` (NPE, NLE), ``classifier`` (NRE) or
            ``vf_estimator`` (FMPE); None for sbi's default.
        training: keyword arguments for ``.train()`` (sbi's defaults otherwise).
        posterior: keyword arguments for ``.build_posterior()`` (e.g. ``sample_with``).
    """

    name: ClassVar[str] = "sbi"
    inference: str = "NPE"
    estimator: str | None = None
    training: dict = dataclasses.field(default_factory=dict)
    posterior: dict = dataclasses.field(default_factory=dict)

    def fit(self, task: Task, num_simulations: int, seed: int) -> SbiPosterior:
        refuse_padded_sets(task, "sbi", "sbi's estimators take fixed-length data without NaN")
        if self.inference not in INFERENCE:
            raise ValueError(f"inference must be one of {INFERENCE}, got {self.inference!r}")
        try:
            import sbi.inference
        except ImportError:
            raise ImportError(
                'the "sbi" method needs the sbi package: pip install "sbibench[sbi]"'
            ) from None
        with prior_simulations(task, num_simulations, seed) as run:
            base, transform = sbi_prior(task)
            prior = Float32Prior(base)
            theta = run.theta if transform is None else transform.inv(run.theta)
            keyword = {"NRE": "classifier", "FMPE": "vf_estimator"}.get(
                self.inference, "density_estimator"
            )
            options = {keyword: self.estimator} if self.estimator else {}
            inference = getattr(sbi.inference, self.inference)(
                prior=prior, show_progress_bars=False, **options
            )
            inference.append_simulations(theta.float(), run.x.float())
            inference.train(**self.training)
            posterior = inference.build_posterior(**self.posterior)
        kind = SbiPotentialPosterior if self.inference in ("NLE", "NRE") else SbiDensityPosterior
        return kind(posterior, task, run.bookkeeping, transform)
