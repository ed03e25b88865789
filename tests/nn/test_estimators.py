"""The estimator interface, over the registry: shapes, batching, z-scoring, embeddings, errors."""

import pytest
import torch

from sbibench.nn import ESTIMATORS, DeepSet, build_estimator, pad_sets

from .conftest import small


def test_float32_by_default_and_shapes(name: str) -> None:
    est = build_estimator(name, 3, 4, hidden_features=(8,))
    theta, x = torch.randn(7, 3), torch.randn(7, 4)
    assert est.log_prob(theta, x).dtype == torch.float32
    assert est.log_prob(theta, x).shape == (7,)
    assert est.log_prob(theta, x[0]).shape == (7,)  # one context, broadcast
    assert est.sample(5, x[0]).shape == (5, 3)
    assert est.sample(5, x).shape == (5, 7, 3)
    samples, log_q = est.sample_and_log_prob(5, x)
    assert samples.shape == (5, 7, 3) and log_q.shape == (5, 7)


def test_unconditional(name: str) -> None:
    est = build_estimator(name, 2, 0, hidden_features=(8,))
    assert est.log_prob(torch.randn(6, 2)).shape == (6,)
    assert est.sample(4).shape == (4, 2)
    with pytest.raises(ValueError, match="unconditional"):
        est.log_prob(torch.randn(6, 2), torch.randn(6, 1))


def test_batched_sampling_equals_one_context_at_a_time(name: str) -> None:
    est = small(name, 3, 2)
    contexts = torch.randn(4, 2, dtype=torch.float64)
    g = torch.Generator().manual_seed(7)
    batch, log_q = est.sample_and_log_prob(300, contexts, generator=g)
    g.manual_seed(7)
    alone = [est.sample_and_log_prob(300, c, generator=g) for c in contexts]
    for b, (s, lq) in enumerate(alone):
        # The same noise reaches each context (drawn in turn from the generator) and
        # rows are computed independently, so the results agree to rounding; BLAS may
        # block a 1200-row and a 300-row matmul differently, hence 1e-10, not equality.
        torch.testing.assert_close(batch[:, b], s, rtol=0, atol=1e-10)
        torch.testing.assert_close(log_q[:, b], lq, rtol=0, atol=1e-10)
    # and different contexts get different noise, not copies of one draw
    assert not torch.allclose(batch[:, 0], batch[:, 1])


def test_same_generator_seed_same_samples(name: str) -> None:
    est = build_estimator(name, 2, 1, hidden_features=(8,))
    c = torch.zeros(1)
    a = est.sample(10, c, generator=torch.Generator().manual_seed(3))
    b = est.sample(10, c, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_zscoring_is_an_affine_change_of_variables(name: str) -> None:
    est = small(name, 2, 3)
    plain = small(name, 2, 3)
    theta = torch.randn(500, 2, dtype=torch.float64) * torch.tensor([3.0, 0.1]) + 5
    x = torch.randn(500, 3, dtype=torch.float64) * 4 - 1
    est.standardize_(theta, x)
    m, s = theta.mean(0), theta.std(0, unbiased=False)
    mx, sx = x.mean(0), x.std(0, unbiased=False)
    torch.testing.assert_close(est.theta_norm.shift, m)
    expected = plain.log_prob((theta - m) / s, (x - mx) / sx) - s.log().sum()
    torch.testing.assert_close(est.log_prob(theta, x), expected)


def test_state_dict_round_trip_keeps_zscoring(name: str) -> None:
    est = small(name, 2, 3)
    theta, x = torch.randn(50, 2, dtype=torch.float64) * 3, torch.randn(50, 3) + 2
    est.standardize_(theta, x)
    fresh = small(name, 2, 3)  # context statistics not yet shaped: loaded lazily
    fresh.load_state_dict(est.state_dict())
    torch.testing.assert_close(fresh.log_prob(theta, x), est.log_prob(theta, x))


def test_deepset_embedding_with_sets_of_varying_size(name: str) -> None:
    torch.manual_seed(0)
    est = build_estimator(name, 2, 4, hidden_features=(8,), embedding=DeepSet(3, 4, (8,), 8))
    sets = [torch.randn(m, 3) for m in (2, 5, 1)]
    x = pad_sets(sets)  # (3, 5, 3), NaN-padded
    est.standardize_(torch.randn(3, 2), x)
    assert torch.isfinite(est.context_norm.shift).all()
    theta = torch.randn(3, 2)
    log_q = est.log_prob(theta, x)
    assert torch.isfinite(log_q).all()
    # one set alone, unpadded, gives the same density; so does a shuffled set
    alone = est.log_prob(theta[1:2], sets[1])
    shuffled = est.log_prob(theta[1:2], sets[1][torch.randperm(5)])
    torch.testing.assert_close(alone, log_q[1:2], rtol=0, atol=1e-5)
    torch.testing.assert_close(shuffled, alone, rtol=0, atol=1e-5)
    log_q.sum().backward()
    assert est.embedding.phi[0].weight.grad.abs().sum() > 0
    assert est.sample(4, x).shape == (4, 3, 2)


def test_bad_input_is_named(name: str) -> None:
    est = build_estimator(name, 2, 3, hidden_features=(8,))
    with pytest.raises(ValueError, match="theta"):
        est.log_prob(torch.randn(4, 3), torch.randn(4, 3))
    with pytest.raises(ValueError, match="context is required"):
        est.log_prob(torch.randn(4, 2))
    with pytest.raises(ValueError, match="batch"):
        est.log_prob(torch.randn(4, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match="C=3"):
        est.log_prob(torch.randn(4, 2), torch.randn(4, 2))


def test_unknown_estimator_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="known: .*maf"):
        build_estimator("glow", 2)
    assert {"maf", "nsf", "realnvp", "mdn"} <= set(ESTIMATORS)
