"""C2ST next to sbi's: time and accuracy on the same inputs (a pytest-benchmark comparison).

Run explicitly (the default test run does not collect benchmarks/):

    python -m pytest benchmarks/peers/test_c2st_vs_sbi.py --benchmark-enable -s

Inputs: 10,000 vs 10,000 samples of N(0, I) and N((1, 0, ..., 0), I) in 2-D and 10-D, whose
Bayes accuracy is Phi(1/2) = 0.6915. sbi's options are slow (20-40 s a call), so they run
``SBIBENCH_PEER_ROUNDS`` rounds (default 1); ours runs 3. A table is printed at the end.

Every implementation runs on one thread (torch and the BLAS under scikit-learn): on a shared
2-core machine, two threads made both our MLP and sbi's 5-30x slower and the timings
meaningless. Set ``SBIBENCH_PEER_THREADS`` to change it on a quiet machine.
"""

import os

import pytest
import torch
from scipy.stats import norm

from sbibench.metrics import c2st

sbi_metrics = pytest.importorskip("sbi.utils.metrics")
threadpool_limits = pytest.importorskip("threadpoolctl").threadpool_limits  # via scikit-learn

NUM_SAMPLES = 10_000
PEER_ROUNDS = int(os.environ.get("SBIBENCH_PEER_ROUNDS", "1"))
THREADS = int(os.environ.get("SBIBENCH_PEER_THREADS", "1"))
RESULTS: dict[tuple[str, int], tuple[float, float]] = {}


def _inputs(dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(NUM_SAMPLES, dim, generator=g)
    y = torch.randn(NUM_SAMPLES, dim, generator=g)
    y[:, 0] += 1.0
    return x, y


IMPLEMENTATIONS = {
    "sbibench": (lambda x, y: c2st(x, y, seed=0, num_threads=THREADS).value, 3),
    "sbi-rf": (lambda x, y: float(sbi_metrics.c2st(x, y, seed=0, classifier="rf")), PEER_ROUNDS),
    "sbi-mlp": (lambda x, y: float(sbi_metrics.c2st(x, y, seed=0, classifier="mlp")), PEER_ROUNDS),
}


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if not RESULTS:
        return
    optimum = norm.cdf(0.5)
    print(f"\nC2ST, {NUM_SAMPLES} vs {NUM_SAMPLES}, optimum {optimum:.4f}, threads {THREADS}")
    print(
        f"{'implementation':<16}{'dim':>4}{'median s':>10}{'accuracy':>10}{'error':>9}{'speed-up':>10}"
    )
    for (name, dim), (seconds, acc) in sorted(RESULTS.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ours = RESULTS.get(("sbibench", dim), (float("nan"),))[0]
        print(
            f"{name:<16}{dim:>4}{seconds:>10.2f}{acc:>10.4f}{acc - norm.cdf(0.5):>+9.4f}"
            f"{seconds / ours:>9.1f}x"
        )


@pytest.mark.parametrize("dim", [2, 10])
@pytest.mark.parametrize("name", list(IMPLEMENTATIONS))
def test_c2st(benchmark, name, dim):
    x, y = _inputs(dim)
    fn, rounds = IMPLEMENTATIONS[name]
    torch.set_num_threads(THREADS)
    with threadpool_limits(limits=THREADS):
        accuracy = benchmark.pedantic(fn, args=(x, y), rounds=rounds, iterations=1)
    benchmark.extra_info["accuracy"] = accuracy
    if benchmark.stats is not None:
        RESULTS[(name, dim)] = (benchmark.stats.stats.median, accuracy)
    assert 0.6 < accuracy < 0.75
