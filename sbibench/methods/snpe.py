"""Sequential neural posterior estimation: SNPE-A, SNPE-B and SNPE-C (APT).

All three spend the budget in ``rounds`` equal parts (sbibm: 10). Round 1 simulates from the
prior; each later round simulates from a proposal focused on the observation x_o, and the
estimator is retrained on every simulation so far. Pooled, the parameters are draws from the
mixture proposal p~(u) = sum_r (n_r / N) p~_r(u) (p~_1 the prior); the variants differ in how
they undo the proposal (u = T^-1(theta) throughout, the prior pushed to u-space):

- ``snpe_a`` (Papamakarios & Murray 2016): an MDN fitted by maximum likelihood learns the
  proposal posterior p~(u | x) ∝ p(x | u) p~(u); the posterior is q(u | x_o) p(u) / p~(u).
  Proposals are Gaussians moment-matched to the current posterior. The correction is applied by
  sampling-importance-resampling from the MDN (weights p / p~, bounded by ``rounds`` because
  the prior is one component of p~), which works for any prior, not only Gaussian ones.
- ``snpe_b`` (Lueckmann et al. 2017): maximum likelihood with importance weights
  p(u) / p~(u) (normalised to mean 1), so the estimator learns the posterior directly.
  Proposals are the current posterior estimate.
- ``snpe_c`` (Greenberg et al. 2019, "APT", atomic loss): for each pair (u_i, x_i) in a batch
  and ``num_atoms - 1`` other parameters of the batch, minimise
  -log softmax_j [log q(u_j | x_i) - log p(u_j)] at j = i; round 1 uses maximum likelihood.
  Proposals are the current posterior estimate. ``space = "constrained"`` fits theta itself,
  as sbi and sbibm's SNPE-C do: proposals and the posterior reject the estimator's draws
  outside the prior's support, the atoms' prior density is p(theta), and the posterior's
  density is divided by its mass inside the support (`TruncatedPosterior`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.distributions import MultivariateNormal

from sbibench.methods.base import (
    Bookkeeping,
    check_observation,
    log_prior_unconstrained,
    other_rows,
    unconstrained,
)
from sbibench.methods.posteriors import (
    BasePosterior,
    NeuralPosterior,
    TruncatedPosterior,
    estimator_density,
)
from sbibench.methods.settings import estimator_name, setting
from sbibench.methods.training import (
    EstimatorSettings,
    RoundsSettings,
    SpaceSettings,
    TrainingSettings,
    run_rounds,
    validation_noise,
)
from sbibench.nn import Estimator, train
from sbibench.task import Task

__all__ = ["SNPEA", "SNPEB", "SNPEC"]

LogDensity = Callable[[Tensor], Tensor]  # (N, D) u -> (N,) float64


class _Mixture:
    """The density of the pooled proposals: sum_r (n_r / N) p~_r(u)."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, LogDensity]] = []

    def add(self, count: int, log_density: LogDensity) -> None:
        self.parts.append((count, log_density))

    def log_prob(self, u: Tensor) -> Tensor:
        total = sum(count for count, _ in self.parts)
        terms = [math.log(count / total) + f(u) for count, f in self.parts]
        return torch.logsumexp(torch.stack(terms), dim=0)


def _flow_density(estimator: Estimator, observation: Tensor) -> LogDensity:
    frozen = copy.deepcopy(estimator).eval()

    @torch.no_grad()
    def log_density(u: Tensor) -> Tensor:
        return frozen.log_prob(u.float(), observation.float()).double()

    return log_density


def _constrained(config: Any, task: Task) -> bool:
    """Whether the variant fits theta itself (SNPE-C's ``space``); the others fit u."""
    return isinstance(config, SpaceSettings) and config.constrained(task)


def _log_prior(config: Any, task: Task, u: Tensor) -> Tensor:
    """(N, D) -> (N,) float64: the prior's log-density where the estimator works (on theta
    itself when constrained, else pushed to u = T^-1(theta))."""
    if _constrained(config, task):
        return task.prior.log_prob(u.double()).double()
    return log_prior_unconstrained(task, u)


def _max_likelihood(config, estimator, task, u, x, mixture, first):
    return (lambda u_, x_: -estimator.log_prob(u_, x_).mean()), (u, x)


