"""NLE and NRE side by side with the sbi package's: same task, budget, observations, process.

Run with ``pytest benchmarks/peers/test_nle_nre_vs_sbi.py -s`` (needs the dev extra). On
``linear_gaussian`` with 1,000 simulations it trains sbibench's ``nle`` and ``nre`` and sbi's
``NLE`` and ``NRE`` (defaults, MCMC by slice sampling in both), then draws 10,000 posterior
samples per observation from ours (and from ``oracle_mcmc``, the same sampler on the exact
likelihood: what a perfect estimator would score) and 1,000 from sbi's, and prints wall times
and sbibench's C2ST against the reference posterior: on 1,000 vs 1,000 samples for everyone
(sbi's sample size), and on 10,000 vs 10,000 for ours. Torch runs on 2 threads. The test
fails if our 10,000 samples take longer than sbi's 1,000, or if ours are less accurate than
sbi's beyond the C2ST's noise (sd about 0.012 at 1,000 vs 1,000).
"""

import time

import pytest
import torch

from sbibench import get_task
from sbibench.methods import get_method
from sbibench.metrics import c2st

pytest.importorskip("sbi")

OBSERVATIONS = (1, 2)
BUDGET = 1000


def _run(method, task, num_samples):
    start = time.perf_counter()
    posterior = method.fit(task, BUDGET, 0)
    trained = time.perf_counter() - start
    times, small, large = [], [], []
    for k in OBSERVATIONS:
        start = time.perf_counter()
        samples = posterior.sample(num_samples, task.observation(k), seed=k)
        times.append(time.perf_counter() - start)
        reference = task.reference_samples(k)
        small.append(c2st(reference[:1000], samples[:1000], seed=0).value)
        if num_samples >= 10_000:
            large.append(c2st(reference, samples[:10_000], seed=0).value)
    return trained, times, small, large


def _mean(values):
    return sum(values) / len(values) if values else float("nan")


def test_nle_and_nre_against_sbi_on_linear_gaussian():
    torch.set_num_threads(2)
    task = get_task("linear_gaussian")
    rows = {
        "oracle_mcmc": _run(get_method("oracle_mcmc"), task, 10_000),
        "sbibench nle": _run(get_method("nle"), task, 10_000),
        "sbi NLE": _run(get_method("sbi", inference="NLE"), task, 1000),
        "sbibench nre": _run(get_method("nre"), task, 10_000),
        "sbi NRE": _run(get_method("sbi", inference="NRE"), task, 1000),
    }
    print(f"\nlinear_gaussian, {BUDGET} simulations, observations {OBSERVATIONS}, 2 threads")
    print(
        f"{'':14}{'train s':>9}{'samples':>9}{'s/obs':>8}  C2ST 1k vs 1k (mean)   C2ST 10k (mean)"
    )
    for label, (trained, times, small, large) in rows.items():
        n = "1,000" if label.startswith("sbi ") else "10,000"
        row_small = " ".join(f"{s:.3f}" for s in small)
        row_large = " ".join(f"{s:.3f}" for s in large)
        print(
            f"{label:14}{trained:9.1f}{n:>9}{_mean(times):8.1f}  {row_small} ({_mean(small):.3f})"
            f"   {row_large} ({_mean(large):.3f})"
        )
    for ours, theirs in (("sbibench nle", "sbi NLE"), ("sbibench nre", "sbi NRE")):
        assert _mean(rows[ours][1]) < _mean(rows[theirs][1])
        assert _mean(rows[ours][2]) <= _mean(rows[theirs][2]) + 0.03
