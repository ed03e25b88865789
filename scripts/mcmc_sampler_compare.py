"""The shared MCMC sampler's start before and after adaptive importance sampling: a method's
draws scored in floor sds on two_moons and gaussian_mixture (or the given tasks).

    python scripts/mcmc_sampler_compare.py METHOD BUDGET SIZE [--tasks T ...] [--observations K ...]

METHOD is ``oracle_mcmc`` (exact likelihood), ``nle``, ``snre`` or any method sampled by
`sbibench.methods.mcmc_posterior.MCMCPosterior`. Each fit (seed 0; a sequential method is fitted
on each observation) is sampled twice with the same draw seed as `scripts/floor_spread.py`,


- ``before``: 2,000 chains, 50 warm-up sweeps, every second sweep kept, started by systematic
  SIR, in the candidates' own order, from rounds of prior draws (until the weights' effective
  sample size reaches the chains' number);
- ``after``: the defaults: one chain per draw, 20 warm-up sweeps, started from rounds of
  adaptive importance sampling (`sbibench.importance`) until the effective sample size reaches
  twice the draws, then systematic SIR along the weighted draws' principal axis
  (`sbibench.mcmc.sir_init`).

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

from sbibench import importance
from sbibench.mcmc import importance_ess
from sbibench.methods import get_method, mcmc_posterior
from sbibench.reference.build import floor_excess
from sbibench.scoring import FLOOR_SCORES
from sbibench.task import get_task


def _prior_rounds(log_target, sample_base, log_base, *, draws, target_ess, max_rounds, generator):
    """The start before: rounds of prior draws until the ESS reaches the chains' number."""
    chains = 2000
    u, log_w = [], []
    for _ in range(max_rounds):
        new = sample_base(draws).double()
        u.append(new)
        log_w.append((log_target(new) - log_base(new)).nan_to_num(-math.inf))
        if importance_ess(torch.cat(log_w)) >= min(target_ess, chains):
            break
    return torch.cat(u), torch.cat(log_w)


def _systematic_unsorted(candidates, log_weights, num_chains, generator):
    """SIR before: systematic positions on the candidates in their own (random) order."""
    w = torch.nan_to_num(log_weights.double(), nan=-math.inf, posinf=math.inf)
    cumulative = torch.softmax(w, 0).cumsum(0)
    cumulative = cumulative / cumulative[-1]
    offset = torch.rand(1, generator=generator, dtype=torch.float64)
    positions = (offset + torch.arange(num_chains, dtype=torch.float64)) / num_chains
    picked = torch.searchsorted(cumulative, positions)
    return candidates[picked[torch.randperm(num_chains, generator=generator)]]


SAMPLERS = {
    "before": (_prior_rounds, _systematic_unsorted, {"num_chains": 2000, "warmup": 50, "thin": 2}),
    "after": (importance.adaptive_importance, mcmc_posterior.sir_init, {}),
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
            for label, (rounds, start, changes) in SAMPLERS.items():
                mcmc_posterior.adaptive_importance, mcmc_posterior.sir_init = rounds, start
                posterior.settings = dataclasses.replace(defaults, **changes)
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
