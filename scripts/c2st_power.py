"""Power of C2ST's default recipe against sbibm's, on cases with a known Bayes accuracy: a
script, not asv (sbibm's recipe takes minutes at 10,000 samples in 5-D).

    python scripts/c2st_power.py [--sizes 100,200] [--cases shift1d,scale2d] [--recipes sbibench]

For each case and n samples per set, x and y are drawn afresh per seed (data seeds 1000 + s and
2000 + s, C2ST seed s), and each recipe's mean accuracy over the seeds is printed with its
standard error, the paired difference default - sbibm with its standard error, the Bayes
accuracy and the mean seconds per call (one torch thread). Fewer seeds at large n, where both
the cost and the scatter of one accuracy grow and shrink.
"""

import argparse
import math
import time

import torch
from scipy.stats import chi2, norm

from sbibench.metrics import c2st

SEEDS = {100: 20, 200: 20, 300: 12, 500: 12, 1000: 8, 2000: 4, 10_000: 2}


def _bayes_scale(d: int, s: float) -> float:
    """N(0, I) vs N(0, s^2 I) in d dimensions: the Bayes rule thresholds |x|^2."""
    t = 2 * d * math.log(s) * s**2 / (s**2 - 1)
    return 0.5 * (chi2.cdf(t, d) + chi2.sf(t / s**2, d))


def _bayes_mean(d: int, s: float) -> float:
    """N(0, I) vs N(s 1, I) in d dimensions: Phi(|s 1| / 2)."""
    return norm.cdf(s * math.sqrt(d) / 2)


# name: (dimension, shift of y's first coordinate, scale of y, Bayes accuracy, shift every
# coordinate instead of the first)
CASES = {
    "shift1d": (1, 1.0, 1.0, norm.cdf(0.5), False),
    "scale2d": (2, 0.0, 1.5, _bayes_scale(2, 1.5), False),
    "shift5d": (5, 1.0, 1.0, norm.cdf(0.5), False),
    "scale10d": (10, 0.0, 1.1, _bayes_scale(10, 1.1), False),
    # sbibm's size in 10-D: N(0, I) vs N(s, I), s = 0.15, 0.3, 0.6 (Bayes 0.594, 0.682, 0.829)
    "mean10d-0.15": (10, 0.15, 1.0, _bayes_mean(10, 0.15), True),
    "mean10d-0.3": (10, 0.3, 1.0, _bayes_mean(10, 0.3), True),
    "mean10d-0.6": (10, 0.6, 1.0, _bayes_mean(10, 0.6), True),
}


def _normal(
    n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0, every: bool = False
) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(n, d, generator=g)
    x[:, slice(None) if every else 0] += shift
    return x


def _mean_se(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var / len(values))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default=",".join(map(str, SEEDS)))
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--recipes", default="sbibench,sbibm")
    parser.add_argument("--seeds", type=int, help="seeds per size (default: SEEDS)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipes = args.recipes.split(",")
    print(
        f"{'case':12} {'n':>6} {'seeds':>5} "
        + " ".join(f"{r + ' (se)':>16} {'s/call':>6}" for r in recipes)
        + (f" {'diff (se)':>16}" if len(recipes) == 2 else "")
        + f" {'Bayes':>6}",
        flush=True,
    )
    for case in args.cases.split(","):
        d, shift, scale, bayes, every = CASES[case]
        for n in map(int, args.sizes.split(",")):
            seeds = args.seeds or SEEDS.get(n, 4)
            values: dict[str, list[float]] = {r: [] for r in recipes}
            seconds = dict.fromkeys(recipes, 0.0)
            for s in range(seeds):
                x, y = _normal(n, d, 1000 + s), _normal(n, d, 2000 + s, shift, scale, every)
                for r in recipes:
                    start = time.perf_counter()
                    values[r].append(c2st(x, y, seed=s, recipe=r).value)
                    seconds[r] += time.perf_counter() - start
            row = f"{case:12} {n:>6} {seeds:>5} "
            for r in recipes:
                mean, se = _mean_se(values[r])
                row += f" {mean:.4f} ({se:.4f}) {seconds[r] / seeds:>6.2f}"
            if len(recipes) == 2:
                mean, se = _mean_se([a - b for a, b in zip(*values.values(), strict=True)])
                row += f" {mean:+.4f} ({se:.4f})"
            print(row + f" {bayes:.4f}", flush=True)


if __name__ == "__main__":
    main()
