"""The shared MCMC sampler before and after its start and chain count changed: a method's draws
scored in floor sds on two_moons and gaussian_mixture (or the given tasks).

    python scripts/mcmc_sampler_compare.py METHOD BUDGET SIZE [--tasks T ...] [--observations K ...]

METHOD is ``oracle_mcmc`` (exact likelihood), ``nle``, ``snre`` or any method sampled by
`sbibench.methods.mcmc_posterior.MCMCPosterior`. Each fit (seed 0; a sequential method is fitted
on each observation) is sampled twice with the same draw seed as `scripts/floor_spread.py`:

- ``before``: 500 chains, every sweep kept, starts drawn independently (multinomial SIR);
- ``after``: the defaults (2,000 chains, every second sweep kept, systematic SIR).

Prints CSV rows ``sampler,method,task,observation,size,seconds,<score>...`` with each floor
score's excess over its floor in floor sds (`sbibench.reference.build.floor_excess`), then per
task and sampler the largest |excess|.
Seconds are the sampling alone, on one torch thread; compare them only within one run.
"""

import argparse
import dataclasses
import math
import time

import torch

from sbibench.methods import get_method, mcmc_posterior
from sbibench.reference.build import floor_excess
from sbibench.scoring import FLOOR_SCORES
from sbibench.task import get_task


def _multinomial(candidates, log_weights, num_chains, generator):
    """The start before: independent SIR draws (binomial noise in each mode's share)."""
    w = torch.nan_to_num(log_weights.double(), nan=-math.inf, posinf=math.inf)
    p = torch.softmax(w, 0)
    return candidates[torch.multinomial(p, num_chains, replacement=True, generator=generator)]


SAMPLERS = {
    "before": ({"num_chains": 500, "thin": 1}, _multinomial),
    "after": ({}, mcmc_posterior.sir_init),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("method")
    parser.add_argument("budget", type=int)
    parser.add_argument("size", type=int)
    parser.add_argument("--tasks", nargs="+", default=["two_moons", "gaussian_mixture"])
    parser.add_argument("--observations", type=int, nargs="+", default=list(range(1, 11)))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"sampler,method,task,observation,size,seconds,{','.join(FLOOR_SCORES)}", flush=True)
    worst: dict[tuple[str, str], float] = {}
    for name in args.tasks:
        task = get_task(name)
        method = get_method(args.method)
        sequential = not hasattr(method, "fit")
        posterior = None if sequential else method.fit(task, args.budget, seed=0)
        for k in args.observations:
            x = task.observation(k)
            if sequential:
                posterior = method.run(task, x, args.budget, 0)
            defaults = posterior.settings
            for label, (changes, start) in SAMPLERS.items():
                posterior.settings = dataclasses.replace(defaults, **changes)
                mcmc_posterior.sir_init = start
                begin = time.perf_counter()
                samples = posterior.sample(args.size, x, seed=7 * k + 1)
                seconds = time.perf_counter() - begin
                excess = floor_excess(task, k, samples)
                key = (name, label)
                worst[key] = max(worst.get(key, 0.0), *map(abs, excess.values()))
                cells = ",".join(f"{excess[s]:.2f}" for s in FLOOR_SCORES)
                print(f"{label},{args.method},{name},{k},{args.size},{seconds:.1f},{cells}",
                      flush=True)  # fmt: skip
            posterior.settings = defaults
    for (name, label), value in worst.items():
        print(f"# {name} {label}: largest |excess| {value:.2f} floor sds")


if __name__ == "__main__":
    main()
