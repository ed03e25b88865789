"""Neural ratio estimation: NRE (AALR), balanced NRE, contrastive NRE and sequential NRE.

A classifier d_phi(u, x) on u = T^-1(theta) learns the likelihood-to-evidence ratio
r(theta, x) = p(x | theta) / p(x) = p(theta | x) / p(theta) (the Jacobian of T cancels), and the
posterior  p(theta | x_o) ∝ exp(d_phi(u, x_o)) p_u(u)  is sampled by vectorised MCMC
(`sbibench.methods.mcmc_posterior`). In a batch, joint pairs (u_i, x_i) are contrasted with
marginal pairs (u_j, x_i), j != i, drawn from the other rows of the batch.

- ``nre`` (Hermans et al. 2020, "AALR"): binary cross-entropy, joint pairs labelled 1 and
  marginal pairs 0, L = -1/2 E[log sigma(d(u_i, x_i))] - 1/2 E[log(1 - sigma(d(u_j, x_i)))];
  at the optimum d = log r.
- ``bnre`` (Delaunoy et al. 2022): the same plus lambda (E_joint[sigma(d)] + E_marginal[sigma(d)]
  - 1)^2, a balancing condition that makes the classifier, hence the posterior, conservative
  (wider) rather than overconfident; lambda = 100 as in the paper.
- ``nre_c`` (Miller et al. 2022): classify which of K parameters (if any) belongs with x_i,
  with prior odds gamma = K p(y=k) / p(y=0) of a joint set against an all-marginal set:
  L = -[1/(1+gamma) log q(y=0 | marginal set) + gamma/(1+gamma) log q(y=1 | joint set)],
  q(y=k) = gamma exp(d_k) / (K + gamma sum_j exp(d_j)), q(y=0) = K / (...); d = log r at the
  optimum, exactly (no free constant as in NRE-B).
- ``nre_b`` (Durkan et al. 2020, "SRE"; sbi's NRE_B, the NRE of sbibm): classify which of
  ``num_atoms`` parameters, the joint one and ``num_atoms - 1`` other rows, belongs with x_i,
  L = -E[d(u_i, x_i) - log sum_k exp d(u_k, x_i)]; d = log r + c(x) at the optimum, a constant
  in theta only, which MCMC does not see.
- ``snre``: ``rounds`` equal parts of the budget, round 1 from the prior and later rounds from the
  current MCMC posterior for x_o, the AALR loss on all simulations so far. Trained on a proposal,
  d estimates log p(x | theta) / p~(x), which differs from log r by a constant in theta only, so
  the MCMC target needs no correction. ``snre_b`` is the same with the NRE-B loss.

Defaults mirror sbi's NRE training settings (Adam 5e-4, batches of 200, 10% validation,
patience 20, clipping at 5); the classifier is an MLP of 2 x 50 units on z-scored inputs, or
with ``classifier = "resnet"`` sbi's residual net of 2 blocks of 50 units (`sbibench.nn.ResidualNet`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn.functional import logsigmoid

from sbibench.methods.base import check_observation, other_rows
from sbibench.methods.mcmc_posterior import MCMCPosterior, MCMCSettings, Potential
from sbibench.methods.settings import check_settings, non_negative, positive, setting
from sbibench.methods.training import (
    ClassifierSettings,
    RoundsSettings,
    TrainingSettings,
    mcmc_rounds,
    prior_simulations,
    validation_noise,
)
from sbibench.nn import Classifier, train
from sbibench.task import Task

__all__ = ["BNRE", "NRE", "NRE_B", "NRE_C", "SNRE", "SNRE_B", "ratio_potential"]


def ratio_potential(classifier: Classifier) -> Potential:
    """The learned log-ratio d(u, x) of a frozen classifier: (K, D), (K, M) -> (K,) float64."""
    classifier = classifier.eval().requires_grad_(False)

    def potential(u: Tensor, x: Tensor) -> Tensor:
        return classifier(u.float(), x.float()).double()

    return potential


def _others(batch: int, count: int, classifier: nn.Module) -> Tensor:
    """(B, count) indices of other rows of the batch, distinct per row: from the global RNG in
    training, from a fixed generator in validation (the same pairs every epoch)."""
    return other_rows(batch, count, validation_noise(classifier))


def aalr(config: Ratio, classifier: Classifier, u: Tensor, x: Tensor) -> Tensor:
    """The AALR loss of a minibatch u (B, D), x (B, M); a scalar."""
    joint = classifier(u, x)
    marginal = classifier(u[_others(len(u), 1, classifier)[:, 0]], x)
    return -0.5 * (logsigmoid(joint).mean() + logsigmoid(-marginal).mean())


def balanced(config: BNRE, classifier: Classifier, u: Tensor, x: Tensor) -> Tensor:
    """The AALR loss plus the balancing penalty (BNRE, ``config.regularization``); a scalar."""
    joint = classifier(u, x)
    marginal = classifier(u[_others(len(u), 1, classifier)[:, 0]], x)
    bce = -0.5 * (logsigmoid(joint).mean() + logsigmoid(-marginal).mean())
    balance = torch.sigmoid(joint).mean() + torch.sigmoid(marginal).mean() - 1
    return bce + config.regularization * balance.square()


def contrastive(config: NRE_C, classifier: Classifier, u: Tensor, x: Tensor) -> Tensor:
    """The NRE-C loss with K = ``config.num_classes`` and odds ``config.gamma``; a scalar."""
    gamma = config.gamma
    batch, k = len(u), min(config.num_classes, len(u) - 1)
    others = _others(batch, k, classifier)
    joint_index = torch.cat([torch.arange(batch).unsqueeze(1), others[:, : k - 1]], dim=1)

    def logits(index: Tensor) -> Tensor:  # (B, k): d(u_index, x_i)
        return classifier(u[index].reshape(batch * k, -1), x.repeat_interleave(k, 0)).reshape(
            batch, k
        )

    log_gamma, log_k = math.log(gamma), math.log(k)
    pad = torch.full((batch, 1), log_k)
    marginal, joint = logits(others), logits(joint_index)
    log_q0 = log_k - torch.logsumexp(torch.cat([log_gamma + marginal, pad], 1), 1)
    log_q1 = log_gamma + joint[:, 0] - torch.logsumexp(torch.cat([log_gamma + joint, pad], 1), 1)
    p_joint = gamma / (1 + gamma)
    return -((1 - p_joint) * log_q0 + p_joint * log_q1).mean()


def sre(config: NRE_B | SNRE_B, classifier: Classifier, u: Tensor, x: Tensor) -> Tensor:
    """The NRE-B (SRE) loss, ``config.num_atoms`` contrasted parameters per row; a scalar."""
    batch = len(u)
    k = min(config.num_atoms, batch)  # a minibatch has at least 2 rows
    index = torch.cat([torch.arange(batch).unsqueeze(1), _others(batch, k - 1, classifier)], 1)
    logits = classifier(u[index].reshape(batch * k, -1), x.repeat_interleave(k, 0))
    logits = logits.reshape(batch, k)
    return -(logits[:, 0] - torch.logsumexp(logits, 1)).mean()


Ratio = Any  # ClassifierSettings, MCMCSettings and TrainingSettings, with a loss


def _train(
    config: Ratio, classifier: Classifier, u: Tensor, x: Tensor, settings: dict[str, Any]
) -> None:
    """Train ``classifier`` on (u, x) with ``config.loss`` and the training ``settings``
    (`TrainingSettings.fit_settings`)."""
    classifier.train().requires_grad_(True)
    train(
        classifier,
        lambda u_, x_: config.loss(classifier, u_, x_),
        (u, x),
        **settings,
        min_batch_size=2,  # a row's contrasts are other rows of its minibatch
    )


def _fit(config: Ratio, task: Task, num_simulations: int, seed: int) -> MCMCPosterior:
    """An amortized ratio method's fit: ``config.loss`` on the whole budget from the prior."""
    check_settings(config)
    with prior_simulations(task, num_simulations, seed) as run:
        u, x = run.u, run.x.float()
        classifier = config.build(task, u, x)
        _train(config, classifier, u, x, config.fit_settings(seed))
    return MCMCPosterior(ratio_potential(classifier), task, config, run.bookkeeping)


