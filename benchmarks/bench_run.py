"""What running each job in a process of its own costs (`sbibench.run.isolation`).

One small job, the exact posterior on ``normal_mean`` scored by its moments on one observation
(no classifier, no calibration), so that the job's own work is small beside the cost of its
process. ``time_in_this_process`` runs it as ``--executor serial`` does; ``time_in_own_process``
as every other executor does: a process forked from the fork server (started once, in setup),
the job's records sent back through a pipe. The difference is the price per job.

Run under asv, or directly: ``python benchmarks/bench_run.py [repeats]``.
"""

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

from sbibench.run.isolation import run_isolated
from sbibench.run.suite import load_suite
from sbibench.run.worker import execute

SUITE = """\
name = "one-job"
tasks = ["normal_mean"]
budgets = [1000]
seeds = [0]
observations = [1]
num_posterior_samples = 1000
metrics = ["moments"]
[sbc]
num_datasets = 0
[methods.exact]
"""


def small_job():
    """The benchmark's one job, on one torch thread."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "one-job.toml"
        path.write_text(SUITE)
        (job,) = load_suite(path).jobs(threads=1)
    return dataclasses.replace(job, timeout=None)


class JobProcess:
    timeout = 120

    def setup(self):
        self.job = small_job()
        for run in (execute, run_isolated):  # imports, caches and the fork server, once
            run(self.job)

    def time_in_this_process(self):
        execute(self.job)

    def time_in_own_process(self):
        run_isolated(self.job)


def main(repeats: int) -> None:
    bench = JobProcess()
    bench.setup()
    for name in ("time_in_this_process", "time_in_own_process"):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            getattr(bench, name)()
            times.append(time.perf_counter() - start)
        times.sort()
        print(f"{name}: median {times[len(times) // 2] * 1000:.0f} ms over {repeats}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
