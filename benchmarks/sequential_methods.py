"""Wall time of sequential methods per observation, by phase, with C2ST: a script, not asv
(one SNLE run at 10^4 simulations takes about a minute).

    python benchmarks/sequential_methods.py snle snre [--task normal_mean_variance]

Each method runs on observations 1 and 2 at 10,000 simulations, seed 0, one torch thread;
printed: total seconds, proposal and training seconds, and C2ST of 10,000 draws against the
reference. To compare two revisions, run it from each checkout at the same time (one core each)
or one after the other on an idle machine.
"""

import argparse
import time

import torch

from sbibench import get_method, get_task
from sbibench.metrics import c2st


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("methods", nargs="+")
    parser.add_argument("--task", default="normal_mean_variance")
    parser.add_argument("--simulations", type=int, default=10_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = get_task(args.task)
    for name in args.methods:
        for k in (1, 2):
            start = time.perf_counter()
            posterior = get_method(name).run(task, task.observation(k), args.simulations, 0)
            seconds = time.perf_counter() - start
            samples = posterior.sample(10_000, task.observation(k), seed=0)
            score = c2st(task.reference_samples(k), samples, seed=0).value
            timings = posterior.timings
            print(
                f"{name} obs {k}: {seconds:.1f} s (propose {timings.propose:.1f} s, "
                f"train {timings.train:.1f} s), C2ST {score:.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
