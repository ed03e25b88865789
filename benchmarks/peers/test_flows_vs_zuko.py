"""MAF and NSF side by side with zuko at equal architecture, in one process.

Run with ``pytest benchmarks/peers/test_flows_vs_zuko.py --benchmark-enable -s`` (needs the
dev extra; the project's pytest options disable benchmarks by default, and ``-s`` shows the
table). Both libraries build 3 transforms with 2 x 50 hidden ReLU conditioners on 10
features and 10 context features; NSF uses 8 bins on [-5, 5]. Timed, with torch on 2
threads: ``log_prob`` of 10,000 points under 10,000 contexts, 10,000 samples for one
context (both without gradients), and one Adam step on ``-log_prob(...).mean()`` at batch
256 (zero_grad, forward, backward, step). zuko's timings include building the conditioned
distribution ``flow(c)``, which is part of its call. The table at the end gives
medians, minima and our/zuko ratios (below 1: sbibench is faster).
"""

import pytest
import torch

zuko = pytest.importorskip("zuko")

from sbibench.nn import MAF, NSF  # noqa: E402

FEATURES, CONTEXT, N, BATCH = 10, 10, 10_000, 256
RESULTS: dict[tuple[str, str, str], tuple[float, float]] = {}


@pytest.fixture(scope="module", autouse=True)
def _two_threads_and_report():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    # Warm the process up (allocator, thread pool, lazy imports): otherwise the first
    # group timed is slowed by first-touch costs that have nothing to do with either library.
    for flow in ("maf", "nsf"):
        for library in ("sbibench", "zuko"):
            fn = _operation(_build(flow, library), "log_prob", library)
            for _ in range(5):
                fn()
    yield
    torch.set_num_threads(threads)
    if not RESULTS:
        return
    print(f"\nsbibench vs zuko {zuko.__version__}, torch {torch.__version__}, 2 threads")
    print(f"{'':22}{'sbibench ms':>14}{'zuko ms':>10}{'ratio':>8}{'ratio(min)':>12}")
    for flow in ("maf", "nsf"):
        for op in ("log_prob", "sample", "train_step"):
            ours, theirs = RESULTS.get((flow, op, "sbibench")), RESULTS.get((flow, op, "zuko"))
            if ours and theirs:
                print(
                    f"{flow + ' ' + op:22}{ours[0]:14.2f}{theirs[0]:10.2f}"
                    f"{ours[0] / theirs[0]:8.2f}{ours[1] / theirs[1]:12.2f}"
                )


def _build(flow: str, library: str) -> torch.nn.Module:
    torch.manual_seed(0)
    arch = {"transforms": 3, "hidden_features": (50, 50)}
    if library == "zuko":
        if flow == "maf":
            return zuko.flows.MAF(FEATURES, CONTEXT, **arch)
        return zuko.flows.NSF(FEATURES, CONTEXT, bins=8, **arch)
    if flow == "maf":
        return MAF(FEATURES, CONTEXT, **arch)
    return NSF(FEATURES, CONTEXT, bins=8, bound=5.0, **arch)


def _operation(model: torch.nn.Module, op: str, library: str):
    g = torch.Generator().manual_seed(1)
    theta, x = torch.randn(N, FEATURES, generator=g), torch.randn(N, CONTEXT, generator=g)
    if library == "zuko":

        def log_prob(t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return model(c).log_prob(t)

        def sample() -> torch.Tensor:
            return model(x[0]).sample((N,))
    else:

        def log_prob(t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return model.log_prob(t, c)

        def sample() -> torch.Tensor:
            return model.sample(N, x[0])

    if op == "log_prob":
        return torch.no_grad()(lambda: log_prob(theta, x))
    if op == "sample":
        return torch.no_grad()(sample)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    t, c = theta[:BATCH], x[:BATCH]

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = -log_prob(t, c).mean()
        loss.backward()
        optimizer.step()

    return train_step


ROUNDS = {"log_prob": 30, "sample": 10, "train_step": 200}


@pytest.mark.parametrize("library", ["sbibench", "zuko"])
@pytest.mark.parametrize("op", ["log_prob", "sample", "train_step"])
@pytest.mark.parametrize("flow", ["maf", "nsf"])
def test_flow_vs_zuko(benchmark, flow: str, op: str, library: str) -> None:
    fn = _operation(_build(flow, library), op, library)
    benchmark.group = f"{flow} {op}"
    benchmark.pedantic(fn, rounds=ROUNDS[op], warmup_rounds=3, iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        stats = benchmark.stats.stats
        RESULTS[flow, op, library] = (stats.median * 1e3, stats.min * 1e3)
