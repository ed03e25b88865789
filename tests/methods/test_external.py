"""Methods from outside: a user's function, an sbibm-style algorithm, the sbi package."""

import pytest
import torch

from sbibench import get_task
from sbibench.methods import BudgetError, config_hash, get_method, is_amortized


def prior_samples_method(task, observation, num_simulations, seed):
    """A sequential 'method' in the documented shape that returns samples: rejection on the
    exact likelihood ranks, so that it uses the simulator and the budget for real."""
    theta = task.sample_prior(num_simulations)
    x = task.simulate(theta)
    distance = (task.summary(x) - task.summary(observation.unsqueeze(0))).norm(dim=-1)
    return theta[distance.argsort()[:50]]


def greedy_method(task, observation, num_simulations, seed):
    return task.simulate(task.sample_prior(num_simulations + 1))


class ExactPosterior:
    def __init__(self, task):
        self.task = task

    def sample(self, n, x, seed=None):
        return self.task.posterior(x).sample((n,))


def amortized_method(task, num_simulations, seed):
    task.simulate(task.sample_prior(num_simulations))
    return ExactPosterior(task)


def sbibm_rejection_abc(task, num_samples, num_simulations, num_observation=None, observation=None):
    """An algorithm written for sbibm, used unchanged."""
    assert (num_observation is None) != (observation is None)
    if observation is None:
        observation = task.get_observation(num_observation)
    prior = task.get_prior()
    simulator = task.get_simulator(max_calls=num_simulations)
    theta = prior(num_samples=num_simulations)
    x = simulator(theta)
    keep = (x - observation).norm(dim=-1).argsort()[:100]
    samples = theta[keep][torch.randint(100, (num_samples,))]
    return samples, num_simulations, None


def test_a_users_sequential_function_returning_samples():
    task = get_task("normal_mean")
    method = get_method("external", function=prior_samples_method)
    assert not is_amortized(method)
    x_o = task.observation(1)
    posterior = method.run(task, x_o, 300, seed=0)
    assert posterior.num_simulations_used == 300
    samples = posterior.sample(40, x_o, seed=1)
    assert samples.shape == (40, 1)
    assert torch.equal(samples, method.run(task, x_o, 300, seed=0).sample(40, x_o, seed=1))
    # Drawn near the exact posterior: the 50 closest of 300 have mean within 0.5 of it.
    assert abs(samples.mean() - task.reference_moments(1)[0]).item() < 0.5


def test_a_users_amortized_function():
    task = get_task("poisson_gamma")
    method = get_method("external", function=amortized_method, amortized=True)
    assert is_amortized(method)
    posterior = method.fit(task, 100, seed=0)
    assert posterior.num_simulations_used == 100
    assert posterior.sample(7, task.observation(2)).shape == (7, 1)
    assert posterior.timings.simulate > 0


def test_invalid_simulations_of_a_users_function_are_counted(make_task):
    """The budgeted simulator counts the NaN rows it hands back, whatever the function does
    with them (about 20% of 400 here, binomial sd 8)."""
    task = make_task("normal_mean", nan_fraction=0.2)
    method = get_method("external", function=amortized_method, amortized=True)
    posterior = method.fit(task, 400, seed=0)
    assert 40 < posterior.num_invalid_simulations < 120
    assert posterior.num_simulations_used == 400


def test_the_budget_binds_external_functions_too():
    task = get_task("normal_mean")
    method = get_method("external", function=greedy_method)
    with pytest.raises(BudgetError, match="101 simulations requested with 100 of 100 left"):
        method.run(task, task.observation(1), 100, seed=0)


def test_functions_are_hashed_by_import_path():
    one = get_method("external", function=prior_samples_method)
    two = get_method("external", function=prior_samples_method)
    assert config_hash("external", one) == config_hash("external", two)
    # an import path that does not resolve is refused when the method is configured
    with pytest.raises(ValueError, match="cannot import 'nowhere.module:prior_samples_method'"):
        get_method("external", function="nowhere.module:prior_samples_method")


