"""The exact posterior, and MCMC on the exact likelihood, sit inside the noise floor's spread:
scored like a method, on every observation of the bimodal and mixture tasks at both stored
sizes, their excess over the floor (in floor sds) is what a draw from the floor's own
distribution gives."""

import pytest
import torch
from scipy import stats

from sbibench import get_method, get_task
from sbibench.models.common import sample
from sbibench.reference.build import FLOOR_DRAWS, FLOOR_SIZES, floor_excess
from sbibench.scoring import FLOOR_SCORES

TASKS = ("two_moons", "gaussian_mixture")


def floor_bound(comparisons: int, alpha: float = 0.01) -> float:
    """How far, in floor sds, an exact score may sit from the floor's mean. The score and the
    floor's FLOOR_DRAWS draws are independent draws of one distribution (the same reference
    against fresh exact samples), so (score - mean) / sd is Student's t with FLOOR_DRAWS - 1
    degrees of freedom times sqrt(1 + 1 / FLOOR_DRAWS) where the scores are normal; the
    family-wise error over all comparisons is held at ``alpha`` (Bonferroni)."""
    t = stats.t.ppf(1 - alpha / (2 * comparisons), FLOOR_DRAWS - 1)
    return float(t * (1 + 1 / FLOOR_DRAWS) ** 0.5)


def _exact(task, k, n, generator):
    return sample(task.posterior(task.observation(k)), n, generator)


def _oracle_mcmc(task, k, n, generator):
    """The shared MCMC sampler with the exact likelihood: NLE's and the NRE family's draws
    carry no sampler error beyond this."""
    posterior = get_method("oracle_mcmc").fit(task, 0, 0)
    return posterior.sample(n, task.observation(k), seed=int(generator.initial_seed()))


@pytest.mark.slow
@pytest.mark.parametrize("draw", [_exact, _oracle_mcmc], ids=["exact", "oracle_mcmc"])
def test_scores_inside_the_floors_spread(draw):
    comparisons = len(TASKS) * 10 * len(FLOOR_SIZES) * len(FLOOR_SCORES)
    bound = floor_bound(comparisons)  # 7.1 floor sds for 120 comparisons
    worst = []
    for name in TASKS:
        task = get_task(name)
        for k in range(1, task.num_observations + 1):
            for n in FLOOR_SIZES:
                # a generator of its own, independent of the floors' draws
                generator = torch.Generator().manual_seed(1000 * k + n)
                excess = floor_excess(task, k, draw(task, k, n, generator))
                worst += [(abs(z), name, k, n, score) for score, z in excess.items()]
    assert max(worst)[0] < bound, sorted(worst)[-5:]
