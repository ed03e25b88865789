"""Exact-likelihood oracles: MCMC on the exact posterior, and amortized VI with a Gaussian encoder."""

import pytest
import torch

from sbibench import get_task, list_tasks
from sbibench.methods import get_method
from sbibench.metrics import c2st


def test_oracle_mcmc_batches_are_each_observations_own_draws():
    task = get_task("normal_mean_variance")
    posterior = get_method("oracle_mcmc", num_chains=50, warmup=20).fit(task, 0, 0)
    x = torch.stack([task.observation(1), task.observation(2)])
    batch = posterior.sample(200, x, seed=3)
    assert batch.shape == (200, 2, 2) and posterior.num_simulations_used == 0
    assert torch.equal(batch[:, 1], posterior.sample(200, task.observation(2), seed=3))
    assert task.prior.support.check(batch).all()
    # Without a seed all chains of both observations advance together, each on its target:
    # posterior means 1,000 draws apart by far more than their standard error.
    unseeded = posterior.sample(1000, x)
    for i, k in enumerate((1, 2)):
        mean, cov = task.reference_moments(k)
        assert ((unseeded[:, i].mean(0) - mean).abs() < 5 * cov.diagonal().sqrt() / 10).all()
    assert posterior.last_run.rhat.shape == (2, 2)


def test_unnormalized_log_prob_is_the_exact_one_up_to_a_constant():
    task = get_task("poisson_gamma")
    posterior = get_method("oracle_mcmc").fit(task, 0, 0)
    x = task.observation(1)
    theta = task.reference_samples(1)[:50]
    difference = posterior.unnormalized_log_prob(theta, x) - task.posterior(x).log_prob(theta)
    assert difference.std() < 1e-10
    # one batched call for many datasets: row i of theta paired with row i of x
    rows = torch.stack([task.observation(1 + i % 3) for i in range(50)])
    paired = posterior.unnormalized_log_prob(theta, rows)
    alone = [posterior.unnormalized_log_prob(theta[i : i + 1], rows[i]) for i in range(50)]
    assert torch.allclose(paired, torch.cat(alone), rtol=0, atol=1e-12)


# The dimension ladder's high rungs share linear_gaussian's family and prior, checked at D = 10
# (and D = 2, 5); their slice sampling grows with D (NLE's 2,000 draws: 176 s at D = 50, past
# 10 minutes at D = 100, in results/ladder), and a per-coordinate test's false alarms with it.
_HIGH_RUNGS = {"linear_gaussian_d20", "linear_gaussian_d50", "linear_gaussian_d100"}


@pytest.mark.slow
@pytest.mark.parametrize("task_name", sorted(set(list_tasks()) - _HIGH_RUNGS))
def test_oracle_mcmc_matches_the_reference_on_every_task(task_name):
    """Default slice sampling on the exact posterior, 2,000 vs 2,000 samples: C2ST <= 0.55, five
    standard deviations (0.011) above chance; what NLE and NRE would reach with exact estimators."""
    task = get_task(task_name)
    posterior = get_method("oracle_mcmc").fit(task, 0, 0)
    for k in (1, 2):
        samples = posterior.sample(2000, task.observation(k), seed=0)
        assert c2st(task.reference_samples(k)[:2000], samples, seed=0).value <= 0.55


def test_amortized_vi_density_integrates_to_one_with_its_jacobian():
    """poisson_gamma's parameter is positive: the encoder's Gaussian lives on log(theta), and the
    density in theta integrates to 1 only with the Jacobian (trapezoid on 20,001 points)."""
    task = get_task("poisson_gamma")
    posterior = get_method("amortized_vi", max_epochs=20).fit(task, 500, 0)
    x = task.observation(1)
    grid = torch.linspace(1e-4, 40, 20_001, dtype=torch.float64)
    density = posterior.log_prob(grid.unsqueeze(1), x).exp()
    assert abs(torch.trapezoid(density, grid).item() - 1) < 1e-3


@pytest.mark.slow
def test_amortized_vi_recovers_the_linear_vae_posterior_mean():
    """On linear_gaussian_vae the exact posterior is Gaussian with a mean affine in x: it lies in
    the encoder's family. After 10,000 simulations the encoder's mean, estimated from 20,000
    draws (standard error 0.007 sd), is within 0.05 posterior sds of the exact one on all ten
    observations (measured: at most 0.04)."""
    task = get_task("linear_gaussian_vae")
    posterior = get_method("amortized_vi").fit(task, 10_000, 0)
    for k in range(1, 11):
        exact = task.posterior(task.observation(k))
        sd = exact.covariance_matrix.diagonal().sqrt()
        draws = posterior.sample(20_000, task.observation(k), seed=k)
        assert ((draws.mean(0) - exact.mean) / sd).abs().max() < 0.05
        assert ((draws.std(0) / sd) - 1).abs().max() < 0.05


