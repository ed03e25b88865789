"""Rejection ABC (its posterior and distance, shared with SMC-ABC, are in `posteriors`).

Rejection ABC (Pritchard et al. 1999; as in sbibm): simulate the whole budget from the prior,
keep the ``num_accepted`` parameters whose summaries are closest to the observation's
(Euclidean distance after dividing each summary by its standard deviation over the
simulations), optionally correct them by linear regression on the summaries (Beaumont et al.
2002), and draw posterior samples from a Gaussian KDE on the accepted set. The regression and
the KDE work in the unconstrained space ``u = T^-1(theta)`` so no draw leaves the prior's support.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor

from sbibench.methods.base import check_observation, unconstrained
from sbibench.methods.posteriors import ParticlePosterior, scaled_distance
from sbibench.methods.settings import check_settings, setting, whole
from sbibench.methods.training import prior_simulations
from sbibench.task import Task

__all__ = ["RejectionABC"]


@dataclasses.dataclass(frozen=True)
class RejectionABC:
    """Rejection ABC with optional regression adjustment and KDE (sequential: per observation).

    Arguments:
        num_accepted: how many of the closest simulations to keep (sbibm's default, 100).
        regression_adjustment: Beaumont et al. (2002) linear correction of accepted parameters.
        kde: draw from a Gaussian KDE on the accepted set (else resample them).
    """

    name: ClassVar[str] = "rej_abc"
    num_accepted: int = setting(100, whole(2))
    regression_adjustment: bool = False
    kde: bool = True

    def run(
        self, task: Task, observation: Tensor, num_simulations: int, seed: int
    ) -> ParticlePosterior:
        """Simulate ``num_simulations`` from the prior and accept the closest."""
        check_settings(self)
        observation = check_observation(observation, task, batch=False)
        with prior_simulations(task, num_simulations, seed) as run:
            theta, x = run.theta, run.x
            summaries = task.summary(x)
            observed = task.summary(observation.unsqueeze(0))[0]
            distance = scaled_distance(summaries, observed, summaries.std(0))
            keep = distance.topk(min(self.num_accepted, len(distance)), largest=False).indices
            u = unconstrained(task).inv(theta[keep])
            if self.regression_adjustment:
                u = _regression_adjust(u, summaries[keep], observed)
        return ParticlePosterior(task, observation, u, None, self.kde, run.bookkeeping)


def _regression_adjust(u: Tensor, summaries: Tensor, observed: Tensor) -> Tensor:
    """Beaumont et al. (2002): u_i - (s_i - s_o) beta, beta from least squares of u on s."""
    design = torch.cat([torch.ones(len(summaries), 1, dtype=u.dtype), summaries - observed], 1)
    beta = torch.linalg.lstsq(design, u).solution[1:]
    return u - (summaries - observed) @ beta