def _flow_proposal(config, estimator, task, observation, size, mixture, generator):
    """Draw ``size`` u ~ the current posterior estimate (inside the support when constrained);
    its log-density."""
    if _constrained(config, task):
        truncated = TruncatedPosterior(copy.deepcopy(estimator), task, Bookkeeping(), observation)
        u = truncated._draw(size, observation, generator)
        return u, lambda u_: truncated.log_prob(u_, observation)
    with torch.no_grad():
        u = estimator.sample(size, observation.float(), generator=generator).double()
    return u, _flow_density(estimator, observation)


def _neural_result(config, estimator, task, observation, bookkeeping, mixture, generator):
    if _constrained(config, task):
        return TruncatedPosterior(estimator, task, bookkeeping, observation)
    return NeuralPosterior(estimator, task, bookkeeping, observation=observation)


def _sequential(
    config: Any, task: Task, observation: Tensor, num_simulations: int, seed: int
) -> Any:
    """The round loop the three variants share, each with its ``config._loss(estimator, task,
    u, x, mixture, first)`` -> (loss, tensors), ``config._proposal(estimator, task,
    observation, size, mixture, generator)`` -> (u (size, D), its log-density),
    ``config._result(estimator, task, observation, bookkeeping, mixture, generator)`` -> the
    posterior and ``config.min_batch_size`` (2 for a loss that contrasts rows)."""
    observation = check_observation(observation, task, batch=False)
    mixture = _Mixture()
    fitted: list[Estimator] = []  # the estimator, built in round 1

    def propose(size: int, generator: torch.Generator) -> Tensor:
        u_new, log_density = config._proposal(
            fitted[0], task, observation, size, mixture, generator
        )
        mixture.add(size, log_density)
        return u_new

    def learn(r: int, size: int, u: Tensor, x: Tensor) -> None:
        if r == 0:  # z-scoring from the prior's round, as sbi does
            mixture.add(size, lambda u_: _log_prior(config, task, u_))
            fitted.append(config.build(task, u, x))
        step, tensors = config._loss(fitted[0], task, u, x, mixture, first=r == 0)
        settings = config.round_fit_settings(seed + r, num_simulations)
        train(fitted[0], step, tensors, **settings, min_batch_size=config.min_batch_size)

    constrained = _constrained(config, task)
    run = run_rounds(
        task, num_simulations, config.rounds, seed, propose, learn, constrained=constrained
    )
    return config._result(fitted[0], task, observation, run.bookkeeping, mixture, run.generator)


@dataclasses.dataclass(frozen=True)
class SNPEC(EstimatorSettings, SpaceSettings, RoundsSettings, TrainingSettings):
    """APT with the atomic loss; see the module docstring (``space``: `SpaceSettings`)."""

    name: ClassVar[str] = "snpe_c"
    min_batch_size: ClassVar[int] = 2  # an atom set needs another row of the minibatch
    num_atoms: int = 10
    run = _sequential
    _proposal, _result = _flow_proposal, _neural_result

    def _loss(self, estimator, task, u, x, mixture, first):
        if first:
            return _max_likelihood(self, estimator, task, u, x, mixture, first)
        atoms = self.num_atoms
        # The prior's log-density of every row, once per round: an atom is a row of the batch.
        log_prior = _log_prior(self, task, u).float()

        def atomic(u_: Tensor, x_: Tensor, log_p_: Tensor) -> Tensor:
            batch = u_.shape[0]
            count = min(atoms, batch)
            # from a fixed generator in validation: the same atoms every epoch, as in NRE
            choices = other_rows(batch, count - 1, validation_noise(estimator))  # (B, A-1)
            index = torch.cat([torch.arange(batch).unsqueeze(1), choices], dim=1)
            u_atoms = u_[index].reshape(batch * count, -1)
            x_rep = x_.repeat_interleave(count, dim=0)
            log_q = estimator.log_prob(u_atoms, x_rep).reshape(batch, count)
            logits = log_q - log_p_[index]
            return -(logits[:, 0] - torch.logsumexp(logits, dim=1)).mean()

        return atomic, (u, x, log_prior)


