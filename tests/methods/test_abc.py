"""ABC methods: accuracy against the exact posterior, and that ABC is not amortized."""

import copy

import pytest
import torch

from sbibench import get_task
from sbibench.methods import get_method
from sbibench.methods.posteriors import cv_bandwidth
from sbibench.metrics import c2st, mmd


@pytest.mark.parametrize("task_name", ["normal_mean", "poisson_gamma"])
def test_smc_abc_accuracy_at_1000_simulations(task_name):
    """The issue's bar: C2ST <= 0.75. With 2,000 vs 2,000 samples the C2ST estimate has a
    standard deviation near 0.01, so a method at 0.75 or worse cannot pass by chance."""
    task = get_task(task_name)
    x_o = task.observation(1)
    posterior = get_method("smc_abc").run(task, x_o, 1000, seed=0)
    samples = posterior.sample(2000, x_o, seed=0)
    assert c2st(task.reference_samples(1)[:2000], samples, seed=0).value <= 0.75


def test_regression_adjustment_moves_towards_the_posterior():
    """On normal_mean the posterior mean is linear in the summary, so the Beaumont
    adjustment removes the tolerance's spread: the adjusted spread is closer to exact."""
    task = get_task("normal_mean")
    x_o = task.observation(2)
    _, cov = task.reference_moments(2)
    plain = get_method("rej_abc", kde=False).run(task, x_o, 2000, seed=0)
    adjusted = get_method("rej_abc", kde=False, regression_adjustment=True).run(
        task, x_o, 2000, seed=0
    )
    exact_sd = cov.sqrt().item()
    plain_error = abs(plain.sample(5000, x_o, seed=0).std().item() - exact_sd)
    adjusted_error = abs(adjusted.sample(5000, x_o, seed=0).std().item() - exact_sd)
    assert adjusted_error < plain_error


def test_abc_posterior_refuses_another_observation():
    task = get_task("normal_mean")
    posterior = get_method("rej_abc").run(task, task.observation(1), 200, seed=0)
    with pytest.raises(ValueError, match="run for another observation"):
        posterior.sample(10, task.observation(2))
    with pytest.raises(ValueError, match=r"x must have shape \(10,\)"):
        posterior.sample(10, torch.zeros(3, 10))


def test_cv_bandwidth_is_near_the_optimal_bandwidth_of_a_gaussian():
    """For n draws of N(0, 1) the bandwidth minimising the mean integrated squared error is
    (4 / 3n)^(1/5) = 0.266 at n = 1,000 (Silverman 1986, eq. 3.28); likelihood cross-validation
    aims at the Kullback-Leibler optimum, close to it for a Gaussian. Over 5 seeds the chosen
    bandwidths measured 0.271-0.282; the band 0.17-0.40 fails a rule off by 50%."""
    optimum = (4 / 3000) ** 0.2
    for seed in range(5):
        u = torch.randn(1000, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        h = cv_bandwidth(u, torch.full((1000,), 1e-3, dtype=torch.float64))
        assert 0.65 * optimum < h < 1.5 * optimum


def test_cv_bandwidth_resolves_two_separated_modes():
    """Two tight clusters (sd 0.05) 2 apart: Scott's factor on the pooled covariance would
    give about 1.0 x 100^(-1/5) = 0.40, smearing the gap; cross-validation picks a bandwidth
    of the clusters' own scale (measured 0.043). All-equal particles get no smoothing."""
    g = torch.Generator().manual_seed(0)
    u = torch.cat(
        [torch.randn(50, 1, generator=g) * 0.05 - 1, torch.randn(50, 1, generator=g) * 0.05 + 1]
    )
    u = u.double()
    h = cv_bandwidth(u, torch.full((100,), 0.01, dtype=torch.float64))
    assert h < 0.1
    assert cv_bandwidth(torch.ones(5, 2, dtype=torch.float64), torch.full((5,), 0.2)) == 0.0


def test_smc_abc_population_follows_sbibm_by_default():
    """sbibm 1.1.0 (algorithms/sbi/smcabc.py): 100 particles up to 10^4 simulations, 1,000 above."""
    method = get_method("smc_abc")
    assert [method.population(n) for n in (1000, 10_000, 10_001)] == [100, 100, 1000]
    assert get_method("smc_abc", population_size=20).population(100_000) == 20


@pytest.mark.slow
def test_rejection_abc_keeps_two_moons_crescents_apart():
    """REJ-ABC at 10^4 simulations on two_moons, observation 1: the cross-validated KDE keeps
    the draws on the crescents. Judged by MMD (median-heuristic kernel, 2,000 vs 2,000 draws),
    which trains nothing: C2ST at this size moved with its classifier's seed from 0.62 to 0.81
    on the same draws (0.580 with seed 0 on another CPU), too much to carry a bar. Measured:
    MMD^2 0.00058 for the cross-validated KDE (bandwidth 0.11), 0.00056 for the 100 accepted
    particles resampled without a kernel, 0.0045 with Scott's factor (0.82, smearing the gap);
    reference against reference -0.0001, the size of the estimate's noise. Bars: below a quarter
    of Scott's, and within 3 x 1e-4 of the kernel-free resample."""
    task = get_task("two_moons")
    x_o = task.observation(1)
    reference = task.reference_samples(1)[:2000]

    def distance(posterior) -> float:
        return mmd(reference, posterior.sample(2000, x_o, seed=0)).value

    cross_validated = get_method("rej_abc").run(task, x_o, 10_000, seed=0)
    kernel_free = get_method("rej_abc", kde=False).run(task, x_o, 10_000, seed=0)
    scott = copy.copy(cross_validated)  # the same particles, Scott's bandwidth (d = 2)
    particles = scott.particles.double()
    scott.bandwidth = particles.std(0).mean().item() * len(particles) ** (-1 / 6)
    kde = distance(cross_validated)
    assert kde < distance(scott) / 4
    assert kde < distance(kernel_free) + 3e-4
