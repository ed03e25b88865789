"""Is a fit's SBC verdict moved by its training or by SBC's own draws? NPE on poisson_gamma.

Fits NPE (default settings) at one budget under several training seeds, then calibrates each
fit as the worker does (1,000 datasets x 100 draws) under several SBC seeds, and prints the
smallest ECDF p-value (SBC and coverage ranks), the rank-shape z-scores and the bootstrap
90% range of the p-value. Between-fit spread: the same SBC seed across fits; within-fit
spread: the same fit across SBC seeds. One thread; about two minutes at 10^4.

    python scripts/sbc_spread.py --budget 10000 --fits 4 --sbc-seeds 3
"""

import argparse
import time
from types import SimpleNamespace

import numpy as np
import torch

from sbibench.methods import get_method
from sbibench.metrics import ecdf_p_quantiles
from sbibench.run.worker import _calibrate
from sbibench.task import get_task


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="poisson_gamma")
    parser.add_argument("--budget", type=int, default=10000)
    parser.add_argument("--fits", type=int, default=4)
    parser.add_argument("--sbc-seeds", type=int, default=3)
    parser.add_argument("--datasets", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = get_task(args.task)
    print("fit  sbc  sbc_p      cov_p      bias_z  disp_z  cov_dev   boot 5%-95% of min p")
    for seed in range(args.fits):
        start = time.perf_counter()
        posterior = get_method("npe").fit(task, args.budget, seed)
        trained = time.perf_counter() - start
        for s in range(args.sbc_seeds):
            job = SimpleNamespace(key=f"spread-{s}", sbc_datasets=args.datasets, sbc_samples=100)
            summary, kept = _calibrate(task, posterior, job)
            both = np.column_stack([kept["ranks"], kept["coverage_ranks"]])
            lo, hi = ecdf_p_quantiles(both, 100)
            print(
                f"{seed:>3} {s:>4}  {summary['sbc_ecdf_p_min']:<9.2g}  "
                f"{summary['coverage_ecdf_p']:<9.2g}  {summary['sbc_bias_z']:>6.2f}  "
                f"{summary['sbc_dispersion_z']:>6.2f}  {summary['coverage_mean_deviation']:>+.4f}"
                f"   {lo:.2g} - {hi:.2g}",
                flush=True,
            )
        print(f"     (fit {seed} trained in {trained:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
