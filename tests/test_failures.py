"""Failing simulators: the card's [failures] table, the rate and independence of failures, the
"raise" mode's error and how budgets spend and count it; normal_mean_failing's references."""

import dataclasses

import pytest
import torch

from sbibench import get_task
from sbibench.failures import Failures, SimulationError, simulate_or_nan
from sbibench.methods.base import SimulationBudget, Timings
from sbibench.reference.store import load_reference
from sbibench.task import CardError, load_card

CARD = """\
name = "my_task"
family = "normal_mean"
description = "a test card"
num_observations = 10
seed = 5

[prior]
mean = 0.0
std = 3.0

[simulator]
num_draws = 10
noise_std = 1.0

[failures]
fraction = 0.2
mode = "nan"
"""


def _card(tmp_path, text):
    path = tmp_path / "my_task.toml"
    path.write_text(text)
    return path


def test_a_failing_card_loads(tmp_path):
    task = load_card(_card(tmp_path, CARD))
    assert task.failures == Failures(fraction=0.2, mode="nan")
    assert load_card(_card(tmp_path, CARD.split("[failures]")[0])).failures is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("fraction = 0.2", "fraction = 1.0"),
            "field failures.fraction must lie in .0, 1., got 1.0",
        ),
        (("fraction = 0.2", "fraction = -0.1"), "field failures.fraction must lie in"),
        (("fraction = 0.2", "fraction = nan"), "field failures.fraction must be finite"),
        (("fraction = 0.2", 'fraction = "a"'), "field failures.fraction must be a number"),
        (('mode = "nan"', 'mode = "crash"'), "field failures.mode must be one of 'nan', 'raise'"),
        (('mode = "nan"', 'mode = "nan"\nrate = 3'), "unknown field failures.rate; the failures"),
        (('mode = "nan"\n', ""), "missing field failures.mode"),
    ],
)
def test_broken_failures_name_the_file_and_the_field(tmp_path, edit, message):
    path = _card(tmp_path, CARD.replace(*edit))
    with pytest.raises(CardError, match=message) as error:
        load_card(path)
    assert str(path) in str(error.value)


def test_a_failures_value_that_is_not_a_table_is_named(tmp_path):
    text = CARD.split("[failures]")[0].replace("seed = 5\n", "seed = 5\nfailures = 0.2\n")
    with pytest.raises(CardError, match=r"my_task.toml: \[failures\] must be a table"):
        load_card(_card(tmp_path, text))


def test_failures_are_at_the_stated_rate_and_independent_of_theta():
    """20,000 simulations at fraction 0.2: the failed count is Binomial(20000, 0.2), sd 56.6,
    held to 4 sd (226). Split at the median of theta, each half's rate has sd
    sqrt(0.16 / 10000) = 0.004, their difference sd 0.0057, held to 4 sd (0.023); so is the
    difference between the central half of theta and the tails."""
    task = get_task("normal_mean_failing")
    theta = task.sample_prior(20_000, torch.Generator().manual_seed(0))
    x = task.simulate(theta, torch.Generator().manual_seed(1))
    failed = x.isnan().any(-1)
    assert torch.equal(failed, x.isnan().all(-1))  # whole rows fail
    assert abs(int(failed.sum()) - 4000) < 226
    median = theta[:, 0].median()
    low, high = failed[theta[:, 0] < median], failed[theta[:, 0] >= median]
    assert abs(low.double().mean() - high.double().mean()) < 0.023
    centre = (theta[:, 0] - median).abs() < (theta[:, 0] - median).abs().median()
    assert abs(failed[centre].double().mean() - failed[~centre].double().mean()) < 0.023
    # The rows that succeed are the model's own draws: failures are drawn after simulating.
    model = get_task("normal_mean").simulate(theta, torch.Generator().manual_seed(1))
    assert torch.equal(x[~failed], model[~failed])
    # The same generator fails the same rows.
    again = task.simulate(theta, torch.Generator().manual_seed(1))
    assert torch.equal(again.isnan().any(-1), failed)


def _raising(fraction=0.2):
    task = get_task("normal_mean_failing")
    return dataclasses.replace(task, failures=Failures(fraction=fraction, mode="raise"))


