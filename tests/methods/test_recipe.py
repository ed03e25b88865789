"""The recipe for a new method (README, "Adding a method"): one file plus one registry line.

The method below is all the file holds: Gaussian posterior estimation with an affine mean,
q(u | x) = N(A x + b, diag(exp(2 s))), trained by maximum likelihood. Its settings, the
preamble of its fit and its posterior's plumbing come from `sbibench.methods.training` and
`sbibench.methods.posteriors`; registering it is one line in `METHODS`.
"""

import dataclasses
import math
from typing import ClassVar

import pytest
import torch
from torch import Tensor, nn

from sbibench import get_task
from sbibench.methods import METHODS, HasLogProb, Posterior, get_method, is_amortized
from sbibench.methods.posteriors import NeuralPosterior
from sbibench.methods.training import TrainingSettings, fit_settings, prior_simulations
from sbibench.nn import train


class AffineGaussian(nn.Module):
    """An estimator in the shape `NeuralPosterior` takes: log_prob(u, x) and sample(n, x)."""

    def __init__(self, features: int, context: int) -> None:
        super().__init__()
        self.mean = nn.Linear(context, features)
        self.log_scale = nn.Parameter(torch.zeros(features))

    def log_prob(self, u: Tensor, x: Tensor) -> Tensor:
        z = (u - self.mean(x)) / self.log_scale.exp()
        return (-0.5 * z.square() - self.log_scale - 0.5 * math.log(2 * math.pi)).sum(-1)

    def sample(self, n: int, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        mean = self.mean(x)  # (D,) for one observation, (B, D) for a batch
        return mean + torch.randn((n, *mean.shape), generator=generator) * self.log_scale.exp()


@dataclasses.dataclass(frozen=True)
class GaussianNPE(TrainingSettings):
    """Gaussian posterior estimation with an affine mean (a test of the recipe)."""

    name: ClassVar[str] = "gaussian_npe"
    amortized: ClassVar[bool] = True
    learning_rate: float = 1e-2

    def fit(self, task, num_simulations, seed):
        with prior_simulations(task, num_simulations, seed) as run:
            u, x = run.u, run.x.float()
            net = AffineGaussian(task.dim_parameters, task.dim_data)
            train(
                net, lambda u_, x_: -net.log_prob(u_, x_).mean(), (u, x), **fit_settings(self, seed)
            )
        return NeuralPosterior(net, task, run.budget, run.timings)


def test_a_method_is_one_file_plus_one_registry_line(monkeypatch):
    monkeypatch.setitem(METHODS, "gaussian_npe", f"{__name__}:GaussianNPE")
    method = get_method("gaussian_npe", max_epochs=200)
    assert is_amortized(method)
    task = get_task("normal_mean")
    posterior = method.fit(task, 1000, seed=0)
    assert isinstance(posterior, Posterior) and isinstance(posterior, HasLogProb)
    assert posterior.num_simulations_used == 1000 and posterior.num_invalid_simulations == 0
    x = torch.stack([task.observation(1), task.observation(2)])
    batch = posterior.sample(4000, x, seed=0)
    assert batch.shape == (4000, 2, 1) and batch.dtype == torch.float64
    assert torch.equal(batch[:, 1], posterior.sample(4000, task.observation(2), seed=0))
    # The exact posterior of normal_mean lies in the family: the fitted mean is within 0.1 of
    # the exact one, a third of its sd of 0.31 (measured: 0.036 and 0.009 at seed 0, at most
    # 0.04 over seeds 0-2).
    for k in (1, 2):
        mean, _ = task.reference_moments(k)
        assert abs(batch[:, k - 1].mean() - mean).max() < 0.1
    theta = task.reference_samples(1)[:5]
    assert posterior.log_prob(theta, task.observation(1)).shape == (5,)
    # Settings are checked like any method's, by their names.
    with pytest.raises(ValueError, match="patience must be a whole number >= 1"):
        get_method("gaussian_npe", patience=0)
