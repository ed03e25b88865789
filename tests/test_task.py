"""Task cards, the task registry and the Task API."""

import pytest
import torch

from sbibench import get_task, list_tasks
from sbibench.reference.store import load_reference
from sbibench.task import CardError, load_card

TASKS = list_tasks()


def test_the_shipped_tasks_are_registered():
    assert TASKS == [
        "beta_binomial",
        "dirichlet_multinomial",
        "gaussian_linear_uniform",
        "gaussian_mixture",
        "linear_gaussian",
        "linear_gaussian_d100",
        "linear_gaussian_d2",
        "linear_gaussian_d20",
        "linear_gaussian_d5",
        "linear_gaussian_d50",
        "linear_gaussian_vae",
        "normal_mean",
        "normal_mean_failing",
        "normal_mean_misspecified",
        "normal_mean_sets",
        "normal_mean_variance",
        "poisson_gamma",
        "two_moons",
    ]


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'gaussian_lineaar'.*linear_gaussian"):
        get_task("gaussian_lineaar")


@pytest.mark.parametrize(
    ("name", "dims"),
    [
        ("poisson_gamma", (1, 20)),
        ("beta_binomial", (1, 10)),
        ("dirichlet_multinomial", (4, 20)),
        ("normal_mean", (1, 10)),
        ("normal_mean_misspecified", (1, 10)),
        ("normal_mean_variance", (2, 10)),
        ("linear_gaussian", (10, 10)),
        ("linear_gaussian_d2", (2, 2)),
        ("linear_gaussian_d100", (100, 100)),
        ("linear_gaussian_vae", (4, 20)),
        ("gaussian_linear_uniform", (10, 10)),
        ("gaussian_mixture", (2, 2)),
        ("two_moons", (2, 2)),
    ],
)
def test_dimensions_follow_the_cards(name, dims):
    task = get_task(name)
    assert (task.dim_parameters, task.dim_data) == dims
    assert len(task.parameter_names) == dims[0]
    assert task.prior.event_shape == (dims[0],)


@pytest.mark.parametrize("name", TASKS)
def test_discrete_data_are_whole_numbers(name):
    """A task that says its data are discrete simulates whole numbers; the others do not."""
    task = get_task(name)
    x = task.simulate(task.sample_prior(200, torch.Generator().manual_seed(1)))
    x = x[task.valid(x)].nan_to_num()  # a failing task's failed rows; padding
    assert task.discrete_data == bool(torch.equal(x, x.round()))
    counts = ("poisson_gamma", "beta_binomial", "dirichlet_multinomial")
    assert task.discrete_data == (task.family in counts)


@pytest.mark.parametrize("name", TASKS)
def test_simulator_is_deterministic_under_a_generator(name):
    task = get_task(name)
    theta = task.sample_prior(50, torch.Generator().manual_seed(1))
    assert theta.shape == (50, task.dim_parameters) and theta.dtype == torch.float64
    assert task.prior.support.check(theta).all()
    first = task.simulate(theta, torch.Generator().manual_seed(2))
    again = task.simulate(theta, torch.Generator().manual_seed(2))
    other = task.simulate(theta, torch.Generator().manual_seed(3))
    assert first.shape == (50, task.dim_data) and first.dtype == torch.float64
    # a failing task's failed rows are NaN, at the same rows under the same generator
    torch.testing.assert_close(first, again, rtol=0, atol=0, equal_nan=True)
    assert not torch.equal(first, other)
    assert task.valid(first).all() == (task.failures is None)
    assert torch.isfinite(first).all() == (task.failures is None and not task.padded_sets)
    # Prior draws under a generator leave the global RNG where it was.
    state = torch.get_rng_state()
    task.sample_prior(5, torch.Generator().manual_seed(1))
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("name", TASKS)
def test_simulator_matches_log_likelihood(name):
    """The simulator draws from the density that log_likelihood evaluates: on many data sets
    simulated at one theta, the average log-likelihood at the true theta beats a shifted one."""
    task = get_task(name)
    theta = task.true_parameters(1).unsqueeze(0)
    x = task.simulate(theta.expand(2000, -1), torch.Generator().manual_seed(4))
    x = x[task.valid(x)]  # a failing task's failed rows
    true = task.log_likelihood(theta.expand(len(x), -1), x).mean()
    if name == "normal_mean_variance":
        shifted = theta * torch.tensor([1.0, 1.5])
    elif name == "dirichlet_multinomial":  # towards the centre, staying on the simplex
        shifted = 0.7 * theta + 0.3 / 4
    else:
        shifted = theta * 1.3
    assert true > task.log_likelihood(shifted.expand(len(x), -1), x).mean()


@pytest.mark.parametrize("name", TASKS)
def test_observations_and_shapes(name):
    task = get_task(name)
    # ten observations, as sbibm's; the dimension ladder's rungs five, to keep their files small
    assert task.num_observations == (5 if name.startswith("linear_gaussian_d") else 10)
    size = (
        2000
        if name in ("linear_gaussian_d20", "linear_gaussian_d50", "linear_gaussian_d100")
        else 10_000
    )
    for k in (1, task.num_observations):
        assert task.observation(k).shape == (task.dim_data,)
        assert task.true_parameters(k).shape == (task.dim_parameters,)
        assert task.reference_samples(k).shape == (size, task.dim_parameters)
    posterior = task.posterior(task.observation(1))
    assert posterior.sample((3,)).shape == (3, task.dim_parameters)
    assert task.log_likelihood(task.sample_prior(4), task.observation(1)).shape == (4,)


