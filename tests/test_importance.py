"""Adaptive importance sampling against a target whose answers are known."""

import math

import pytest
import torch

from sbibench import importance
from sbibench.importance import adaptive_importance
from sbibench.mcmc import importance_ess, sir_init

_BOX = 10.0  # the base: uniform on [-10, 10]^2


def _two_modes(u):
    """0.3 N((-3, 0), 0.3^2 I) + 0.7 N((3, 1), 0.3^2 I), normalised."""
    norm = -math.log(2 * math.pi * 0.09)
    left = math.log(0.3) + norm - ((u[:, 0] + 3).square() + u[:, 1].square()) / 0.18
    right = math.log(0.7) + norm - ((u[:, 0] - 3).square() + (u[:, 1] - 1).square()) / 0.18
    return torch.logaddexp(left, right)


def _base(generator):
    def sample(n):
        return (torch.rand(n, 2, generator=generator, dtype=torch.float64) * 2 - 1) * _BOX

    def log_prob(u):
        inside = (u.abs() <= _BOX).all(-1)
        return torch.where(inside, -2 * math.log(2 * _BOX), -math.inf).double()

    return sample, log_prob


def _run(seed, **options):
    g = torch.Generator().manual_seed(seed)
    sample, log_prob = _base(g)
    options = {"draws": 2000, "target_ess": 4000, "max_rounds": 30} | options
    return adaptive_importance(_two_modes, sample, log_prob, generator=g, **options)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_draws_estimate_the_modes_share_and_the_mean(seed):
    u, log_w = _run(seed)
    ess = importance_ess(log_w).item()
    assert ess >= 4000
    w = torch.softmax(log_w, 0)
    right = (u[:, 0] > 0).double()
    # the self-normalised estimate of a share p has sd about sqrt(p (1 - p) / ESS): 4 sd
    assert abs((w * right).sum().item() - 0.7) < 4 * math.sqrt(0.21 / ess)
    # the weighted mean of u_0 is 0.3 (-3) + 0.7 (3) = 1.2, with sd sqrt(var / ESS), var =
    # 9.09 - 1.2^2 = 7.65 (the mixture's second moment minus its squared mean): 4 sd
    assert abs((w * u[:, 0]).sum().item() - 1.2) < 4 * math.sqrt(7.65 / ess)


def test_adaptation_reaches_an_effective_sample_size_the_base_alone_does_not():
    """From the uniform base the weights' ESS is K / (A * integral of pi^2) = 2,000 / (400 *
    0.58 / (4 pi 0.09)), about 10 a round, so ESS 4,000 would take about 400 rounds; the
    fitted proposals reach it in 7 (seeds 0-2). Bound: 12, 30 times fewer than the base's."""
    u, log_w = _run(0)
    rounds = len(u) // 2000
    first = importance_ess(log_w[:2000] - log_w[:2000].max()).item()
    assert first < 50
    assert rounds <= 12, rounds


def test_the_defensive_base_bounds_every_proposal():
    """Each fitted proposal keeps the base at its ``defensive`` share: log q >= log 0.1 + log
    base everywhere, so no draw's weight exceeds 10 times its weight under the base."""
    g = torch.Generator().manual_seed(3)
    sample, log_prob = _base(g)
    u = sample(5000)
    proposal = importance._fit(u, _two_modes(u) - log_prob(u), 200, (0.1, 0.3, 0.6), g)
    points = torch.cat([sample(2000), proposal.sample(2000, sample, g)])
    base = log_prob(points)
    assert (proposal.log_prob(points, base) >= math.log(0.1) + base - 1e-9).all()


def test_bad_shares_are_refused():
    with pytest.raises(ValueError, match="defensive must be > 0"):
        _run(0, defensive=0.0)
    with pytest.raises(ValueError, match="defensive must be > 0"):
        _run(0, defensive=0.5, gaussian=0.6)


def test_sir_init_keeps_each_modes_share_when_candidates_are_shuffled():
    """Systematic resampling is within one chain of a set's weight only when the set's
    candidates are contiguous; `sir_init` orders them along the weighted principal axis, so
    two modes interleaved at random in the candidates still get their share to one chain."""
    g = torch.Generator().manual_seed(4)
    u, log_w = _run(4)
    order = torch.randperm(len(u), generator=g)
    u, log_w = u[order], log_w[order]
    share = (torch.softmax(log_w, 0) * (u[:, 0] > 0)).sum().item()
    for seed, chains in ((0, 2000), (1, 333)):
        picked = sir_init(u, log_w, chains, torch.Generator().manual_seed(seed))
        assert abs(int((picked[:, 0] > 0).sum()) - share * chains) < 1
