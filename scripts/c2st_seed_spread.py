"""How much C2ST moves with its classifier's seed alone, on fixed draws of real fits, against the
noise a record carries: the binomial sd (``c2st_null_sd``) and the noise sd with the classifier's
training (``c2st_noise_sd``, the larger of the binomial sd and the fold accuracies' standard
error): a script, not asv.

    python scripts/c2st_seed_spread.py [--cells two_moons:npe:1000 normal_mean:npe:1000]
        [--sizes 2000 10000] [--seeds 6] [--patience 5]

Each cell (task:method:simulations) is fitted once (seed 0; a sequential method runs on
observation 1), and n draws for observation 1 (draw seed 0) are scored against the first n
reference samples with C2ST seeds 0 .. seeds - 1. Printed per cell and n: the accuracies, their
sd over seeds (measured), the binomial sd 0.5 / sqrt(2 n) (old), the mean over seeds of the
recorded noise sd (new), and the ratios measured / old and measured / new (at most about 1:
the recorded noise covers the seed spread). ``--patience`` sets the default recipe's patience
(epochs without improvement before each learning-rate drop and the stop; default 5), to see
how much of the spread is training stopped early. One torch thread.
"""

import argparse
import statistics

import torch

from sbibench import get_method, get_task
from sbibench.metrics import c2st

CELLS = [
    "two_moons:npe:1000",
    "two_moons:rej_abc:10000",
    "two_moons:snpe_c:1000",
    "normal_mean:npe:1000",
    "gaussian_mixture:npe:1000",
    "gaussian_linear_uniform:nle:1000",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", nargs="+", default=CELLS, help="task:method:simulations")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10_000])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--patience", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for cell in args.cells:
        task_name, method_name, budget = cell.split(":")
        task, method = get_task(task_name), get_method(method_name)
        x = task.observation(1)
        if hasattr(method, "fit"):
            posterior = method.fit(task, int(budget), 0)
        else:
            posterior = method.run(task, x, int(budget), 0)
        reference = task.reference_samples(1)
        for n in args.sizes:
            samples = posterior.sample(n, x, seed=0)
            scores = [
                c2st(reference[:n], samples, seed=s, patience=args.patience)
                for s in range(args.seeds)
            ]
            values = [score.value for score in scores]
            spread, binomial = statistics.stdev(values), 0.5 / (2 * n) ** 0.5
            noise = statistics.mean(score.details["noise_std"] for score in scores)
            print(
                f"{cell:34s} n={n:6d}: C2ST "
                + " ".join(f"{v:.4f}" for v in values)
                + f" | sd {spread:.4f}, binomial sd {binomial:.4f} (ratio {spread / binomial:.1f}),"
                f" noise sd {noise:.4f} (ratio {spread / noise:.1f}); epochs "
                + " ".join(str(score.details["epochs"]) for score in scores),
                flush=True,
            )


if __name__ == "__main__":
    main()