@pytest.mark.parametrize("bad", [0, 11, 1.0, "1"])
def test_observation_numbers_are_checked(bad):
    with pytest.raises(ValueError, match="observation number must be in 1..10"):
        get_task("normal_mean").observation(bad)


def test_wrong_shapes_are_refused():
    task = get_task("linear_gaussian")
    with pytest.raises(ValueError, match=r"theta must have shape \(N, 10\), got \(10,\)"):
        task.simulate(torch.zeros(10))
    with pytest.raises(ValueError, match=r"x must have shape \(10,\) or \(K, 10\)"):
        task.posterior(torch.zeros(3, 9))
    with pytest.raises(ValueError, match="x has 3 rows but theta has 4"):
        task.log_likelihood(torch.zeros(4, 10), torch.zeros(3, 10))


def test_batched_posterior_equals_single_posteriors():
    task = get_task("normal_mean_variance")
    x = torch.stack([task.observation(k) for k in (1, 2, 3)])
    batched = task.posterior(x)
    theta = torch.tensor([0.1, 0.5], dtype=torch.float64)
    for i, k in enumerate((1, 2, 3)):
        single = task.posterior(task.observation(k))
        assert torch.allclose(batched.mean[i], single.mean)
        assert torch.allclose(batched.log_prob(theta)[i], single.log_prob(theta))


CARD = """\
name = "{name}"
family = "poisson_gamma"
description = "a test card"
num_observations = 10
seed = 5

[prior]
shape = 2.0
rate = 0.5

[simulator]
num_draws = 20
"""


def _card(tmp_path, text, name="my_task"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text.format(name=name))
    return path


def test_a_good_card_loads(tmp_path):
    task = load_card(_card(tmp_path, CARD))
    assert task.name == "my_task" and task.dim_data == 20
    assert task.num_reference_samples == 10_000  # unless the card says


def test_a_card_may_store_fewer_reference_samples(tmp_path):
    task = load_card(
        _card(tmp_path, CARD.replace("seed = 5", "seed = 5\nnum_reference_samples = 2000"))
    )
    assert task.num_reference_samples == 2000
    assert get_task("linear_gaussian_d100").num_reference_samples == 2000


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c + "colour = 'red'\n", "unknown field simulator.colour"),
        (lambda c: "speed = 1\n" + c, "unknown field 'speed'"),
        (lambda c: c.replace("seed = 5\n", ""), "missing field 'seed'"),
        (lambda c: c.replace("rate = 0.5\n", ""), "missing field prior.rate"),
        (lambda c: c.replace("rate = 0.5", "rate = -0.5"), r"field prior.rate must be > 0"),
        (
            lambda c: c.replace("num_draws = 20", "num_draws = 2.5"),
            "field simulator.num_draws must be a whole number",
        ),
        (
            lambda c: c.replace("num_observations = 10", "num_observations = 0"),
            "field 'num_observations'",
        ),
        (
            lambda c: c.replace('family = "poisson_gamma"', 'family = "poisson"'),
            "field 'family' is 'poisson'",
        ),
        (lambda c: c.replace("shape = 2.0", "shape = nan"), "field prior.shape must be finite"),
        (lambda c: c.replace("[prior]", "[prior"), "not a valid TOML card"),
        (
            lambda c: c.replace("seed = 5", "seed = 5\nnum_reference_samples = 10"),
            "field 'num_reference_samples' must be a whole number >= 100",
        ),
        (
            lambda c: c.replace("seed = 5", "seed = 5\nnum_reference_samples = 2e3"),
            "field 'num_reference_samples' must be a whole number",
        ),
        (
            lambda c: c.replace("shape = 2.0", "shape = 1e300"),
            r"field prior.shape must be at most 1.84e\+19 in magnitude \(its square must stay "
            r"finite in float32, which methods train in\), got 1e\+300",
        ),
        (
            lambda c: c.replace("rate = 0.5", "rate = 1e-30"),
            r"field prior.rate must be at least 5.42e-20 \(the square of its reciprocal",
        ),
        (
            lambda c: c.replace("seed = 5", f"seed = {2**64}"),
            r"field 'seed' must be a whole number in 0..2\*\*63-1 \(9223372036854775807\), "
            f"got {2**64}",
        ),
    ],
)
def test_broken_cards_name_the_file_and_the_field(tmp_path, edit, message):
    path = _card(tmp_path, edit(CARD))
    with pytest.raises(CardError, match=message) as error:
        load_card(path)
    assert str(path) in str(error.value)


def test_card_name_must_match_its_file(tmp_path):
    path = tmp_path / "other.toml"
    path.write_text(CARD.format(name="my_task"))
    with pytest.raises(CardError, match="field 'name' is 'my_task' but the file is other.toml"):
        load_card(path)


