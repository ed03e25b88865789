"""A method's samples scored in floor sds, on every observation of the given tasks.

    python scripts/floor_spread.py METHOD SIZE [TASK ...]

METHOD is ``exact`` (the exact posterior, whose excess is a draw of the floor's own
distribution) or ``oracle_mcmc`` (the exact likelihood through the MCMC sampler that NLE and
the NRE family share); SIZE is a stored floor size (2000 or 10000); the tasks default to the
standard suite's. Prints CSV rows ``method,task,observation,size,seconds,<score>...`` with each
floor score's ``(score - floor mean) / floor sd``, then per task the largest |excess|. The
bound an exact posterior stays under is `tests/reference/test_floor_spread.py`'s. One torch
thread.
"""

import sys
import time

import torch

from sbibench.methods import get_method
from sbibench.reference.build import floor_excess
from sbibench.run.suite import load_suite
from sbibench.scoring import FLOOR_SCORES
from sbibench.task import get_task


def main(method: str, size: int, tasks: list[str]) -> None:
    torch.set_num_threads(1)
    print(f"method,task,observation,size,seconds,{','.join(FLOOR_SCORES)}", flush=True)
    worst = {}
    for name in tasks:
        task = get_task(name)
        posterior = get_method(method).fit(task, 1, seed=0)
        for k in range(1, task.num_observations + 1):
            start = time.perf_counter()
            samples = posterior.sample(size, task.observation(k), seed=7 * k + 1)
            seconds = time.perf_counter() - start
            excess = floor_excess(task, k, samples)
            worst[name] = max(worst.get(name, 0.0), *map(abs, excess.values()))
            cells = ",".join(f"{excess[s]:.2f}" for s in FLOOR_SCORES)
            print(f"{method},{name},{k},{size},{seconds:.1f},{cells}", flush=True)
    for name, value in worst.items():
        print(f"# {name}: largest |excess| {value:.2f} floor sds")


if __name__ == "__main__":
    method, size, *names = sys.argv[1:]
    main(method, int(size), names or list(load_suite("standard").tasks))
