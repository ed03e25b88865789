"""Wall time of sequential methods per observation, by phase, with C2ST: a script, not asv
(one SNLE run at 10^4 simulations takes about a minute).

    python scripts/sequential_methods.py snle snre [--task normal_mean_variance] [--rounds]
        [--observations 1 2] [--settings patience=20 patience=10,batch_size=500] [--compile]

Each method runs on observations 1 and 2 (or those given) at 10,000 simulations, seed 0, one
torch thread; printed: total seconds, proposal and training seconds, and C2ST of 10,000 draws
against the reference. ``--settings`` runs each method with each set of settings given (the
method's own keyword arguments, ``key=value`` joined by commas; ``default`` for none), one after
the other on each observation, so the times compare within one run. To compare two
revisions, run it from each checkout at the same time (one core each) or one after the other
on an idle machine. ``--rounds`` also prints every training run (one per round): its rows, the
epochs it ran, the epoch whose weights it kept and its seconds; epochs after the kept one are
early stopping's patience. ``--compile`` runs each method a second time on each observation with
every training loss through ``torch.compile`` (inductor drawing eager's random numbers, so the
atoms and pairs are the same; its fused arithmetic still rounds differently), compilation
included in the seconds.
"""

import argparse
import importlib
import itertools
import pkgutil
import time

import torch

import sbibench.methods
import sbibench.nn
from sbibench import get_method, get_task
from sbibench.metrics import c2st

_COMPILE = {"on": False}


def _wrap_training_runs(report: bool) -> None:
    """Wrap the shared training loop, as every method module imported it: compile the loss
    while ``_COMPILE["on"]``, and print each run if ``report``."""
    original = sbibench.nn.train

    def train(module, loss_fn, tensors, **options):
        if _COMPILE["on"]:
            loss_fn = torch.compile(loss_fn)
        result = original(module, loss_fn, tensors, **options)
        if report:
            print(
                f"  {tensors[0].shape[0]:6d} rows: {result.epochs:4d} epochs, kept epoch "
                f"{result.best_epoch:4d}, {result.seconds:6.1f} s",
                flush=True,
            )
        return result

    for info in pkgutil.iter_modules(sbibench.methods.__path__):
        module = importlib.import_module(f"sbibench.methods.{info.name}")
        if getattr(module, "train", None) is original:
            module.train = train


def _parse_settings(text: str) -> dict:
    """``"patience=10,batch_size=500"`` -> ``{"patience": 10, "batch_size": 500}``; numbers
    become int or float, anything else stays a string; ``"default"`` -> ``{}``."""
    if text == "default":
        return {}
    config = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--settings: expected key=value, got {pair!r} in {text!r}")
        for kind in (int, float):
            try:
                config[key] = kind(value)
                break
            except ValueError:
                continue
        else:
            config[key] = value
    return config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("methods", nargs="+")
    parser.add_argument("--task", default="normal_mean_variance")
    parser.add_argument("--simulations", type=int, default=10_000)
    parser.add_argument("--rounds", action="store_true", help="print every training run")
    parser.add_argument("--observations", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--settings", nargs="+", default=["default"], help="e.g. default patience=10,batch_size=500"
    )
    parser.add_argument("--compile", action="store_true", help="also with compiled losses")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.compile:
        import torch._inductor.config as inductor

        inductor.fallback_random = True  # eager's random numbers
    _wrap_training_runs(report=args.rounds)
    task = get_task(args.task)
    compiled = [False, True] if args.compile else [False]
    for name in args.methods:
        runs = itertools.product(args.observations, args.settings, compiled)
        for k, settings, compile_ in runs:
            config = _parse_settings(settings)
            label = name if not config else f"{name} {settings}"
            label += " compiled" if compile_ else ""
            _COMPILE["on"] = compile_
            start = time.perf_counter()
            method = get_method(name, **config)
            posterior = method.run(task, task.observation(k), args.simulations, 0)
            seconds = time.perf_counter() - start
            samples = posterior.sample(10_000, task.observation(k), seed=0)
            score = c2st(task.reference_samples(k), samples, seed=0).value
            timings = posterior.timings
            print(
                f"{label} obs {k}: {seconds:.1f} s (propose {timings.propose:.1f} s, "
                f"train {timings.train:.1f} s), C2ST {score:.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
