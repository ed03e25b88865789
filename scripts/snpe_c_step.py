"""Where an SNPE-C training step spends its time, and what Adam's fused kernel or a compiled loss
would save: a script, not asv (it profiles).

    python scripts/snpe_c_step.py [--task two_moons] [--steps 200] [--profile] [--compile]

The step is the one SNPE-C repeats from its second round on: a minibatch of 200 rows, each with
9 other rows as atoms (2,000 flow evaluations), through SNPE-C's own estimator on 5,000 prior
simulations, with the clipping and the Adam that `sbibench.nn.train` uses (foreach). One torch
thread. Printed: FLOPs per step (torch's flop counter: the matrix products, forward and
backward), ms per step and GFLOP/s with the current Adam and with ``fused=True``, timed in
alternating blocks so a machine whose speed drifts slows both alike, and the loss each reaches
(fused is not bit-identical). ``--profile`` adds torch.profiler's ops by self CPU time.

Also printed: the step's matrix products alone (each ``mm``/``addmm`` of one step, replayed on
copies of its inputs), the part of the step that no rewrite of the rest could remove.
``--compile`` adds a third variant, the loss (forward and backward) through ``torch.compile``,
and the seconds its compilation took; its atoms come from inductor's own random numbers, so its
loss is not comparable step for step.
"""

import argparse
import time

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from sbibench import get_method, get_task
from sbibench.methods.base import unconstrained
from sbibench.methods.training import build

BATCH = 200


_PRODUCTS = ("aten.mm.default", "aten.addmm.default")


class _Products(TorchDispatchMode):
    """Keeps each matrix product of the ops it sees, with copies of its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func) in _PRODUCTS:
            copies = [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args]
            self.calls.append((func, copies, kwargs or {}))
        return func(*args, **(kwargs or {}))


def _setup(task_name: str, simulations: int, fused: bool):
    """SNPE-C's atomic loss on its estimator, the data and an optimiser, seeded alike."""
    torch.manual_seed(0)
    task, method = get_task(task_name), get_method("snpe_c")
    generator = torch.Generator().manual_seed(0)
    theta = task.sample_prior(simulations, generator)
    x = task.simulate(theta, generator).float()
    u = unconstrained(task).inv(theta).float()
    estimator = build(method, task, u, x)
    loss_fn, tensors = method._loss(estimator, task, u, x, None, first=False)
    params = [p for p in estimator.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=method.learning_rate, foreach=not fused, fused=fused)
    return loss_fn, tensors, params, optimizer


def _step(loss_fn, tensors, params, optimizer, k: int) -> float:
    lo = (k * BATCH) % (tensors[0].shape[0] - BATCH)
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(*(t[lo : lo + BATCH] for t in tensors))
    loss.backward()
    nn.utils.clip_grad_norm_(params, 5.0)
    optimizer.step()
    return loss.item()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="two_moons")
    parser.add_argument("--simulations", type=int, default=5_000)
    parser.add_argument("--steps", type=int, default=200, help="per variant, in 4 blocks")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--compile", action="store_true", help="time a torch.compile'd loss too")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = {
        name: _setup(args.task, args.simulations, name == "fused") for name in ("foreach", "fused")
    }
    loss_fn, tensors, params, optimizer = _setup(args.task, args.simulations, fused=False)
    with FlopCounterMode(display=False) as counter:
        _step(loss_fn, tensors, params, optimizer, 0)
    flops = counter.get_total_flops()
    print(f"{args.task}: {BATCH} rows x 10 atoms, {flops / 1e6:.0f} MFLOP per step")
    with _Products() as products:
        _step(loss_fn, tensors, params, optimizer, 1)
    if args.compile:
        loss_fn, tensors, params, optimizer = _setup(args.task, args.simulations, fused=False)
        loss_fn = torch.compile(loss_fn, dynamic=False)
        start = time.perf_counter()
        _step(loss_fn, tensors, params, optimizer, 0)
        print(f"torch.compile: {time.perf_counter() - start:.1f} s to compile the loss")
        runs["compiled"] = (loss_fn, tensors, params, optimizer)
    seconds = dict.fromkeys(runs, 0.0)
    losses = dict.fromkeys(runs, 0.0)
    steps = dict.fromkeys(runs, 0)
    # the atoms are drawn from torch's global RNG: each variant keeps its own stream, so both
    # see the same atoms and their losses differ only by the optimiser's arithmetic
    rng = {name: torch.manual_seed(0).get_state() for name in runs}
    product_seconds = 0.0
    for _ in range(4):
        start = time.perf_counter()
        for _ in range(args.steps // 4):
            for func, inputs, kwargs in products.calls:
                func(*inputs, **kwargs)
        product_seconds += time.perf_counter() - start
        for name, (loss_fn, tensors, params, optimizer) in runs.items():
            torch.set_rng_state(rng[name])
            start = time.perf_counter()
            for _ in range(args.steps // 4):
                losses[name] = _step(loss_fn, tensors, params, optimizer, steps[name])
                steps[name] += 1
            seconds[name] += time.perf_counter() - start
            rng[name] = torch.get_rng_state()
    labels = {
        "foreach": "Adam foreach          ",
        "fused": "Adam fused            ",
        "compiled": "compiled loss, foreach",
    }
    for name in runs:
        per_step = seconds[name] / (args.steps // 4 * 4)
        print(
            f"{labels[name]}: {per_step * 1e3:.2f} ms per step, {flops / per_step / 1e9:.1f} "
            f"GFLOP/s, loss after {steps[name]} steps {losses[name]:.6f}"
        )
    per_step = product_seconds / (args.steps // 4 * 4)
    share = per_step / (seconds["foreach"] / (args.steps // 4 * 4))
    print(
        f"matrix products alone: {per_step * 1e3:.2f} ms per step ({len(products.calls)} "
        f"products, {share:.0%} of the foreach step)"
    )
    if args.profile:
        loss_fn, tensors, params, optimizer = runs["foreach"]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for k in range(50):
                _step(loss_fn, tensors, params, optimizer, k)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
