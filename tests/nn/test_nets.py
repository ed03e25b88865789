"""Classifier, vector-field and score nets; embeddings; z-scoring."""

import pytest
import torch

from sbibench.autodiff import divergence
from sbibench.nn import MLP, Classifier, DeepSet, ScoreNet, VectorField, ZScore, pad_sets


def test_classifier_shapes_broadcast_and_standardize() -> None:
    net = Classifier(2, 3, hidden_features=(8,))
    theta, x = torch.randn(5, 2) * 10 + 3, torch.randn(5, 3) - 4
    assert net(theta, x).shape == (5,)
    torch.testing.assert_close(net(theta, x[0]), net(theta, x[:1].expand(5, 3)))
    net.standardize_(theta, x)
    torch.testing.assert_close(net.theta_norm(theta).mean(0), torch.zeros(2), atol=1e-5, rtol=0)


def test_residual_classifier_starts_near_its_skip_path() -> None:
    """sbi's resnet classifier: Linear -> 2 blocks of 50 -> Linear, each block's last layer
    initialised in U(-1e-3, 1e-3), so at initialisation a block adds at most ~1e-3 x 50 x
    |activation| to its input; the network is then nearly the two outer linear layers."""
    torch.manual_seed(0)
    net = Classifier(2, 3, residual=True)
    blocks = net.net.blocks
    assert len(blocks) == 2 and blocks[0][1].in_features == 50
    h = torch.randn(100, 50)
    assert (blocks[0](h)).abs().max() < 0.05 * h.abs().max()
    assert net(torch.randn(7, 2), torch.randn(7, 3)).shape == (7,)
    with pytest.raises(ValueError, match="equal block widths"):
        Classifier(2, 3, hidden_features=(50, 20), residual=True)


def test_classifier_with_embedding() -> None:
    net = Classifier(2, 4, embedding=MLP(6, 4, (8,)))
    out = net(torch.randn(5, 2), torch.randn(5, 6))
    out.sum().backward()
    assert out.shape == (5,) and net.embedding.net[0].weight.grad is not None


@pytest.mark.parametrize("cls", [VectorField, ScoreNet])
def test_conditioned_fields(cls: type) -> None:
    net = cls(3, 2, hidden_features=(16,))
    theta = torch.randn(7, 3)
    level = torch.rand(7) + 0.1
    assert net(theta, level, torch.randn(7, 2)).shape == (7, 3)
    assert net(theta, 0.5, torch.randn(2)).shape == (7, 3)  # scalar level, one context
    assert cls(3, hidden_features=(16,))(theta, level).shape == (7, 3)  # unconditional
    net.standardize_(torch.randn(20, 2) * 5)
    # smooth activation: the divergence exists and is finite
    c = torch.randn(2)
    div = divergence(lambda t: net(t, level, c), theta)
    assert div.shape == (7,) and torch.isfinite(div).all()


def test_score_net_scales_as_one_over_sigma() -> None:
    net = ScoreNet(2, hidden_features=(16,))
    theta = torch.randn(4, 2)
    with torch.no_grad():  # the raw network output at c_in * theta, divided by sigma
        small = net(theta, 1e-3)
    assert small.abs().mean() > 10 * net(theta, 1.0).abs().mean()


def test_zscore_fit_ignores_nan_padding_and_constant_features() -> None:
    x = pad_sets([torch.tensor([[1.0, 5.0], [3.0, 5.0]]), torch.tensor([[2.0, 5.0]])])
    z = ZScore().fit_(x)
    torch.testing.assert_close(z.shift, torch.tensor([2.0, 5.0]))
    torch.testing.assert_close(z.scale[1], torch.tensor(1.0))  # constant feature
    assert torch.isnan(z(x)[1, 1]).all()  # padding stays padding


def test_deepset_is_invariant_to_order_and_padding() -> None:
    net = DeepSet(2, 3, (8,), 8)
    s = torch.randn(4, 2)
    padded = pad_sets([s, torch.randn(6, 2)])
    torch.testing.assert_close(net(s), net(s.flip(0)))
    torch.testing.assert_close(net(padded)[0], net(s))
    assert net(pad_sets([torch.randn(0, 2), s])).isfinite().all()  # an empty set
    with pytest.raises(ValueError, match="sets"):
        net(torch.randn(2, 3, 4, 2))
