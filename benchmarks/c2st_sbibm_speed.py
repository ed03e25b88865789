"""sbibm's C2ST recipe: our torch port against scikit-learn's ``MLPClassifier`` configured as
sbibm 1.1.0 calls it, on the same data, in the same run, on the same number of threads.

The data: 10,000 vs 10,000 draws in 10-D, N(0, I) against N(0.15 * 1, I), whose Bayes
accuracy is Phi(0.15 sqrt(10) / 2) = 0.594. Both sides z-score with the first set's mean and
sd and run 5-fold cross-validation of an MLP (10 D, 10 D) with Adam, minibatches of 200, an L2
penalty of 1e-4, trained until the training loss stalls (no improvement by 1e-4 for more than
10 epochs). scikit-learn's BLAS threads are limited with threadpoolctl, ours with torch.

The floating-point work is counted from the epochs our port ran: per training row and model
step, the forward pass of the 10 -> 100 -> 100 -> 1 network and its backward pass (weights'
and inputs' gradients but the first layer's inputs') come to ``6 (10*100 + 100*100 + 100) -
2 * 10 * 100`` = 64,600 floating-point operations; times the rows of a training fold (16,000),
the folds (5) and the epochs. Dividing by the time gives the rate the port runs at, to set
beside what one core's matrix products reach on this machine (printed too).

Run: ``python benchmarks/c2st_sbibm_speed.py [threads ...]`` (default: 1 2). Takes about 15
minutes a thread count, scikit-learn's side most of it; ``--ours-only`` skips it.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from sbibench.metrics import c2st

N, DIM, SHIFT = 10_000, 10, 0.15
BAYES = 0.5 * (1 + math.erf(SHIFT * math.sqrt(DIM) / 2 / math.sqrt(2)))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, DIM, generator=g, dtype=torch.float64)
    y = torch.randn(N, DIM, generator=g, dtype=torch.float64) + SHIFT
    return x, y


def flops_per_epoch(n: int = N, dim: int = DIM, folds: int = 5) -> float:
    """Floating-point operations of one epoch of every fold model (see the module docstring)."""
    hidden = 10 * dim
    per_row = 6 * (dim * hidden + hidden * hidden + hidden) - 2 * dim * hidden
    rows = 2 * n - math.ceil(2 * n / folds)  # a training fold
    return per_row * rows * folds


def sklearn_sbibm(x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> float:
    """sbibm 1.1.0's ``c2st`` (sbibm/metrics/c2st.py) in substance, on scikit-learn."""
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neural_network import MLPClassifier

    mean, std = x.mean(0), x.std(0)
    x, y = (x - mean) / std, (y - mean) / std
    classifier = MLPClassifier(
        activation="relu", hidden_layer_sizes=(10 * DIM, 10 * DIM), max_iter=10000,
        solver="adam", random_state=seed,
    )  # fmt: skip
    inputs = np.concatenate((x.numpy(), y.numpy())).astype(np.float32)
    target = np.concatenate((np.zeros(len(x)), np.ones(len(y))))
    folds = KFold(n_splits=5, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(classifier, inputs, target, cv=folds)))


def matmul_rate(threads: int) -> float:
    """GFLOP/s of the port's largest product, (5, 200, 100) x (5, 100, 100), on ``threads``."""
    torch.set_num_threads(threads)
    a, b = torch.randn(5, 200, 100), torch.randn(5, 100, 100)
    for _ in range(50):
        torch.bmm(a, b)
    start, repeats = time.perf_counter(), 500
    for _ in range(repeats):
        torch.bmm(a, b)
    return 2 * 5 * 200 * 100 * 100 * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--ours-only", action="store_true")
    args = parser.parse_args()
    x, y = data()
    print(f"10,000 vs 10,000 in 10-D, Bayes accuracy {BAYES:.3f}")
    for threads in args.threads:
        start = time.perf_counter()
        ours = c2st(x, y, seed=0, recipe="sbibm", num_threads=threads)
        ours_s = time.perf_counter() - start
        epochs = ours.details["epochs"]
        rate = flops_per_epoch() * epochs / ours_s / 1e9
        print(
            f"threads {threads}: ours {ours.value:.4f} in {ours_s:.1f} s ({epochs} epochs, "
            f"{flops_per_epoch() * epochs / 1e12:.2f} TFLOP, {rate:.1f} GFLOP/s; the largest "
            f"product alone runs at {matmul_rate(threads):.1f} GFLOP/s)",
            flush=True,
        )
        if args.ours_only:
            continue
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            start = time.perf_counter()
            theirs = sklearn_sbibm(x, y)
            theirs_s = time.perf_counter() - start
        print(
            f"threads {threads}: scikit-learn {theirs:.4f} in {theirs_s:.1f} s; "
            f"ours is {theirs_s / ours_s:.1f}x faster",
            flush=True,
        )


if __name__ == "__main__":
    main()
