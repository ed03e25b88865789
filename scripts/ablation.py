"""One setting changed at a time: a suite's method beside variants of it, scored on the same
observations with the same seeds (the ablation tables of docs/methods.md).

    python scripts/ablation.py sbibm npe two_moons 1000 '{}' '{"batch_size": 200}' \
        [--observations 1 2 3] [--sbibm]

The method is the suite's label (its settings as the suite runs it) or any method's name
(its defaults); each variant is a JSON
object of settings laid over those (``{}``: the suite's own). An amortized method is fitted
once per variant and queried on every observation; a sequential one runs per observation.
Printed per variant: the mean C2ST (our default recipe, and sbibm's with ``--sbibm``) of 10,000
draws against the reference over the observations, its standard error over them, the paired
difference from the first variant with its paired se, the per-observation values, and the
training runs' epochs. Fits use seed 0 (or each of ``--seeds``: the se then spans the fits too), draws seed 1000 +
observation: the variants differ only by their settings. One torch thread.
"""

import argparse
import json
import math
import statistics

import torch

from sbibench import get_method, get_task
from sbibench.methods import is_amortized
from sbibench.metrics import c2st
from sbibench.run.suite import load_suite

EPOCHS: list[int] = []


def _count_epochs() -> None:
    """Wrap the shared training loop, as each method module imported it, to note its epochs."""
    import importlib
    import pkgutil

    import sbibench.methods
    import sbibench.nn

    original = sbibench.nn.train

    def train(module, loss_fn, tensors, **options):
        result = original(module, loss_fn, tensors, **options)
        EPOCHS.append(result.epochs)
        return result

    for info in pkgutil.iter_modules(sbibench.methods.__path__):
        module = importlib.import_module(f"sbibench.methods.{info.name}")
        if getattr(module, "train", None) is original:
            module.train = train


def _scores(name, config, task, budget, observations, sbibm, seed):
    """Per observation: (default C2ST, sbibm C2ST or None)."""
    method = get_method(name, **config)
    fitted = method.fit(task, budget, seed) if is_amortized(method) else None
    scores = []
    for k in observations:
        x = task.observation(k)
        posterior = fitted if fitted is not None else method.run(task, x, budget, seed)
        draws = posterior.sample(10_000, x, seed=1000 + k)
        reference = task.reference_samples(k)[:10_000]
        ours = c2st(reference, draws, seed=0).value
        theirs = c2st(reference, draws, seed=0, recipe="sbibm").value if sbibm else None
        scores.append((ours, theirs))
    return scores


def _line(label, values, first):
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    text = f"{label}: {mean:.3f} ± {se:.3f}"
    if first is not None and len(values) > 1:
        diffs = [a - b for a, b in zip(values, first, strict=True)]
        paired = statistics.stdev(diffs) / math.sqrt(len(diffs))
        text += f", vs first {statistics.fmean(diffs):+.3f} ± {paired:.3f}"
    return text + "  [" + " ".join(f"{v:.3f}" for v in values) + "]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("label", help="the suite's method label, or any method's name")
    parser.add_argument("task")
    parser.add_argument("budget", type=int)
    parser.add_argument("variants", nargs="+", help="JSON objects of settings; {} for none")
    parser.add_argument("--observations", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--sbibm", action="store_true", help="also sbibm's C2ST recipe")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="fit seeds: each variant is fitted "
        "with each, and its values are the observations' of every seed in turn",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    _count_epochs()
    name, base = load_suite(args.suite).methods.get(args.label, (args.label, {}))
    task = get_task(args.task)
    first = {}
    for text in args.variants:
        config = {**base, **json.loads(text)}
        EPOCHS.clear()
        scores = [
            score
            for seed in args.seeds
            for score in _scores(
                name, config, task, args.budget, args.observations, args.sbibm, seed
            )
        ]
        label = f"{args.label} {text}"
        ours = [s[0] for s in scores]
        print(_line(f"{label} C2ST", ours, first.get("ours")), flush=True)
        first.setdefault("ours", ours)
        if args.sbibm:
            theirs = [s[1] for s in scores]
            print(_line(f"{label} C2ST (sbibm)", theirs, first.get("sbibm")), flush=True)
            first.setdefault("sbibm", theirs)
        print(f"  epochs per training run: {EPOCHS}", flush=True)


if __name__ == "__main__":
    main()