@dataclasses.dataclass(frozen=True)
class SNPEB(EstimatorSettings, RoundsSettings, TrainingSettings):
    """Importance-weighted maximum likelihood; see the module docstring."""

    name: ClassVar[str] = "snpe_b"
    min_batch_size: ClassVar[int] = 1
    run = _sequential
    _proposal, _result = _flow_proposal, _neural_result

    def _loss(self, estimator, task, u, x, mixture, first):
        with torch.no_grad():
            log_w = log_prior_unconstrained(task, u) - mixture.log_prob(u.double())
            weights = torch.softmax(log_w, 0).float() * u.shape[0]

        def weighted(u_: Tensor, x_: Tensor, w_: Tensor) -> Tensor:
            return -(w_ * estimator.log_prob(u_, x_)).mean()

        return weighted, (u, x, weights)


@dataclasses.dataclass(frozen=True)
class SNPEA(EstimatorSettings, RoundsSettings, TrainingSettings):
    """MDN with the proposal correction; see the module docstring."""

    name: ClassVar[str] = "snpe_a"
    min_batch_size: ClassVar[int] = 1
    estimator: str = setting("mdn", estimator_name)
    oversampling: int = 10
    run = _sequential
    _loss = _max_likelihood

    def _proposal(self, estimator, task, observation, size, mixture, generator):
        corrected = _CorrectedPosterior(
            estimator, task, observation, mixture, self.oversampling, generator, Bookkeeping()
        )
        sample = corrected.sample_u(max(size, 1000), generator)
        gaussian = MultivariateNormal(sample.mean(0), covariance_matrix=_covariance(sample))
        return _draw(gaussian, size, generator), gaussian.log_prob

    def _result(self, estimator, task, observation, bookkeeping, mixture, generator):
        return _CorrectedPosterior(
            estimator, task, observation, mixture, self.oversampling, generator, bookkeeping
        )


def _covariance(sample: Tensor) -> Tensor:
    centred = sample - sample.mean(0)
    covariance = centred.T @ centred / (len(sample) - 1)
    return covariance + 1e-9 * torch.eye(sample.shape[1], dtype=sample.dtype)


def _draw(gaussian: MultivariateNormal, n: int, generator: torch.Generator) -> Tensor:
    noise = torch.randn(n, gaussian.loc.shape[0], generator=generator, dtype=gaussian.loc.dtype)
    return gaussian.loc + noise @ gaussian.scale_tril.T


class _CorrectedPosterior(BasePosterior):
    """q(u | x_o) p(u) / p~(u): sampled by importance resampling from the estimator, with a
    log-density normalised by an importance-sampling estimate of its constant (20,000 draws
    from ``generator``, so `log_prob` is a pure function of the run's seed)."""

    batch = False

    def __init__(self, estimator, task, observation, mixture, oversampling, generator, bookkeeping):
        super().__init__(task, bookkeeping, observation)
        self.estimator = copy.deepcopy(estimator).eval()
        self.mixture = copy.copy(mixture)
        self.mixture.parts = list(mixture.parts)
        self.oversampling = oversampling
        self.transform = unconstrained(task)
        with torch.no_grad():
            u = self.estimator.sample(20_000, observation.float(), generator=generator).double()
            self._log_normaliser = torch.logsumexp(self._log_weight(u), 0) - math.log(len(u))

    def _log_weight(self, u: Tensor) -> Tensor:
        return log_prior_unconstrained(self.task, u) - self.mixture.log_prob(u)

    @torch.no_grad()
    def sample_u(self, n: int, generator: torch.Generator | None) -> Tensor:
        u = self.estimator.sample(
            n * self.oversampling, self.observation.float(), generator=generator
        )
        u = u.double()
        weights = torch.softmax(self._log_weight(u), 0)
        return u[torch.multinomial(weights, n, replacement=True, generator=generator)]

    def _draw(self, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return self.transform(self.sample_u(n, generator))

    @torch.no_grad()
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """(N, D) -> (N,): log q(u|x_o) + log p(u) - log p~(u) - log Z - log|det dT/du|."""
        log_q, u, log_det = estimator_density(self.estimator, self.transform, theta, self.check(x))
        corrected = log_q + self._log_weight(u) - self._log_normaliser
        return corrected - log_det
