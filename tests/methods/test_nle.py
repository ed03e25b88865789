"""NLE and SNLE: accuracy at 1,000 simulations, the sequential contract, the learned likelihood."""

import pytest
import torch

from sbibench import get_task
from sbibench.methods import get_method
from sbibench.metrics import c2st


def _c2st(task, k, samples):
    """C2ST on 2,000 vs 2,000 samples."""
    return c2st(task.reference_samples(k)[:2000], samples[:2000], seed=0).value


# Each bar is the C2ST the test measures (its fixed seeds, fitted on one thread) plus 4
# standard deviations of the C2ST at 2,000 vs 2,000 samples, 0.011 (repeated exact-posterior
# draws against the same reference measure 0.007 at 0.50 and 0.008 at 0.59; 0.011 is the
# figure the NPE bars use).
# Measured: NLE 0.579 / 0.557 (normal_mean, observations 1 / 2) and 0.648 / 0.527
# (poisson_gamma: integer counts modelled by a continuous flow); SNLE 0.537.
NLE_BARS = {("normal_mean", 1): 0.623, ("normal_mean", 2): 0.601,
            ("poisson_gamma", 1): 0.692, ("poisson_gamma", 2): 0.571}  # fmt: skip
SNLE_BAR = 0.581


@pytest.mark.slow
@pytest.mark.parametrize("task_name", ["normal_mean", "poisson_gamma"])
def test_nle_accuracy_at_1000_simulations(task_name):
    """The raw data are modelled (10 Gaussian draws; 20 Poisson counts, dequantised)."""
    task = get_task(task_name)
    posterior = get_method("nle").fit(task, 1000, 0)
    for k in (1, 2):
        score = _c2st(task, k, posterior.sample(2000, task.observation(k), seed=0))
        assert score <= NLE_BARS[task_name, k]


@pytest.mark.slow
def test_snle_accuracy_at_1000_simulations():
    task = get_task("normal_mean")
    x_o = task.observation(1)
    posterior = get_method("snle").run(task, x_o, 1000, 0)
    assert _c2st(task, 1, posterior.sample(2000, x_o, seed=0)) <= SNLE_BAR
    assert posterior.num_simulations_used == 1000


def test_nle_on_summaries_learns_the_likelihood_shape():
    """With summary=True on normal_mean, q(mean | mu) should be N(mu, 1/10): the learned
    unnormalised log posterior differs from the exact one by a near-constant over the bulk of
    the posterior (sd of the difference < 0.5 nats over 200 reference draws)."""
    task = get_task("normal_mean")
    posterior = get_method("nle", summary=True, max_epochs=60).fit(task, 1000, 0)
    x = task.observation(1)
    theta = task.reference_samples(1)[:200]
    difference = posterior.unnormalized_log_prob(theta, x) - task.posterior(x).log_prob(theta)
    assert difference.std() < 0.5


@pytest.mark.parametrize("name", ["poisson_gamma", "normal_mean"])
def test_nle_dequantises_counts(name):
    """On poisson_gamma the flow is trained on x + v, v ~ U(0, 1) afresh per minibatch (the same
    v in every validation pass), and the potential reads q(x + 1/2 | u), the cell's centre; on
    normal_mean (continuous) it sees x itself."""
    from sbibench.methods.nle import _train, likelihood_potential
    from sbibench.nn import build_estimator

    task = get_task(name)
    discrete = task.discrete_data
    theta = task.sample_prior(100, torch.Generator().manual_seed(0))
    x = task.simulate(theta, torch.Generator().manual_seed(1)).float()
    u = theta.log().float() if discrete else theta.float()
    estimator = build_estimator("maf", task.dim_data, 1)
    log_prob, seen = estimator.log_prob, []

    def recording(data, u_):
        seen.append((estimator.training, data.detach().clone()))
        return log_prob(data, u_)

    estimator.log_prob = recording
    config = get_method("nle", max_epochs=2)
    _train(config, estimator, u, x, config.fit_settings(0), task)
    training = torch.cat([data for mode, data in seen if mode])
    validation = [data for mode, data in seen if not mode]
    assert len(validation) == 2 and torch.equal(validation[0], validation[1])
    if discrete:
        fraction = training - training.floor()
        assert ((fraction > 0) & (fraction < 1)).float().mean() > 0.99
        assert torch.isin(training.floor(), x).all()
    else:
        assert torch.isin(training, x).all()
    seen.clear()
    likelihood_potential(estimator, task, summary=False)(u[:3].double(), x[:3].double())
    assert torch.equal(seen[0][1], x[:3] + (0.5 if discrete else 0.0))


def test_snle_refuses_another_observation_and_nle_rejects_an_embedding():
    task = get_task("normal_mean")
    config = {"rounds": 2, "max_epochs": 3, "num_chains": 20, "warmup": 5}
    posterior = get_method("snle", **config).run(task, task.observation(1), 100, 0)
    with pytest.raises(ValueError, match="trained sequentially for another observation"):
        posterior.sample(5, task.observation(2))
    with pytest.raises(ValueError, match="embedding must be None for NLE"):
        get_method("nle", embedding="deepset").fit(task, 100, 0)
    with pytest.raises(ValueError, match="num_chains must be"):
        get_method("nle", num_chains=0).fit(task, 100, 0)


def test_batched_sampling_equals_one_observation_at_a_time():
    task = get_task("poisson_gamma")
    posterior = get_method("nle", max_epochs=5, num_chains=20, warmup=5).fit(task, 200, 0)
    x = torch.stack([task.observation(1), task.observation(2)])
    batch = posterior.sample(100, x, seed=4)
    assert batch.shape == (100, 2, 1)
    assert torch.equal(batch[:, 0], posterior.sample(100, task.observation(1), seed=4))
