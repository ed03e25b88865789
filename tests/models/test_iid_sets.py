"""normal_mean_sets: i.i.d. sets of varying size, NaN-padded; exactness against independent
computations, the simulator's set sizes and padding, the validity rules, and the references'
dependence on n."""

import math

import pytest
import torch
from scipy import stats

from sbibench import get_task
from sbibench.methods.base import check_observation
from sbibench.models.iid_sets import set_sizes, valid_sets
from sbibench.task import CardError, load_card

NAN, INF = float("nan"), float("inf")
SIZES = (1, 3, 10, 30, 100)


@pytest.fixture(scope="module")
def task():
    return get_task("normal_mean_sets")


def test_the_card_states_the_sizes(task):
    assert task.padded_sets and task.dim_data == 100 and task.dim_parameters == 1
    assert task.model.sizes == SIZES
    assert task.model.observation_sizes == SIZES + SIZES
    assert not get_task("normal_mean").padded_sets


@pytest.mark.parametrize("k", range(1, 11))
def test_observations_have_their_stated_sizes_and_trailing_padding(task, k):
    x = task.observation(k)
    n = task.model.observation_sizes[k - 1]
    assert torch.isfinite(x[:n]).all() and torch.isnan(x[n:]).all()
    assert task.valid(x.unsqueeze(0)).all()


@pytest.mark.parametrize("k", range(1, 6))
def test_posterior_matches_a_grid_of_prior_times_likelihood(task, k):
    """Quadrature of N(mu; 0, 3^2) * prod_j N(x_j; mu, 1) with scipy's densities on a grid,
    over the present entries only, for an observation of each n."""
    x = task.observation(k)
    values = x[~torch.isnan(x)].numpy()
    grid = torch.linspace(-15, 15, 60001, dtype=torch.float64)

    def log_joint(mu):
        return stats.norm(0, 3).logpdf(mu) + stats.norm(mu[:, None], 1).logpdf(values).sum(-1)

    on_grid = torch.from_numpy(log_joint(grid.numpy()))
    peak = on_grid.max()
    log_z = peak + torch.trapezoid((on_grid - peak).exp(), grid).log()
    density = (on_grid - log_z).exp()
    mean = torch.trapezoid(density * grid, grid)
    variance = torch.trapezoid(density * (grid - mean) ** 2, grid)
    posterior = task.posterior(x)
    torch.testing.assert_close(posterior.mean[0], mean, rtol=0, atol=1e-7)
    torch.testing.assert_close(posterior.variance[0], variance, rtol=1e-6, atol=0)
    # the normalised log-density itself, at five points of the bulk
    points = mean + torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], dtype=torch.float64) * variance.sqrt()
    expected = torch.from_numpy(log_joint(points.numpy())) - log_z
    torch.testing.assert_close(
        posterior.log_prob(points.unsqueeze(-1)), expected, rtol=0, atol=1e-8
    )


def test_log_likelihood_sums_the_present_entries(task):
    x = task.observation(2)  # n = 3
    theta = torch.tensor([[-1.0], [0.5], [2.0]], dtype=torch.float64)
    expected = [stats.norm(t, 1).logpdf(x[:3].numpy()).sum() for t in theta[:, 0].tolist()]
    torch.testing.assert_close(
        task.log_likelihood(theta, x), torch.tensor(expected, dtype=torch.float64)
    )


def test_references_depend_on_n(task):
    """Posterior sd 1 / sqrt(1/9 + n): the exact moments exactly, and the 10,000 reference
    samples within 4 standard errors of it (the sd of a sample sd is sd / sqrt(2 (N - 1)))."""
    for k, n in enumerate(task.model.observation_sizes, start=1):
        sd = 1 / math.sqrt(1 / 9 + n)
        mean, covariance = task.reference_moments(k)
        assert covariance[0, 0].sqrt().item() == pytest.approx(sd, rel=1e-12)
        samples = task.reference_samples(k)[:, 0]
        assert abs(samples.std().item() - sd) <= 4 * sd / math.sqrt(2 * (len(samples) - 1))
        assert abs(samples.mean().item() - mean.item()) <= 4 * sd / math.sqrt(len(samples))
    widths = [task.reference_samples(k).std().item() for k in range(1, 6)]
    assert widths == sorted(widths, reverse=True)  # n = 1, 3, 10, 30, 100: ever narrower


