"""The shared training loop: determinism, early stopping with restore, validation, errors."""

import pytest
import torch
from torch import nn

from sbibench.nn import MAF, train


def _problem() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 1, generator=g)
    theta = 2 * x + 0.5 * torch.randn(600, 1, generator=g)
    return theta, x


def _fit(seed: int, **kwargs):
    torch.manual_seed(0)
    theta, x = _problem()
    flow = MAF(1, 1, transforms=1, hidden_features=(8,)).standardize_(theta, x)
    result = train(flow, lambda t, c: -flow.log_prob(t, c).mean(), (theta, x), seed=seed, **kwargs)
    return flow, result


def test_deterministic_under_a_seed_and_learns() -> None:
    a, ra = _fit(seed=1, max_epochs=4)
    b, rb = _fit(seed=1, max_epochs=4)
    c, rc = _fit(seed=2, max_epochs=4)
    assert ra.train_loss == rb.train_loss and ra.validation_loss == rb.validation_loss
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert ra.validation_loss != rc.validation_loss
    assert ra.epochs == 4 and not ra.converged
    assert ra.validation_loss[-1] < ra.validation_loss[0]


def test_global_rng_is_left_alone() -> None:
    theta, x = _problem()
    flow = MAF(1, 1, transforms=1, hidden_features=(8,))
    state = torch.get_rng_state()
    train(flow, lambda t, c: -flow.log_prob(t, c).mean(), (theta, x), max_epochs=1)
    assert torch.equal(torch.get_rng_state(), state)


class _Drift(nn.Module):
    """A parameter the training loss pulls to 1 while the validation loss wants 0."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        target = 1.0 if self.training else 0.0
        return (self.p - target).square() + 0 * batch.sum()


def test_early_stopping_restores_the_best_state() -> None:
    data = (torch.zeros(100, 1),)
    module = _Drift()
    result = train(module, module.loss, data, patience=3, learning_rate=0.01, batch_size=10)
    first = _Drift()
    train(first, first.loss, data, max_epochs=1, learning_rate=0.01, batch_size=10)
    # validation gets worse every epoch: the state after epoch 1 is the best one
    assert result.best_epoch == 1 and result.converged and result.epochs == 4
    assert torch.equal(module.p, first.p)
    assert result.best_validation_loss == pytest.approx(first.p.item() ** 2)


def test_validation_loss_is_exact_over_chunks() -> None:
    module = _Drift()
    data = (torch.arange(1000.0)[:, None],)

    def loss(batch: torch.Tensor) -> torch.Tensor:
        return batch.mean() + 0 * module.p

    result = train(module, loss, data, max_epochs=1, validation_batch_size=7, seed=3)
    perm = torch.randperm(1000, generator=torch.Generator().manual_seed(3))
    assert result.validation_loss[0] == pytest.approx(perm[:100].float().mean().item())


def test_bad_arguments() -> None:
    module = _Drift()
    with pytest.raises(ValueError, match="differ in length"):
        train(module, module.loss, (torch.zeros(10), torch.zeros(9)))
    with pytest.raises(ValueError, match="validation_fraction"):
        train(module, module.loss, (torch.zeros(10),), validation_fraction=0.0)


@pytest.mark.parametrize(("n", "min_batch_size", "smallest"), [(1112, 1, 1), (1112, 2, 200)])
def test_a_last_minibatch_below_the_minimum_joins_the_one_before(n, min_batch_size, smallest):
    """1,112 rows: 111 for validation, 1,001 for training, so batches of 200 leave one row over;
    with ``min_batch_size=2`` it joins the last full batch, and every row is still visited."""
    module = _Drift()
    sizes, seen = [], []

    def loss(batch: torch.Tensor) -> torch.Tensor:
        if module.training:
            sizes.append(len(batch))
            seen.append(batch[:, 0])
        return batch.mean() + 0 * module.p

    data = (torch.arange(float(n))[:, None],)
    train(module, loss, data, max_epochs=1, min_batch_size=min_batch_size)
    assert min(sizes) == smallest and sum(sizes) == 1001
    assert len(torch.cat(seen).unique()) == 1001


def test_a_validation_set_has_at_least_the_minimum_rows() -> None:
    """12 rows at a 10% split give one validation row; a contrastive loss gets two."""
    module = _Drift()
    sizes = []

    def loss(batch: torch.Tensor) -> torch.Tensor:
        if not module.training:
            sizes.append(len(batch))
        return batch.mean() + 0 * module.p

    train(module, loss, (torch.zeros(12, 1),), max_epochs=1, min_batch_size=2)
    assert sizes == [2]
    with pytest.raises(ValueError, match="min_batch_size must be a whole number >= 1"):
        train(module, loss, (torch.zeros(12, 1),), min_batch_size=0)
    with pytest.raises(ValueError, match="not enough rows"):
        train(module, loss, (torch.zeros(3, 1),), min_batch_size=2)