@pytest.mark.parametrize("own_observation", [True, False])
def test_an_sbibm_algorithm_runs_unchanged(own_observation):
    task = get_task("linear_gaussian")
    x_o = task.observation(3) if own_observation else task.observation(3) + 0.01
    method = get_method("sbibm", algorithm=sbibm_rejection_abc, num_samples=500)
    posterior = method.run(task, x_o, 2000, seed=0)
    assert posterior.num_simulations_used == 2000
    samples = posterior.sample(500, x_o, seed=0)
    assert samples.shape == (500, 10) and samples.dtype == torch.float64
    # Rejection ABC in 10-D is crude, but its mean moves from the prior's (0) towards the
    # exact posterior's: |mean - exact mean| / |exact mean| measures 0.479 (own observation)
    # and 0.454 (shifted), with sd 0.045 over the run's seed (0.49 +- 0.045 over seeds 0-9);
    # the bar is the larger plus 4 sd. Prior draws score 0.98 +- 0.026.
    exact_mean, _ = task.reference_moments(3)
    assert (samples.mean(0) - exact_mean).norm() / exact_mean.norm() < 0.66


def test_the_sbi_packages_npe_through_the_adapter():
    pytest.importorskip("sbi", reason="the sbi adapter needs the optional sbi package")
    task = get_task("normal_mean")
    method = get_method("sbi", inference="NPE", training={"max_num_epochs": 30})
    posterior = method.fit(task, 300, seed=0)
    assert posterior.num_simulations_used == 300
    x = torch.stack([task.observation(1), task.observation(2)])
    batch = posterior.sample(200, x, seed=4)
    assert batch.shape == (200, 2, 1)
    # Each observation's draws are exactly those it gets on its own.
    assert torch.equal(batch[:, 1], posterior.sample(200, task.observation(2), seed=4))
    assert posterior.log_prob(batch[:5, 0], task.observation(1)).shape == (5,)


@pytest.mark.parametrize("task_name", ["two_moons", "gaussian_mixture"])
def test_the_sbi_adapter_takes_a_box_prior(task_name):
    """A box prior's bounds reach sbi in float32: sbi builds its transform from the support
    and checks it on float32 draws, which float64 bounds turned into a dtype error."""
    pytest.importorskip("sbi", reason="the sbi adapter needs the optional sbi package")
    task = get_task(task_name)
    method = get_method("sbi", inference="NPE", training={"max_num_epochs": 5})
    posterior = method.fit(task, 300, seed=0)
    samples = posterior.sample(100, task.observation(1), seed=0)
    low, high = (
        task.prior.support.base_constraint.lower_bound,
        task.prior.support.base_constraint.upper_bound,
    )
    assert samples.dtype == torch.float64 and samples.shape == (100, 2)
    assert ((samples >= low) & (samples <= high)).all()


def test_the_sbi_adapter_offers_no_normalised_density_for_nle():
    """sbi's NLE and NRE posteriors are sampled by MCMC and their log_prob is unnormalised, so
    the adapter offers only an unnormalised density: no NLL is scored from it."""
    pytest.importorskip("sbi", reason="the sbi adapter needs the optional sbi package")
    from sbibench.methods.base import HasLogProb, HasUnnormalizedLogProb

    task = get_task("normal_mean")
    posterior = get_method("sbi", inference="NLE", training={"max_num_epochs": 3}).fit(task, 300, 0)
    assert not isinstance(posterior, HasLogProb)
    assert isinstance(posterior, HasUnnormalizedLogProb)
    theta = task.sample_prior(5, torch.Generator().manual_seed(0))
    assert posterior.unnormalized_log_prob(theta, task.observation(1)).shape == (5,)
    npe = get_method("sbi", inference="NPE", training={"max_num_epochs": 3}).fit(task, 300, 0)
    assert isinstance(npe, HasLogProb)
