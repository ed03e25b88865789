"""Every registered method: shapes, support, budget, determinism, invalid simulations."""

import dataclasses

import pytest
import torch

from sbibench import get_task
from sbibench.methods import (
    BudgetError,
    HasLogProb,
    HasSampleBatch,
    HasUnnormalizedLogProb,
    Posterior,
    config_hash,
    get_method,
    is_amortized,
    list_methods,
)


def _nearest(task, observation, num_simulations, seed):
    """A user's sequential method: the 20 prior draws whose summaries are nearest."""
    theta, x = _valid(task, num_simulations)
    distance = (task.summary(x) - task.summary(observation.unsqueeze(0))).norm(dim=-1)
    return theta[distance.argsort()[:20]]


def _valid(task, n):
    theta = task.sample_prior(n)
    x = task.simulate(theta)
    valid = torch.isfinite(x).all(-1)
    if not valid.any():
        raise BudgetError(f"all {n} simulations of task {task.name!r} were invalid")
    return theta[valid], x[valid]


def _sbibm_nearest(task, num_samples, num_simulations, num_observation=None, observation=None):
    """The same written as an sbibm algorithm."""
    observation = task.get_observation(num_observation) if observation is None else observation
    theta = task.get_prior()(num_samples=num_simulations)
    x = task.get_simulator()(theta)
    valid = torch.isfinite(x).all(-1)
    if not valid.any():
        raise BudgetError(f"all {num_simulations} simulations were invalid")
    keep = (x[valid] - observation).norm(dim=-1).argsort()[:20]
    return theta[valid][keep][torch.randint(len(keep), (num_samples,))]


# A small configuration per method, so that the contract tests stay fast.
_FAST_MCMC = {"num_chains": 50, "warmup": 10, "init_candidates": 1000}
FAST = {
    "exact": {},
    "rej_abc": {"num_accepted": 20},
    "smc_abc": {"population_size": 20},
    "npe": {"max_epochs": 5},
    "snpe_a": {"rounds": 2, "max_epochs": 5},
    "snpe_b": {"rounds": 2, "max_epochs": 5},
    "snpe_c": {"rounds": 2, "max_epochs": 5},
    "nle": {"max_epochs": 5, **_FAST_MCMC},
    "snle": {"rounds": 2, "max_epochs": 5, **_FAST_MCMC},
    "nre": {"max_epochs": 5, **_FAST_MCMC},
    "bnre": {"max_epochs": 5, **_FAST_MCMC},
    "nre_c": {"max_epochs": 5, **_FAST_MCMC},
    "snre": {"rounds": 2, "max_epochs": 5, **_FAST_MCMC},
    "nre_b": {"max_epochs": 5, "classifier": "resnet", **_FAST_MCMC},
    "snre_b": {"rounds": 2, "max_epochs": 5, **_FAST_MCMC},
    "fmpe": {"max_epochs": 5, "ode_steps": 10},
    "npse": {"max_epochs": 5, "ode_steps": 10},
    "oracle_mcmc": _FAST_MCMC,
    "amortized_vi": {"max_epochs": 5},
    "external": {"function": _nearest},
    "sbibm": {"algorithm": _sbibm_nearest, "num_samples": 1000},
    "sbi": {"inference": "NPE", "training": {"max_num_epochs": 20}},
}
# Oracles use the exact posterior and no simulation; the contract below is for the others.
ORACLES = ["exact", "oracle_mcmc"]
SIMULATING = sorted(set(FAST) - set(ORACLES))


def test_every_method_has_a_fast_configuration():
    assert sorted(FAST) == list_methods()


def _posterior(method, task, budget, seed, observation):
    if method.name == "sbi":
        pytest.importorskip("sbi", reason="the sbi adapter needs the optional sbi package")
    if is_amortized(method):
        return method.fit(task, budget, seed)
    return method.run(task, observation, budget, seed)


