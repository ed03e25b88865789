"""Speed of an ODE posterior's densities at calibration size (FMPE, NPSE).

Calibration's HPD coverage asks ``ODEPosterior.unnormalized_log_prob`` for 1,000 datasets x
(100 draws + the true parameter) paired rows in one call; each RK4 stage takes the exact
divergence, D forward-mode tangents of the field. The field here is FMPE's default
`VectorField` (64, 64, 64) on ``linear_gaussian`` (D = 10, M = 10), untrained (the cost does not
depend on the weights), on 5 RK4 steps instead of FMPE's 50 (the cost is linear in the steps:
multiply by 10) and 200 datasets (20,200 rows, a fifth of a suite's; the cost is linear in
the rows). ``row_block`` is `sbibench.methods.posteriors.ROW_BLOCK`, rows per solve: 100,000
is one solve of every row, as before blocks. One torch thread. At the full 101,000 rows
(`ROWS = 101_000`) a 2-core machine measured 32 s in blocks against 72 s in one solve.

Run under asv, or directly: ``python benchmarks/bench_ode.py``.
"""

import time

import torch

from sbibench import get_task
from sbibench.methods import posteriors
from sbibench.methods.base import Bookkeeping
from sbibench.nn import VectorField, ZScore

ROWS = 20_200  # 200 datasets x (100 draws + 1 true parameter); the full 1,000 cost 5x this
STEPS = 5


def _posterior() -> posteriors.ODEPosterior:
    torch.manual_seed(0)
    task = get_task("linear_gaussian")
    net = VectorField(task.dim_parameters, task.dim_data).eval().requires_grad_(False)
    norm = ZScore(task.dim_parameters)
    times = torch.linspace(0, 1, STEPS + 1)
    return posteriors.ODEPosterior(net, times, 1.0, norm, task, Bookkeeping())


class CalibrationDensities:
    params = [4096, 100_000]
    param_names = ["row_block"]
    timeout = 600
    number = 1
    repeat = 3

    def setup(self, row_block: int) -> None:
        torch.set_num_threads(1)
        self.saved, posteriors.ROW_BLOCK = posteriors.ROW_BLOCK, row_block
        self.posterior = _posterior()
        generator = torch.Generator().manual_seed(1)
        self.theta = self.posterior.task.sample_prior(ROWS, generator)
        self.x = torch.randn(ROWS, self.posterior.task.dim_data, generator=generator)

    def teardown(self, row_block: int) -> None:
        posteriors.ROW_BLOCK = self.saved

    def time_unnormalized_log_prob(self, row_block: int) -> None:
        self.posterior.unnormalized_log_prob(self.theta, self.x)


if __name__ == "__main__":
    bench = CalibrationDensities()
    for _ in range(2):  # interleaved, so load on a shared machine falls on both
        for block in CalibrationDensities.params:
            bench.setup(block)
            start = time.perf_counter()
            bench.time_unnormalized_log_prob(block)
            print(f"row_block {block:>7,}: {time.perf_counter() - start:6.2f} s")
            bench.teardown(block)
