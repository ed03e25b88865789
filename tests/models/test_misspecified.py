"""The misspecified variant of normal_mean: its card, its observations' stated process, its
references (the assumed model's exact posterior) and the checks on a [misspecified] table."""

import pytest
import torch

from sbibench import get_task
from sbibench.task import CardError, load_card

SEED, DRAWS, OUTLIER = 1012, 10, 6.0


def misspecified_observations() -> tuple[torch.Tensor, torch.Tensor]:
    """The card's observations, from the process its [misspecified] table states: mu_k from
    normal_mean's prior N(0, 3^2); observations 1-5 are mu + Student-t(3) noise (t = z /
    sqrt(chi2_3 / 3)), observations 6-10 are mu + N(0, 1) noise with the last draw replaced by
    mu + 6. One torch.Generator seeded with 1012, in this order, float64."""
    generator = torch.Generator().manual_seed(SEED)
    mu = 3.0 * torch.randn(10, 1, generator=generator, dtype=torch.float64)
    z = torch.randn(10, DRAWS, generator=generator, dtype=torch.float64)
    chi2 = torch.randn(10, DRAWS, 3, generator=generator, dtype=torch.float64).square().sum(-1)
    student = z / (chi2 / 3).sqrt()
    x = torch.cat([mu[:5] + student[:5], mu[5:] + z[5:]])
    x[5:, -1] = mu[5:, 0] + OUTLIER
    return mu, x


def test_the_cards_observations_come_from_the_stated_process():
    task = get_task("normal_mean_misspecified")
    mu, x = misspecified_observations()
    true_parameters, data, _ = task.fixed_observations
    assert torch.equal(true_parameters, mu) and torch.equal(data, x)
    assert task.assumes == "normal_mean" and "Student-t" in task.misspecification


def test_references_are_the_assumed_models_exact_posterior():
    """The reference samples follow normal_mean's conjugate posterior given these data (mean
    within 4 standard errors of 10,000 draws), and an outlier at 6 sd pulls it as the model
    says: the posterior mean moves by 6 x 9 / (10 x 9 + 1) = 0.593 against the data without it."""
    task, assumed = get_task("normal_mean_misspecified"), get_task("normal_mean")
    for k in range(1, 11):
        x = task.observation(k)
        exact = assumed.posterior(x)
        draws = task.reference_samples(k)
        error = 4 * exact.stddev / len(draws) ** 0.5
        assert (draws.mean(0) - exact.mean).abs().item() < error.item()
    mu, x = misspecified_observations()
    clean = x[5].clone()
    clean[-1] = mu[5, 0]  # the outlier's draw at mu instead
    shift = assumed.posterior(x[5]).mean - assumed.posterior(clean).mean
    assert shift.item() == pytest.approx(6 * 9 / 91, rel=1e-9)


def _card(tmp_path, name, table, observations=True):
    source = (get_task("normal_mean_misspecified").card_path).read_text()
    head, _, tail = source.partition("[misspecified]")
    body = tail.split("\n[", 1)[1]  # the tables after [misspecified]
    text = (
        head.replace('name = "normal_mean_misspecified"', f'name = "{name}"') + table + "\n[" + body
    )
    if not observations:
        text = text.split("\n[observations]")[0] + "\n"
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "table, message",
    [
        ('[misspecified]\nassumes = "normal_mean"\n', "must hold exactly assumes, process"),
        ('[misspecified]\nassumes = "nope"\nprocess = "p"\n', "not another known task"),
        ('[misspecified]\nassumes = "poisson_gamma"\nprocess = "p"\n', "differs from the assumed"),
        ('[misspecified]\nassumes = "normal_mean"\nprocess = ""\n', "misspecified.process must"),
    ],
)
def test_a_broken_misspecified_table_is_named(tmp_path, table, message):
    with pytest.raises(CardError, match=message) as error:
        load_card(_card(tmp_path, "variant", table))
    assert "variant.toml" in str(error.value)


def test_misspecified_needs_its_observations(tmp_path):
    table = '[misspecified]\nassumes = "normal_mean"\nprocess = "p"\n'
    with pytest.raises(CardError, match="needs the \\[observations\\]"):
        load_card(_card(tmp_path, "variant", table, observations=False))