def test_raise_mode_raises_with_the_whole_batch():
    task = _raising()
    theta = task.sample_prior(500, torch.Generator().manual_seed(0))
    with pytest.raises(SimulationError, match=r"^\d+ of 500 simulations failed") as error:
        task.simulate(theta, torch.Generator().manual_seed(1))
    # The same draws as mode "nan": the error holds that batch, the failed rows NaN.
    nan = get_task("normal_mean_failing").simulate(theta, torch.Generator().manual_seed(1))
    torch.testing.assert_close(error.value.x, nan, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(error.value.failed, nan.isnan().any(-1))
    assert str(int(error.value.failed.sum())) in str(error.value)
    simulated = simulate_or_nan(task.simulate, theta, torch.Generator().manual_seed(1))
    torch.testing.assert_close(simulated, nan, rtol=0, atol=0, equal_nan=True)
    # A batch in which nothing fails returns normally.
    assert torch.isfinite(_raising(0.0).simulate(theta, torch.Generator().manual_seed(1))).all()


@pytest.mark.parametrize("mode", ["nan", "raise"])
def test_a_budget_spends_every_row_and_keeps_the_ones_that_succeed(mode):
    """Both modes end alike: all 1,000 rows spent, the failed ones (Binomial(1000, 0.2), sd
    12.6; 4 sd is 51) dropped and counted, the rest kept, nothing simulated again."""
    task = get_task("normal_mean_failing")
    task = dataclasses.replace(task, failures=Failures(fraction=0.2, mode=mode))
    budget = SimulationBudget(task, 1200, torch.Generator().manual_seed(3), Timings())
    theta, x = budget.prior_predictive(1000)
    assert budget.used == 1000 and budget.remaining == 200
    assert abs(budget.invalid - 200) < 51
    assert len(x) == len(theta) == 1000 - budget.invalid
    assert torch.isfinite(x).all()


def test_failing_variant_has_normal_mean_references_and_posterior():
    """normal_mean_failing shares normal_mean's seed and model, and its failures never touch
    the observations: the same observations, true parameters and reference samples, hence the
    same exact posterior (parameters equal to the last bit)."""
    failing, plain = get_task("normal_mean_failing"), get_task("normal_mean")
    assert failing.failures == Failures(fraction=0.2, mode="nan") and plain.failures is None
    ours, theirs = load_reference(failing), load_reference(plain)
    assert ours.manifest["files"] == theirs.manifest["files"]  # sha256 of every file
    assert ours.manifest["posterior"] == theirs.manifest["posterior"]
    for k in (1, 5, 10):
        assert torch.equal(failing.observation(k), plain.observation(k))
        assert torch.equal(failing.true_parameters(k), plain.true_parameters(k))
        assert torch.equal(failing.reference_samples(k), plain.reference_samples(k))
    x = torch.stack([plain.observation(k) for k in range(1, 11)])
    ours, theirs = failing.posterior(x), plain.posterior(x)
    assert torch.equal(ours.mean, theirs.mean) and torch.equal(ours.stddev, theirs.stddev)
    theta = plain.reference_samples(1)[:100]
    assert torch.equal(failing.log_likelihood(theta, x[0]), plain.log_likelihood(theta, x[0]))


def test_records_count_the_failed_simulations(tmp_path, make_suite):
    """Through the runner: each record says all 200 simulations were used and about 20% of
    them invalid (Binomial(200, 0.2), sd 5.7; 4 sd either side of 40 is 17-63), and the
    amortized fit is calibrated on the datasets whose simulations did not fail."""
    from sbibench.records import load_results
    from sbibench.run.runner import run_suite

    suite = make_suite(
        name="failing", description="a failing task through the runner", tasks=["normal_mean_failing"],
        observations=[1], num_posterior_samples=200, metrics=["c2st", "moments"], sbc=(40, 10),
        methods={"rej_abc": {"num_accepted": 20}, "npe": {"max_epochs": 3}},
    )  # fmt: skip
    run_suite(suite, tmp_path / "run", progress=False)
    table = load_results(tmp_path / "run")
    assert len(table) == 2 and (table["status"] == "ok").all(), table["error"].tolist()
    assert (table["num_simulations_used"] == 200).all()
    assert table["num_invalid_simulations"].between(17, 63).all()
    # SBC on the 40 datasets less the failed ones (Binomial(40, 0.2), sd 2.5; 4 sd is 10)
    npe = table[table["method"] == "npe"].iloc[0]
    assert 22 <= npe["sbc_datasets"] < 40