def test_negative_variance_in_a_gaussian_card(tmp_path):
    text = (
        'name = "lg"\nfamily = "linear_gaussian"\ndescription = "d"\nnum_observations = 2\n'
        "seed = 1\n[prior]\nvariance = -0.1\n[simulator]\ndim = 3\nnoise_variance = 0.1\n"
    )
    path = tmp_path / "lg.toml"
    path.write_text(text)
    with pytest.raises(CardError, match=r"lg.toml: field prior.variance must be > 0, got -0.1"):
        load_card(path)


SBIBM_TASKS = ["linear_gaussian", "gaussian_linear_uniform", "gaussian_mixture", "two_moons"]


@pytest.mark.parametrize("name", SBIBM_TASKS)
def test_sbibm_observations_are_the_cards(name):
    """These cards fix sbibm 1.1.0's ten observations and true parameters; the reference
    files hold exactly those, and the manifest names where they come from."""
    task = get_task(name)
    true_parameters, data, source = task.fixed_observations
    assert source.startswith("sbibm 1.1.0")
    for k in (1, 10):
        assert torch.equal(task.observation(k), data[k - 1])
        assert torch.equal(task.true_parameters(k), true_parameters[k - 1])
    assert load_reference(task).manifest["source"] == source


OBSERVATIONS = """
[observations]
source = "a test"
true_parameters = [{theta}]
data = [{data}]
"""


@pytest.mark.parametrize(
    ("theta", "data", "message"),
    [
        ("[1.0]", "[1, 2, 3]", "observations.true_parameters must be 2 lists of 1 finite"),
        ("[1.0], [2.0]", "[1, 2], [3, 4]", "observations.data must be 2 lists of 20 finite"),
        ("[1.0], [nan]", "[1, 2], [3, 4]", "observations.true_parameters must be 2 lists"),
        ("[1.0], ['a']", "[1, 2], [3, 4]", "observations.true_parameters must be 2 lists"),
    ],
)
def test_fixed_observations_are_checked(tmp_path, theta, data, message):
    card = CARD.replace("num_observations = 10", "num_observations = 2")
    card += OBSERVATIONS.format(theta=theta, data=data)
    with pytest.raises(CardError, match=message):
        load_card(_card(tmp_path, card))


def test_fixed_observations_need_a_source(tmp_path):
    card = CARD + "\n[observations]\ntrue_parameters = []\ndata = []\n"
    with pytest.raises(CardError, match="must hold exactly source, true_parameters, data"):
        load_card(_card(tmp_path, card))


def test_mismatched_mixture_lists_name_the_card(tmp_path):
    text = (
        'name = "m"\nfamily = "uniform_gaussian_mixture"\ndescription = "d"\n'
        "num_observations = 2\nseed = 1\n[prior]\nbound = 1.0\n[simulator]\ndim = 2\n"
        "weights = [0.5, 0.5]\nvariances = [1.0]\n"
    )
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(CardError, match="m.toml: simulator.weights has 2 entries"):
        load_card(path)


NORMAL_MEAN = """\
name = "{name}"
family = "normal_mean"
description = "a test card"
num_observations = 2
seed = 5

[prior]
mean = 0.0
std = STD

[simulator]
num_draws = 3
noise_std = 1.0
"""


@pytest.mark.parametrize("std", ["1e300", "1e25", "-1e300"])
def test_a_finite_number_too_large_for_float32_squares_is_refused(tmp_path, std):
    """A prior std of 1e300 overflowed while the card was built (std**2, an OverflowError,
    not a CardError); 1e25 built, then every float32 square of its data was inf. Both are
    refused naming the card and the field."""
    path = _card(tmp_path, NORMAL_MEAN.replace("STD", std))
    with pytest.raises(CardError, match="field prior.std must be at most 1.84e") as error:
        load_card(path)
    assert str(path) in str(error.value)


def test_the_largest_card_number_squares_to_a_finite_float32(tmp_path):
    """The bound is the largest float32 whose square is finite: a std of 1.8e19 (just below
    it) loads, and the bound's square and its reciprocal's square are finite in float32."""
    from sbibench.models.common import MAX_MAGNITUDE

    task = load_card(_card(tmp_path, NORMAL_MEAN.replace("STD", "1.8e19")))
    assert task.posterior(torch.zeros(3)).stddev.isfinite().all()
    big = torch.tensor(MAX_MAGNITUDE, dtype=torch.float32)
    assert torch.isfinite(big.square()) and torch.isfinite((1 / big).reciprocal().square())
    assert not torch.isfinite((big * 1.0001).square())


def test_fixed_observations_too_large_for_float32_squares_are_refused(tmp_path):
    card = CARD.replace("num_observations = 10", "num_observations = 2")
    data = ", ".join(["[" + ", ".join(["1.0"] * 19 + [value]) + "]" for value in ("2.0", "1e30")])
    path = _card(tmp_path, card + OBSERVATIONS.format(theta="[1.0], [2.0]", data=data))
    with pytest.raises(CardError, match="field observations.data holds 1e\\+30; its numbers") as e:
        load_card(path)
    assert str(path) in str(e.value)
