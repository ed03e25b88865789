"""NRE, BNRE, NRE-C, NRE-B and SNRE: accuracy at 1,000 simulations; BNRE's conservative coverage."""

import numpy as np
import pytest
import torch

from sbibench import get_task
from sbibench.methods import get_method
from sbibench.metrics import c2st, expected_coverage


def _c2st(task, k, samples):
    """C2ST on 2,000 vs 2,000 samples."""
    return c2st(task.reference_samples(k)[:2000], samples[:2000], seed=0).value


# Each bar is the C2ST the test measures (its fixed seeds, fitted on one thread) plus 4
# standard deviations of the C2ST at 2,000 vs 2,000 samples, 0.011 (repeated exact-posterior
# draws against the same reference measure 0.007 at 0.50 and 0.008 at 0.59; 0.011 is the
# figure the NPE bars use).
# Measured (observation 1): NRE 0.529 / 0.579 (normal_mean / poisson_gamma), NRE-C 0.563 /
# 0.545, NRE-B 0.515 / 0.575, SNRE 0.566 (normal_mean).
RATIO_BARS = {("nre", "normal_mean"): 0.573, ("nre", "poisson_gamma"): 0.623,
              ("nre_c", "normal_mean"): 0.607, ("nre_c", "poisson_gamma"): 0.589,
              ("nre_b", "normal_mean"): 0.559, ("nre_b", "poisson_gamma"): 0.619}  # fmt: skip
SNRE_BAR = 0.61


@pytest.mark.slow
@pytest.mark.parametrize("method", ["nre", "nre_c", "nre_b"])
@pytest.mark.parametrize("task_name", ["normal_mean", "poisson_gamma"])
def test_ratio_accuracy_at_1000_simulations(task_name, method):
    task = get_task(task_name)
    posterior = get_method(method).fit(task, 1000, 0)
    score = _c2st(task, 1, posterior.sample(2000, task.observation(1), seed=0))
    assert score <= RATIO_BARS[method, task_name]


@pytest.mark.slow
def test_snre_accuracy_at_1000_simulations():
    task = get_task("normal_mean")
    x_o = task.observation(1)
    posterior = get_method("snre").run(task, x_o, 1000, 0)
    assert _c2st(task, 1, posterior.sample(2000, x_o, seed=0)) <= SNRE_BAR


def coverage_curve(method, seed=0, datasets=300, draws=100):
    """Expected HPD coverage on normal_mean at 1,000 simulations: `datasets` (theta, x) from
    the joint, `draws` MCMC draws each (all observations' chains in one batch), ranks by the
    unnormalised log posterior (HPD ranks need densities only up to a constant per x)."""
    task = get_task("normal_mean")
    posterior = get_method(method, num_chains=20, warmup=30).fit(task, 1000, seed)
    g = torch.Generator().manual_seed(100 + seed)
    theta = task.sample_prior(datasets, g)
    x = task.simulate(theta, g)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        samples = posterior.sample(draws, x).transpose(0, 1)  # (N, L, D)

    def log_prob(values):
        return torch.stack(
            [posterior.unnormalized_log_prob(v, row) for v, row in zip(values, x, strict=True)]
        )

    return expected_coverage(theta, samples, log_prob)


@pytest.mark.slow
def test_bnre_is_more_conservative_than_nre():
    """Balancing pushes the posterior wider: over the levels 0.05..0.95, BNRE's coverage minus
    the level is larger than NRE's on average, and BNRE is never clearly overconfident (its
    coverage stays above level - 0.06; the curve's pointwise sd at 300 datasets is <= 0.03).
    Measured (seed 0): NRE's coverage - level ranges over [-0.053, +0.03], mean -0.007;
    BNRE's over [0, +0.57], mean +0.34 (conservative at every level)."""
    levels = np.arange(5, 96) / 100
    nre = coverage_curve("nre")
    bnre = coverage_curve("bnre")
    gap_nre = np.interp(levels, nre.levels, nre.coverage) - levels
    gap_bnre = np.interp(levels, bnre.levels, bnre.coverage) - levels
    assert gap_bnre.mean() > gap_nre.mean()
    assert gap_bnre.min() > -0.06


def test_the_contrastive_loss_is_lowest_for_the_true_ratio():
    """NRE-C's loss of a classifier that outputs the exact log-ratio is below that of a constant
    classifier (which carries no information about the pairing)."""
    task = get_task("normal_mean")
    method = get_method("nre_c")
    g = torch.Generator().manual_seed(0)
    theta = task.sample_prior(2000, g)
    x = task.simulate(theta, g)

    def exact(u, x_):
        return (task.log_likelihood(u.double(), x_.double()) - _log_evidence(task, x_)).float()

    def constant(u, x_):
        return torch.zeros(len(u))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        informed = method.loss(exact, theta.float(), x.float())
        torch.manual_seed(0)
        blind = method.loss(constant, theta.float(), x.float())
    assert informed < blind - 0.1


def test_nre_b_loss_is_the_softmax_over_atoms():
    """NRE-B's loss, written out row by row: the true pair's logit against the log-sum-exp of
    its row's atoms (the row itself and the K - 1 other rows the loss drew)."""
    method = get_method("nre_b", num_atoms=4)
    theta, x = torch.randn(6, 2), torch.randn(6, 3)
    seen = []

    def logits(u, x_):
        seen.append(u.detach().clone())
        return (u * x_[:, :2]).sum(-1) + x_[:, 2]

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        loss = method.loss(logits, theta, x)
    atoms = seen[0].reshape(6, 4, 2)
    assert torch.equal(atoms[:, 0], theta)  # the true parameter comes first in each row
    rows = torch.stack([logits(atoms[i], x[i].expand(4, 3)) for i in range(6)])
    torch.testing.assert_close(loss, -(rows[:, 0] - rows.logsumexp(1)).mean())
    assert not torch.isclose(loss, method.loss(lambda u, x_: torch.zeros(len(u)), theta, x))


def _log_evidence(task, x):
    """log p(x) of normal_mean: x ~ N(0, I + 9 * 11^T)."""
    cov = torch.eye(10, dtype=torch.float64) + 9.0
    return torch.distributions.MultivariateNormal(
        torch.zeros(10, dtype=torch.float64), cov
    ).log_prob(x.double())


@pytest.mark.parametrize("num_simulations", [1112, 12])
@pytest.mark.parametrize("method", ["nre", "bnre", "nre_c", "snre", "nre_b", "snre_b"])
def test_contrastive_training_survives_a_one_row_minibatch(method, num_simulations):
    """1,112 simulations leave 1,001 training rows, a last minibatch of one row at batches of
    200; 12 leave one validation row. A row's marginal pairs come from other rows of its
    minibatch, so such a row joins the minibatch before it (these budgets used to crash)."""
    task = get_task("normal_mean")
    config = {"max_epochs": 2, "num_chains": 10, "warmup": 5, "init_candidates": 100}
    if method.startswith("snre"):
        config["rounds"] = 2
    fitted = get_method(method, **config)
    x_o = task.observation(1)
    if method.startswith("snre"):
        posterior = fitted.run(task, x_o, num_simulations, 0)
    else:
        posterior = fitted.fit(task, num_simulations, 0)
    assert posterior.num_simulations_used == num_simulations
    assert torch.isfinite(posterior.sample(20, x_o, seed=0)).all()
