"""Neural posterior estimation (NPE; Papamakarios & Murray 2016, Greenberg et al. 2019).

NPE simulates the whole budget from the prior and fits a conditional density estimator
q_phi(u | x) by maximum likelihood, minimising  -E_{(theta, x) ~ p(theta) p(x | theta)}
[log q_phi(T^-1(theta) | x)], where u = T^-1(theta) maps the prior's support onto R^D. One fit
serves every observation (amortized). The posterior density is
log q(theta | x) = log q_phi(u | x) - log|det dT/du|, and samples T(u) never leave the support.

``space = "constrained"`` fits q_phi(theta | x) on theta itself, as sbi and sbibm's NPE do: the
estimator then puts some mass outside the prior's support ("leakage"), its draws outside are
rejected, and its density is divided by the mass inside, estimated from 10,000 draws
(sbi's leakage correction). A prior on the simplex has no density in D dimensions, so it
stays unconstrained.

Defaults mirror the sbi package's NPE: a MAF of 5 transforms with 2 x 50 hidden units, z-scored
parameters and data, Adam at 5e-4, batches of 200, 10% validation, stop after 20 epochs
without improvement, gradient norm clipped at 5.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
from torch import Tensor

from sbibench.methods.base import Bookkeeping, dim_unconstrained
from sbibench.methods.posteriors import BasePosterior, NeuralPosterior
from sbibench.methods.settings import one_of, setting
from sbibench.methods.training import EstimatorSettings, TrainingSettings, prior_simulations
from sbibench.nn import Estimator, train
from sbibench.task import Task

__all__ = ["NPE", "TruncatedPosterior"]


@dataclasses.dataclass(frozen=True)
class NPE(EstimatorSettings, TrainingSettings):
    """Amortized neural posterior estimation; see the module docstring.

    Arguments:
        space: ``"unconstrained"`` (fit u = T^-1(theta)) or ``"constrained"`` (fit theta, with
            leakage rejected and corrected, as sbi).
    """

    name: ClassVar[str] = "npe"
    amortized: ClassVar[bool] = True
    space: str = setting("unconstrained", one_of("unconstrained", "constrained"))

    def fit(self, task: Task, num_simulations: int, seed: int) -> BasePosterior:
        constrained = self.space == "constrained"
        if constrained and dim_unconstrained(task) != task.dim_parameters:
            raise ValueError(
                f"task {task.name!r}: a prior on the simplex has no density in "
                f"{task.dim_parameters} dimensions; NPE needs space = 'unconstrained' there"
            )
        with prior_simulations(task, num_simulations, seed) as run:
            u = run.theta.float() if constrained else run.u
            x = run.x.float()
            estimator = self.build(task, u, x)
            train(
                estimator,
                lambda u_, x_: -estimator.log_prob(u_, x_).mean(),
                (u, x),
                **self.fit_settings(seed),
            )
        if constrained:
            return TruncatedPosterior(estimator, task, run.bookkeeping)
        return NeuralPosterior(estimator, task, run.bookkeeping)


class TruncatedPosterior(BasePosterior):
    """q(theta | x) restricted to the prior's support: an estimator of theta itself whose draws
    outside the support are rejected, and whose density is divided by its mass inside
    (amortized).

    ``sample(n, x, seed)``: x (M,) -> (n, D) float64, every draw inside the support.
    ``log_prob(theta, x)``: (N, D) and (M,) -> (N,), -inf outside the support.
    ``acceptance(x)``: the estimator's mass inside the support, from ``leakage_draws`` draws.
    """

    batch = True
    leakage_draws: ClassVar[int] = 10_000
    min_acceptance: ClassVar[float] = 1e-4  # below it, sampling would take too long: refused

    def __init__(self, estimator: Estimator, task: Task, bookkeeping: Bookkeeping) -> None:
        self.estimator = estimator.eval()
        super().__init__(task, bookkeeping)

    def _inside(self, theta: Tensor) -> Tensor:
        return self.task.prior.support.check(theta)

    @torch.no_grad()
    def _draw(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        kept: list[Tensor] = []
        found, drawn = 0, 0
        while found < n:
            # ask for what is missing over the acceptance so far, a fifth more, at least 1,000
            rate = found / drawn if drawn else 1.0
            if drawn >= self.leakage_draws and rate < self.min_acceptance:
                raise RuntimeError(self._leaking(x, rate))
            size = max(1000, math.ceil(1.2 * (n - found) / max(rate, self.min_acceptance)))
            size = min(size, 1_000_000)
            theta = self.estimator.sample(size, x.float(), generator=generator).double()
            inside = theta[self._inside(theta)]
            kept.append(inside)
            found, drawn = found + len(inside), drawn + size
        return torch.cat(kept)[:n]

    def _leaking(self, x: Tensor, rate: float) -> str:
        return (
            f"task {self.task.name!r}: only {rate:.2e} of the estimator's draws fall inside the "
            f"prior's support for x = {x.tolist()}; fit with space = 'unconstrained'"
        )

    @torch.no_grad()
    def acceptance(self, x: Tensor) -> float:
        """The share of the estimator's draws for x (M,) that fall inside the support."""
        x = self.check(x)
        gen = torch.Generator().manual_seed(0)  # the same estimate on every call
        theta = self.estimator.sample(self.leakage_draws, x.float(), generator=gen).double()
        return float(self._inside(theta).double().mean())

    @torch.no_grad()
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log q(theta | x) - log P_q(support | x): theta (N, D) and x (M,) -> (N,)."""
        x = self.check(x)
        theta = theta.double()
        accepted = self.acceptance(x)
        if accepted < self.min_acceptance:
            raise RuntimeError(self._leaking(x, accepted))
        log_q = self.estimator.log_prob(theta.float(), x.float()).double() - math.log(accepted)
        return torch.where(self._inside(theta), log_q, -math.inf)
