"""Speed of calibrating an MCMC-based method: SBC and HPD coverage for NLE on linear_gaussian.

NLE (default configuration) is fitted once on ``linear_gaussian`` (D = 10) with 10,000
simulations (seed 0). ``time_calibrate`` runs what a suite runs for it
(`sbibench.run.worker._calibrate`): 1,000 prior-predictive datasets x 100 posterior draws in one
vectorised MCMC run (`MCMCPosterior.sample_batch`), SBC ranks, and HPD coverage from the
unnormalised density in batched calls. ``time_seeded_sample_per_dataset`` is the path that
calibration took before: a seeded ``sample`` of 100 draws for 2 datasets, one full MCMC each
(the defaults: one chain per draw, 20 warm-up sweeps, started from rounds of 10,000
importance draws); multiply by 500 for 1,000 datasets.
Torch runs on 2 threads (the 2 cores the target of 60 s refers to).

Run under asv, or directly: ``python benchmarks/bench_calibration.py [num_datasets]``.
"""

import time
from types import SimpleNamespace

import torch

from sbibench import get_method, get_task
from sbibench.methods.base import Bookkeeping
from sbibench.methods.mcmc_posterior import MCMCPosterior
from sbibench.methods.nle import likelihood_potential
from sbibench.run.worker import _calibrate

THREADS = 2
DATASETS = 1_000
DRAWS = 100


def _fit() -> torch.nn.Module:
    """The trained NLE estimator (picklable, unlike the posterior's closure)."""
    torch.set_num_threads(THREADS)
    task = get_task("linear_gaussian")
    posterior = get_method("nle").fit(task, 10_000, 0)
    (estimator,) = (
        cell.cell_contents
        for cell in posterior.potential.__closure__
        if isinstance(cell.cell_contents, torch.nn.Module)
    )
    return estimator


def _posterior(estimator: torch.nn.Module) -> MCMCPosterior:
    task = get_task("linear_gaussian")
    potential = likelihood_potential(estimator, task, summary=False)
    return MCMCPosterior(potential, task, get_method("nle"), Bookkeeping())


class CalibrateNLE:
    timeout = 1200
    number = 1
    repeat = 1
    rounds = 1

    def setup_cache(self) -> torch.nn.Module:
        return _fit()

    def setup(self, estimator: torch.nn.Module) -> None:
        torch.set_num_threads(THREADS)
        self.posterior = _posterior(estimator)
        self.task = self.posterior.task
        self.job = SimpleNamespace(key="bench", sbc_datasets=DATASETS, sbc_samples=DRAWS)
        generator = torch.Generator().manual_seed(1)
        self.x = self.task.simulate(self.task.sample_prior(2, generator), generator)

    def time_calibrate(self, estimator: torch.nn.Module) -> None:
        _calibrate(self.task, self.posterior, self.job)

    def time_seeded_sample_per_dataset(self, estimator: torch.nn.Module) -> None:
        self.posterior.sample(DRAWS, self.x, seed=0)


if __name__ == "__main__":
    import sys

    datasets = int(sys.argv[1]) if len(sys.argv) > 1 else DATASETS
    posterior = _posterior(_fit())
    job = SimpleNamespace(key="bench", sbc_datasets=datasets, sbc_samples=DRAWS)
    wall, cpu = time.perf_counter(), time.process_time()
    summary, _ = _calibrate(posterior.task, posterior, job)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{datasets} datasets x {DRAWS} draws, {THREADS} threads: {wall:.1f} s wall, {cpu:.1f} s CPU"
    )
    print(summary)
