"""oracle_mcmc on two_moons and gaussian_mixture: C2ST at 2,000 draws, seconds, SBC and coverage.

Prints CSV rows ``label,score,task,observation,value,...``; see docs/methods.md, "The MCMC
sampler". One torch thread.
"""

import sys
import time

import torch

from sbibench.methods.exact_likelihood import OracleMCMC
from sbibench.metrics import c2st, ecdf_uniformity, expected_coverage, sbc_ranks
from sbibench.reference.build import noise_floors
from sbibench.task import get_task


def main(label: str) -> None:
    torch.set_num_threads(1)
    for name in ("two_moons", "gaussian_mixture"):
        task = get_task(name)
        post = OracleMCMC().fit(task, 0, 0)
        for k in range(1, 11):
            s = post.sample(2000, task.observation(k).reshape(-1), seed=0)
            score = float(c2st(task.reference_samples(k)[:2000], s))
            floor = noise_floors(task, k, 2000)["c2st"]
            print(f"{label},c2st,{name},{k},{score:.4f},{floor:.4f}", flush=True)
    task = get_task("two_moons")
    post = OracleMCMC().fit(task, 0, 0)
    for k in (1, 5):
        start = time.perf_counter()
        post.sample(10_000, task.observation(k).reshape(-1), seed=1)
        print(f"{label},time10k,two_moons,{k},{time.perf_counter() - start:.2f},", flush=True)
    for name in ("gaussian_mixture", "two_moons"):
        task = get_task(name)
        post = OracleMCMC().fit(task, 0, 0)
        g = torch.Generator().manual_seed(1)
        theta = task.sample_prior(1000, g)
        x = task.simulate(theta, g)
        start = time.perf_counter()
        s = post.sample_batch(100, x, seed=2).transpose(0, 1)
        seconds = time.perf_counter() - start
        p = ecdf_uniformity(sbc_ranks(theta, s), 100).p_value.min()

        def log_prob(v: torch.Tensor, post: OracleMCMC = post, x: torch.Tensor = x) -> torch.Tensor:
            n, m, d = v.shape
            rows = x.repeat_interleave(m, 0)
            return post.unnormalized_log_prob(v.reshape(n * m, d), rows).reshape(n, m)

        deviation = expected_coverage(theta, s, log_prob).max_deviation
        print(f"{label},sbc,{name},1000x100,{p:.2g},{deviation:.3f},{seconds:.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