@pytest.mark.parametrize("name", SIMULATING)
@pytest.mark.parametrize(
    "task_name",
    ["poisson_gamma", "normal_mean_variance", "beta_binomial", "dirichlet_multinomial"],
)
def test_contract(name, task_name, make_task):
    """Positive (poisson_gamma), half-bounded (normal_mean_variance), bounded (beta_binomial)
    and simplex-valued (dirichlet_multinomial: 4 coordinates, 3 unconstrained) parameters."""
    task = make_task(task_name)
    method = get_method(name, **FAST[name])
    x_o = task.observation(1)
    posterior = _posterior(method, task, 300, 7, x_o)
    samples = posterior.sample(500, x_o, seed=1)
    assert samples.shape == (500, task.dim_parameters) and samples.dtype == torch.float64
    assert torch.isfinite(samples).all()
    assert task.prior.support.check(samples).all()
    if task_name == "dirichlet_multinomial":  # on the simplex, to float64 rounding
        assert (samples >= 0).all()
        # sbibm's convention: its prior draws, which `_sbibm_nearest` returns, are float32
        tolerance = 1e-6 if name == "sbibm" else 1e-9
        assert ((samples.sum(-1) - 1).abs() < tolerance).all()
    assert task.model.calls <= 300
    assert posterior.num_simulations_used == task.model.calls
    assert posterior.num_invalid_simulations == 0
    assert set(dataclasses.asdict(posterior.timings)) == {"simulate", "train", "propose", "sample"}
    assert posterior.timings.simulate > 0
    # The protocol and its optional members say what the posterior offers.
    assert isinstance(posterior, Posterior)
    for protocol, member in (
        (HasLogProb, "log_prob"),
        (HasUnnormalizedLogProb, "unnormalized_log_prob"),
        (HasSampleBatch, "sample_batch"),
    ):
        assert isinstance(posterior, protocol) == callable(getattr(posterior, member, None))
    # Same seed, same numbers; another seed, others.
    again = _posterior(method, make_task(task_name), 300, 7, x_o).sample(500, x_o, seed=1)
    assert torch.equal(samples, again)
    other = _posterior(method, make_task(task_name), 300, 8, x_o).sample(500, x_o, seed=1)
    assert not torch.equal(samples, other)


@pytest.mark.parametrize("name", ORACLES)
@pytest.mark.parametrize("task_name", ["beta_binomial", "dirichlet_multinomial"])
def test_oracles_sample_inside_bounded_and_simplex_supports(name, task_name, make_task):
    task = make_task(task_name)
    x_o = task.observation(1)
    samples = _posterior(get_method(name, **FAST[name]), task, 300, 7, x_o).sample(500, x_o, seed=1)
    assert samples.shape == (500, task.dim_parameters) and samples.dtype == torch.float64
    assert task.prior.support.check(samples).all()
    if task_name == "dirichlet_multinomial":
        assert (samples >= 0).all() and ((samples.sum(-1) - 1).abs() < 1e-9).all()
    assert task.model.calls == 0


@pytest.mark.parametrize("name", SIMULATING)
def test_nan_simulations_are_dropped_and_counted(name, make_task):
    """Counted whoever runs the simulator: sbibench's methods drop them, and a user's function
    (`external`, `sbibm`) sees them come back from its budgeted simulator and drops them too."""
    task = make_task("normal_mean", nan_fraction=0.2)
    x_o = task.observation(1)
    posterior = _posterior(get_method(name, **FAST[name]), task, 400, 3, x_o)
    # About 20% of 400 (binomial sd 8): between 40 and 120 is far outside chance.
    assert 40 < posterior.num_invalid_simulations < 120
    assert posterior.num_simulations_used <= 400
    assert torch.isfinite(posterior.sample(100, x_o, seed=0)).all()


@pytest.mark.parametrize("name", SIMULATING)
def test_a_raising_simulator_ends_as_a_nan_one(name):
    """normal_mean_failing fails the same rows in mode "raise" as in mode "nan" under one seed
    (`sbibench.failures`), and every budget keeps the rows of a raising batch that succeeded
    (a user's function gets them back as NaN rows): the two runs are identical. Of the n
    simulations used, Binomial(n, 0.2) fail: held to 4 sd."""
    from sbibench.failures import Failures

    failing = get_task("normal_mean_failing")
    x_o = failing.observation(1)
    runs = []
    for mode in ("nan", "raise"):
        task = dataclasses.replace(failing, failures=Failures(fraction=0.2, mode=mode))
        runs.append(_posterior(get_method(name, **FAST[name]), task, 300, 3, x_o))
    nan, raised = runs
    assert torch.equal(nan.sample(100, x_o, seed=0), raised.sample(100, x_o, seed=0))
    assert raised.num_simulations_used == nan.num_simulations_used <= 300
    assert raised.num_invalid_simulations == nan.num_invalid_simulations
    used = raised.num_simulations_used
    assert abs(raised.num_invalid_simulations - 0.2 * used) < 4 * (0.16 * used) ** 0.5


