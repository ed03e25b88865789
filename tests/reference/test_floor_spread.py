"""The exact posterior sits inside its noise floor's spread: scored like a method, on every
observation of the bimodal and mixture tasks at both stored sizes, its excess over the floor
(in floor sds) is what a draw from the floor's own distribution gives."""

import pytest
import torch
from scipy import stats

from sbibench import get_task
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


@pytest.mark.slow
def test_the_exact_posterior_scores_inside_its_floors_spread():
    comparisons = len(TASKS) * 10 * len(FLOOR_SIZES) * len(FLOOR_SCORES)
    bound = floor_bound(comparisons)  # 7.1 floor sds for 120 comparisons
    worst = []
    for name in TASKS:
        task = get_task(name)
        for k in range(1, task.num_observations + 1):
            for n in FLOOR_SIZES:
                # a generator of its own, independent of the floors' draws
                generator = torch.Generator().manual_seed(1000 * k + n)
                exact = sample(task.posterior(task.observation(k)), n, generator)
                excess = floor_excess(task, k, exact)
                worst += [(abs(z), name, k, n, score) for score, z in excess.items()]
    assert max(worst)[0] < bound, sorted(worst)[-5:]
