"""Setting rules declared with their fields, and the posterior plumbing every method shares."""

import dataclasses

import pytest
import torch

from sbibench import get_task
from sbibench.methods import get_method
from sbibench.methods.base import Bookkeeping
from sbibench.methods.posteriors import BasePosterior
from sbibench.methods.settings import above, at_least, check_settings, one_of, setting


@dataclasses.dataclass(frozen=True)
class Settings:
    low: float = 1.0
    high: float = setting(2.0, above("low"))
    chains: int = 10
    candidates: int = setting(100, at_least("chains"))
    kind: str | None = setting(None, one_of(None, "a"))
    options: dict = setting({}, lambda name, value, config: None)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"high": 0.5}, r"need 0 < low < high, got 1.0, 0.5"),
        ({"high": -1.0}, "high must be > 0"),
        ({"candidates": 5}, r"candidates \(5\) must be >= chains \(10\)"),
        ({"kind": "b"}, "kind must be None or 'a', got 'b'"),
        ({"chains": 0}, "chains must be a whole number >= 1"),  # by its annotation
        ({"low": float("inf")}, "low must be a finite number"),
    ],
)
def test_a_rule_names_the_setting_and_its_value(values, message):
    check_settings(Settings())
    with pytest.raises(ValueError, match=message):
        check_settings(Settings(**values))


def test_a_list_or_dict_default_is_copied_per_instance():
    assert Settings().options is not Settings().options
    with pytest.raises(TypeError, match="config must be a dataclass instance"):
        check_settings({"low": 1.0})


def test_rules_between_settings_hold_for_the_methods_that_declare_them():
    with pytest.raises(ValueError, match=r"need 0 < beta_min < beta_max, got 5.0, 1.0"):
        get_method("npse", beta_min=5.0, beta_max=1.0)
    with pytest.raises(ValueError, match="population_size must be a whole number >= 2"):
        get_method("smc_abc", population_size=1)


class Constant(BasePosterior):
    """Draws theta = (1,) for one observation: the smallest posterior."""

    def _draw(self, n, x, generator):
        return torch.ones(n, 1, dtype=torch.float64)


def test_the_base_posterior_checks_times_and_keeps_the_bookkeeping():
    task = get_task("normal_mean")
    x_1, x_2 = task.observation(1), task.observation(2)
    amortized = Constant(task, Bookkeeping(7, 2))
    assert (amortized.num_simulations_used, amortized.num_invalid_simulations) == (7, 2)
    assert amortized.sample(3, torch.stack([x_1, x_2])).shape == (3, 2, 1)
    assert amortized.timings.sample > 0
    sequential = Constant(task, Bookkeeping(), observation=x_1)
    assert sequential.sample(3, x_1, seed=0).shape == (3, 1)
    with pytest.raises(ValueError, match="trained sequentially for another observation"):
        sequential.sample(3, x_2)
    with pytest.raises(ValueError, match="n must be a whole number >= 1"):
        amortized.sample(0, x_1)
    with pytest.raises(ValueError, match=r"x must be a batch \(B, 10\)"):
        amortized.check_batch(x_1)
    with pytest.raises(TypeError, match="bookkeeping must be a Bookkeeping"):
        Constant(task, None)


@pytest.mark.parametrize("round_batches", [True, False])
@pytest.mark.parametrize("name", ["snpe_c", "snle", "snre_b"])
def test_round_batches_caps_every_round_at_one_round_of_simulations(name, round_batches):
    """sbibm lowers a sequential method's batch size to one round's share of the budget: with
    ``round_batches``, 300 simulations in 3 rounds train on minibatches of at most 100 rows
    (round 3 pools 270 training rows: 100, 100, 70); without, batches of 10,000 take all 270."""
    import sbibench.methods.nle as nle
    import sbibench.methods.nre as nre
    import sbibench.methods.snpe as snpe

    module = {"snpe_c": snpe, "snle": nle, "snre_b": nre}[name]
    sizes: list[int] = []
    train = module.train

    def recording_train(net, loss_fn, tensors, **settings):
        def loss(*batch):
            if net.training:
                sizes.append(len(batch[0]))
            return loss_fn(*batch)

        return train(net, loss, tensors, **settings)

    task = get_task("two_moons")
    method = get_method(
        name, rounds=3, batch_size=10_000, round_batches=round_batches, max_epochs=1
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "train", recording_train)
        method.run(task, task.observation(1), 300, 0)
    assert max(sizes) == (100 if round_batches else 270)