def _calibration_draws(task_name, datasets, draws, **options):
    """Exact-likelihood MCMC draws for prior-predictive datasets in one batched run, standardised
    by each dataset's exact posterior mean and sd: (draws, datasets, D), with the true thetas."""
    task = get_task(task_name)
    posterior = get_method("oracle_mcmc").fit(task, 0, 0)
    generator = torch.Generator().manual_seed(7)
    theta = task.sample_prior(datasets, generator)
    x = task.simulate(theta, generator)
    valid = torch.isfinite(x).all(-1)  # a failing task's failed datasets
    theta, x = theta[valid], x[valid]
    samples = posterior.sample_batch(draws, x, seed=11, **options)
    assert samples.shape == (draws, len(x), task.dim_parameters)
    assert task.prior.support.check(samples).all()
    exact = task.posterior(x)
    return (samples - exact.mean) / exact.variance.sqrt(), theta, samples


def test_batched_calibration_draws_are_seeded_and_calibrated():
    """oracle_mcmc on normal_mean, 300 datasets x 20 draws: with the exact likelihood the SBC
    ranks are uniform (chi-square p above 0.001, a 1-in-1,000 false alarm at this fixed seed) and
    the standardised draws have variance 1 within 4 standard errors (6,000 near-independent draws:
    se sqrt(2 / 6000) = 0.018). Stopped after warm-up-free SIR starts from 2 prior draws each,
    the same run is far too wide and SBC rejects it: the test can fail."""
    from sbibench.metrics import chi2_uniformity, sbc_ranks

    z, theta, samples = _calibration_draws("normal_mean", 300, 20)
    _, _, again = _calibration_draws("normal_mean", 300, 20)
    assert torch.equal(samples, again)
    assert abs(z.var().item() - 1) < 4 * 0.018
    assert chi2_uniformity(sbc_ranks(theta, samples.transpose(0, 1)), 20).p_value.min() > 1e-3

    z, theta, samples = _calibration_draws(
        "normal_mean", 300, 20, warmup=0, thin=1, draws_per_chain=1, candidates=2
    )
    assert z.var().item() > 1.5
    assert chi2_uniformity(sbc_ranks(theta, samples.transpose(0, 1)), 20).p_value.min() < 1e-6


# Short chains from 20 prior draws each do not spread over two_moons' two crescents (the two
# draws of a chain correlate at 0.86) nor into gaussian_mixture's narrow component (SBC p 3e-6):
# with the exact likelihood, 10,000 such draws score C2ST 0.52-0.57 against the reference
# there. A known limit of `MCMCPosterior.sample_batch`, stated in its module; not tested here.
_SHORT_CHAINS_FAIL = {"two_moons", "gaussian_mixture"}


@pytest.mark.slow
@pytest.mark.parametrize("task_name", sorted(set(list_tasks()) - _SHORT_CHAINS_FAIL - _HIGH_RUNGS))
def test_batched_calibration_draws_match_the_exact_posterior_on_every_task(task_name):
    """500 datasets x 100 draws, as a suite's SBC draws them. With the exact likelihood: SBC
    chi-square p above 1e-3 in every coordinate (at most D in 1,000 false alarms at this fixed
    seed); pooled standardised variance within 0.03 of 1 (50,000 draws, se 0.006 if
    independent; the six warm-up sweeps leave a measured bias under 0.6%); and the correlation
    between the two draws a chain keeps, 3 sweeps apart, below 0.05 (25,000 pairs, se 0.006;
    measured below 0.02), so the draws per dataset are effectively independent."""
    from sbibench.metrics import chi2_uniformity, sbc_ranks

    z, theta, samples = _calibration_draws(task_name, 500, 100)
    assert chi2_uniformity(sbc_ranks(theta, samples.transpose(0, 1)), 100).p_value.min() > 1e-3
    assert (z.var(dim=(0, 1)) - 1).abs().max() < 0.03
    chains = z.shape[0] // 2  # draw j and j + C come from chain j of the same dataset
    first, second = z[:chains].flatten(0, 1), z[chains : 2 * chains].flatten(0, 1)
    lag = ((first - first.mean(0)) * (second - second.mean(0))).mean(0) / (
        first.std(0) * second.std(0)
    )
    assert lag.abs().max() < 0.05