def test_simulated_sizes_are_uniform_and_padding_is_trailing(task):
    """20,000 simulations: each size's count within 4 binomial sds of 20,000 / 5; every row
    holds its n draws first, then NaN; n does not depend on theta."""
    generator = torch.Generator().manual_seed(0)
    theta = task.sample_prior(20_000, generator)
    x = task.simulate(theta, generator)
    n = set_sizes(x)
    expected, sd = 20_000 / 5, math.sqrt(20_000 * 0.2 * 0.8)
    for size in SIZES:
        assert abs(int((n == size).sum()) - expected) <= 4 * sd
    assert set(n.tolist()) == set(SIZES)
    columns = torch.arange(100)
    assert torch.equal(torch.isnan(x), columns >= n.unsqueeze(-1))
    assert valid_sets(x).all()
    # n is drawn from the generator alone: other parameters, the same generator, same sizes
    again = task.simulate(theta * 10 + 50, torch.Generator().manual_seed(0))
    assert torch.equal(
        set_sizes(again), set_sizes(task.simulate(theta, torch.Generator().manual_seed(0)))
    )
    # the draws follow N(mu, 1): standardised residuals of present entries
    residual = (x - theta)[~torch.isnan(x)]
    assert abs(residual.mean().item()) < 4 / math.sqrt(len(residual))
    assert abs(residual.std().item() - 1) < 4 / math.sqrt(2 * len(residual))


def test_validity_rules(task):
    rows = torch.full((6, 100), NAN, dtype=torch.float64)
    rows[0, :] = 1.0  # a full set
    rows[1, :3] = 1.0  # n = 3, padded
    # rows[2]: all NaN, a failed simulation
    rows[3, :3] = 1.0
    rows[3, 1] = INF  # inf
    rows[4, :3] = 1.0
    rows[4, 1] = NAN  # NaN in the middle: damaged, not a shorter set
    rows[5, 1:4] = 1.0  # NaN leading
    assert task.valid(rows).tolist() == [True, True, False, False, False, False]
    # elsewhere the rule is unchanged: any NaN is invalid
    plain = get_task("normal_mean")
    x = torch.zeros(2, 10, dtype=torch.float64)
    x[1, 9] = NAN
    assert plain.valid(x).tolist() == [True, False]


def test_check_observation_accepts_padding_only_for_padded_sets(task):
    x = task.observation(1)
    torch.testing.assert_close(check_observation(x, task, batch=False), x, equal_nan=True)
    assert check_observation(x.expand(3, -1), task, batch=True).shape == (3, 100)
    damaged = x.clone()
    damaged[50] = 0.0
    with pytest.raises(ValueError, match="not a valid padded set for task 'normal_mean_sets'"):
        check_observation(damaged, task, batch=False)
    with pytest.raises(ValueError, match="not a valid padded set"):
        check_observation(torch.full((100,), NAN, dtype=torch.float64), task, batch=False)
    plain = get_task("normal_mean")
    padded = torch.zeros(10, dtype=torch.float64)
    padded[5:] = NAN
    with pytest.raises(ValueError, match="NaN or inf"):
        check_observation(padded, plain, batch=False)


def test_summary_is_the_mean_and_log_size(task):
    x = task.observation(2)
    s = task.summary(x.unsqueeze(0))[0]
    assert s[0].item() == pytest.approx(x[:3].mean().item())
    assert s[1].item() == pytest.approx(math.log(3))


SIZES_LINE = "set_sizes = [1, 3, 10, 30, 100]"
OBSERVED_LINE = "observation_sizes = [1, 3, 10, 30, 100, 1, 3, 10, 30, 100]"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (OBSERVED_LINE, "observation_sizes = [1, 3, 10]",
         "observation_sizes has 3 sizes, but num_observations is 10"),
        (SIZES_LINE, "set_sizes = [1, 3, 10, 30]", r"holds \[100\], not among simulator.set_sizes"),
        (SIZES_LINE, "set_sizes = [0, 3, 10, 30, 100]", "set_sizes must hold whole numbers >= 1"),
        (SIZES_LINE, "set_sizes = []", "set_sizes must be a non-empty list"),
    ],
)  # fmt: skip
def test_card_errors_name_the_field(task, tmp_path, old, new, message):
    path = tmp_path / "normal_mean_sets.toml"
    text = task.card_path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    with pytest.raises(CardError, match=message):
        load_card(path)