def _run(
    config: Ratio, task: Task, observation: Tensor, num_simulations: int, seed: int
) -> MCMCPosterior:
    """A sequential ratio method's run: ``config.loss`` on every round so far."""
    check_settings(config)
    observation = check_observation(observation, task, batch=False)
    classifiers: list[Classifier] = []  # built in round 1

    def learn(r: int, u: Tensor, x: Tensor) -> Potential:
        if r == 0:
            classifiers.append(config.build(task, u, x))
        settings = config.round_fit_settings(seed + r, num_simulations)
        _train(config, classifiers[0], u, x, settings)
        return ratio_potential(classifiers[0])

    return mcmc_rounds(task, observation, config, num_simulations, config.rounds, seed, learn)


@dataclasses.dataclass(frozen=True)
class NRE(ClassifierSettings, MCMCSettings, TrainingSettings):
    """Amortized ratio estimation with the AALR loss; see the module docstring."""

    name: ClassVar[str] = "nre"
    amortized: ClassVar[bool] = True
    loss = aalr
    fit = _fit


@dataclasses.dataclass(frozen=True)
class BNRE(ClassifierSettings, MCMCSettings, TrainingSettings):
    """Balanced NRE: the AALR loss plus the balancing penalty; see the module docstring."""

    name: ClassVar[str] = "bnre"
    amortized: ClassVar[bool] = True
    regularization: float = setting(100.0, non_negative)
    loss = balanced
    fit = _fit


@dataclasses.dataclass(frozen=True)
class NRE_C(ClassifierSettings, MCMCSettings, TrainingSettings):  # noqa: N801 - published name
    """Contrastive NRE with K = ``num_classes`` and odds ``gamma``; see the module docstring."""

    name: ClassVar[str] = "nre_c"
    amortized: ClassVar[bool] = True
    num_classes: int = 5
    gamma: float = setting(1.0, positive)
    loss = contrastive
    fit = _fit


@dataclasses.dataclass(frozen=True)
class NRE_B(ClassifierSettings, MCMCSettings, TrainingSettings):  # noqa: N801 - published name
    """NRE-B (SRE) with ``num_atoms`` contrasted parameters per row; see the module docstring."""

    name: ClassVar[str] = "nre_b"
    amortized: ClassVar[bool] = True
    num_atoms: int = 10
    loss = sre
    fit = _fit


@dataclasses.dataclass(frozen=True)
class SNRE(ClassifierSettings, MCMCSettings, RoundsSettings, TrainingSettings):
    """Sequential NRE (AALR loss) in ``rounds``; see the module docstring."""

    name: ClassVar[str] = "snre"
    loss = aalr
    run = _run


@dataclasses.dataclass(frozen=True)
class SNRE_B(ClassifierSettings, MCMCSettings, RoundsSettings, TrainingSettings):  # noqa: N801 - published name
    """Sequential NRE-B (sbi's SNRE_B, sbibm's SNRE) in ``rounds``; see the module docstring."""

    name: ClassVar[str] = "snre_b"
    num_atoms: int = 10
    loss = sre
    run = _run