@pytest.mark.parametrize("name", SIMULATING)
def test_a_budget_with_no_valid_simulation_is_an_error(name, make_task):
    task = make_task("normal_mean", nan_fraction=1.0)
    with pytest.raises(BudgetError, match=r"all \d+ simulations .*were invalid"):
        _posterior(get_method(name, **FAST[name]), task, 50, 0, task.observation(1))


def test_unknown_names_and_keys_are_listed():
    with pytest.raises(ValueError, match="unknown method 'abc'; known: .*rej_abc"):
        get_method("abc")
    with pytest.raises(ValueError, match="unknown config key.* 'rej_abc'; its fields: kde"):
        get_method("rej_abc", accepted=3)


def test_config_hash_tracks_the_configuration():
    a = config_hash("rej_abc", get_method("rej_abc"))
    assert a == config_hash("rej_abc", get_method("rej_abc"))
    assert a != config_hash("rej_abc", get_method("rej_abc", num_accepted=50))
    assert a != config_hash("smc_abc", get_method("rej_abc"))


def test_budget_is_checked_before_simulating(make_task):
    from sbibench.methods.base import SimulationBudget, Timings

    task = make_task("normal_mean")
    budget = SimulationBudget(task, 10, torch.Generator().manual_seed(0), Timings())
    budget.prior_predictive(8)
    with pytest.raises(BudgetError, match="3 simulations requested with 2 of 10 left"):
        budget.prior_predictive(3)
    assert task.model.calls == 8


def test_other_rows_are_distinct_others_uniformly_at_random():
    from sbibench.methods.base import other_rows

    rows = other_rows(200, 9, torch.Generator().manual_seed(0))
    assert rows.shape == (200, 9)
    assert (rows != torch.arange(200).unsqueeze(1)).all()
    assert all(len(set(row.tolist())) == 9 for row in rows)
    assert other_rows(1, 0).shape == (1, 0)  # a one-row minibatch has no others
    with pytest.raises(ValueError, match="count must be in 0..batch - 1"):
        other_rows(3, 3)
    # Row 0 of a batch of 5 picks 2 of the 4 others: 6 subsets, each with probability 1/6.
    # Over 6,000 draws each count is Binomial(6000, 1/6): sd 28.9; 5 sd is 144.
    generator = torch.Generator().manual_seed(1)
    counts: dict = {}
    for _ in range(6000):
        subset = tuple(sorted(other_rows(5, 2, generator)[0].tolist()))
        counts[subset] = counts.get(subset, 0) + 1
    assert len(counts) == 6 and all(abs(c - 1000) < 144 for c in counts.values())


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("npe", {"estimator": "nsff"}, "estimator must be one of"),
        ("npe", {"max_epochs": -5}, "max_epochs must be a whole number >= 1, got -5"),
        ("nle", {"num_chains": 0}, "num_chains must be a whole number >= 1"),
        ("nre", {"hidden_features": (50, 0)}, "each of hidden_features"),
        ("fmpe", {"learning_rate": -1e-3}, "learning_rate must be > 0"),
        ("smc_abc", {"quantile": 1.5}, "quantile must lie in"),
        ("snpe_c", {"validation_fraction": 0.0}, "validation_fraction must lie in"),
        ("rej_abc", {"kde": "yes"}, "kde must be true or false"),
        ("bnre", {"regularization": float("nan")}, "regularization must be a finite number"),
    ],
)
def test_setting_values_are_checked_when_a_method_is_configured(name, settings, message):
    with pytest.raises(ValueError, match=message):
        get_method(name, **settings)


def test_every_methods_defaults_pass_the_checks():
    for name in list_methods():
        if name not in ("external", "sbibm"):  # these need an import path
            get_method(name)
