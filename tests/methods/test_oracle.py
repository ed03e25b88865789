"""The exact-posterior oracle: the reference every score's noise floor is measured with."""

import torch

from sbibench import get_task
from sbibench.methods import get_method


def test_exact_oracle_samples_and_densities_are_the_tasks():
    task = get_task("normal_mean_variance")
    posterior = get_method("exact").fit(task, 1, seed=0)
    x = task.observation(4)
    samples = posterior.sample(20_000, x, seed=1)
    mean, cov = task.reference_moments(4)
    # 20,000 exact draws: sample means within 4 standard errors (sd / 141).
    assert ((samples.mean(0) - mean).abs() < 4 * cov.diagonal().sqrt() / 141).all()
    assert torch.allclose(
        posterior.log_prob(samples[:10], x), task.posterior(x).log_prob(samples[:10])
    )
    assert posterior.num_simulations_used == 0
    both = posterior.sample(50, torch.stack([task.observation(3), x]), seed=1)
    assert torch.equal(both[:, 1], posterior.sample(50, x, seed=1))
