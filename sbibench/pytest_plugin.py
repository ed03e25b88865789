"""A pytest plugin for other projects' CI: task fixtures and posterior assertions.

Installed with sbibench (entry point ``pytest11``) and inert until used: it imports nothing
heavy until a test asks for ``sbibench_task`` or calls an assertion.

    from sbibench.pytest_plugin import assert_calibrated, assert_posterior_close

    def test_my_npe(sbibench_task):              # runs once per task (--sbibench-tasks)
        posterior = my_method.fit(sbibench_task, 1000, seed=0)
        x = sbibench_task.observation(1)
        assert_posterior_close(posterior.sample(2000, x), sbibench_task, 1, max_c2st=0.6)
        assert_calibrated(posterior, sbibench_task)
"""

from __future__ import annotations

from typing import Any

import pytest

# The plugin loads in every pytest run wherever sbibench is installed: its functions import
# sbibench's tasks and metrics (torch) only when a test uses them.

__all__ = ["assert_calibrated", "assert_posterior_close", "sbibench_task"]

DEFAULT_TASKS = "normal_mean,poisson_gamma"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sbibench")
    group.addoption(
        "--sbibench-tasks",
        default=DEFAULT_TASKS,
        help=f"comma-separated tasks for the sbibench_task fixture (default {DEFAULT_TASKS}; 'all')",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sbibench_task" in metafunc.fixturenames:
        names = metafunc.config.getoption("--sbibench-tasks")
        if names == "all":
            from sbibench.task import list_tasks

            tasks = list_tasks()
        else:
            tasks = [name.strip() for name in names.split(",") if name.strip()]
        metafunc.parametrize("sbibench_task", tasks, indirect=True)


@pytest.fixture
def sbibench_task(request: pytest.FixtureRequest) -> Any:
    """An sbibench `Task`, parametrised over ``--sbibench-tasks``."""
    from sbibench.task import get_task

    return get_task(getattr(request, "param", "normal_mean"))


def assert_posterior_close(
    samples: Any, task: Any, observation: int, max_c2st: float = 0.6, seed: int = 0
) -> float:
    """Fail unless C2ST between ``samples`` (N, D) and the task's reference samples for
    ``observation`` is at most ``max_c2st``; returns the C2ST. At most 10,000 samples are used;
    the message gives the C2ST's noise sd (its classifier's training included, not only the
    binomial sd of its held-out points: `sbibench.metrics.c2st`), to set ``max_c2st`` a few
    of them above what the method scores, and the noise floor (what the exact posterior
    scores at that size)."""
    import torch

    from sbibench.metrics import c2st
    from sbibench.models.common import sample

    samples = torch.as_tensor(samples, dtype=torch.float64)
    if samples.ndim != 2 or samples.shape[1] != task.dim_parameters:
        raise ValueError(f"samples must be (N, {task.dim_parameters}), got {tuple(samples.shape)}")
    n = min(len(samples), task.num_reference_samples)
    reference = task.reference_samples(observation)[:n]
    score = c2st(reference, samples[:n], seed=seed)
    value = score.value
    if value > max_c2st:
        exact = sample(
            task.posterior(task.observation(observation)), n, torch.Generator().manual_seed(seed)
        )
        floor = c2st(reference, exact, seed=seed).value
        raise AssertionError(
            f"C2ST {value:.3f} (noise sd {score.details['noise_std']:.3f}) > {max_c2st} on task "
            f"{task.name!r}, observation {observation} ({n} samples; the exact posterior "
            f"scores {floor:.3f})"
        )
    return value


def assert_calibrated(
    posterior: Any,
    task: Any,
    num_datasets: int = 200,
    num_samples: int = 100,
    alpha: float = 0.01,
    seed: int = 0,
) -> None:
    """Fail if simulation-based calibration rejects uniform ranks in any dimension (the ECDF
    test with simultaneous bands at level ``alpha``, Bonferroni-corrected over dimensions).
    ``posterior.sample(n, x)`` must accept a batch x (B, M) and return (n, B, D)."""
    import torch

    from sbibench.failures import simulate_or_nan
    from sbibench.metrics import ecdf_uniformity, sbc_ranks

    generator = torch.Generator().manual_seed(seed)
    theta = task.sample_prior(num_datasets, generator)
    x = simulate_or_nan(task.simulate, theta, generator)
    valid = task.valid(x)  # a failing task's failed datasets are dropped
    theta, x = theta[valid], x[valid]
    samples = posterior.sample(num_samples, x).transpose(0, 1)
    test = ecdf_uniformity(
        sbc_ranks(theta, samples), num_samples, alpha=alpha / task.dim_parameters
    )
    if test.rejected.any():
        dims = [task.parameter_names[d] for d in range(task.dim_parameters) if test.rejected[d]]
        raise AssertionError(
            f"SBC rejects calibration on task {task.name!r} for {', '.join(dims)} "
            f"(ECDF p-values {test.p_value.round(4).tolist()}, level {alpha})"
        )
