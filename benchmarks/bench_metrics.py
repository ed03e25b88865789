"""asv benchmarks of the sample-based scores: run time, and accuracy against closed forms."""

import math

import torch
from scipy.stats import norm

from sbibench.metrics import c2st, mmd, wasserstein


def _shifted_pair(num_samples: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """N(0, I) and N((1, 0, ..., 0), I) samples: W2 = 1, sliced W2 = 1 / sqrt(D), C2ST = Phi(1/2)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_samples, dim, generator=g, dtype=torch.float64)
    y = torch.randn(num_samples, dim, generator=g, dtype=torch.float64)
    y[:, 0] += 1.0
    return x, y


class C2ST:
    """C2ST time, and its error against the Bayes accuracy Phi(1/2) = 0.6915."""

    params = ([2, 10], [1_000, 10_000])
    param_names = ["dim", "num_samples"]
    timeout = 300

    def setup(self, dim: int, num_samples: int) -> None:
        self.x, self.y = _shifted_pair(num_samples, dim)

    def time_c2st(self, dim: int, num_samples: int) -> None:
        c2st(self.x, self.y, seed=0)

    def track_abs_error(self, dim: int, num_samples: int) -> float:
        return abs(c2st(self.x, self.y, seed=0).value - norm.cdf(0.5))

    track_abs_error.unit = "accuracy"


class C2STCurved:
    """C2ST time and accuracy where the boundary is curved and the classifier trains longest:
    two_moons' reference posterior (observation 1) against independent exact draws blurred by
    Gaussian noise of a tenth of each coordinate's sd, as a kernel density estimate on the
    crescents would be, 10,000 per set."""

    timeout = 300

    def setup(self) -> None:
        from sbibench import get_task

        task = get_task("two_moons")
        self.x = task.reference_samples(1)[:10_000]
        torch.manual_seed(0)
        draws = task.posterior(task.observation(1)).sample((10_000,)).to(self.x.dtype)
        g = torch.Generator().manual_seed(0)
        noise = torch.randn(draws.shape, generator=g, dtype=draws.dtype)
        self.y = draws + 0.1 * self.x.std(0) * noise

    def time_c2st(self) -> None:
        c2st(self.x, self.y, seed=0)

    def track_accuracy(self) -> float:
        return c2st(self.x, self.y, seed=0).value

    track_accuracy.unit = "accuracy"


class Wasserstein:
    """Wasserstein-2 time, and its error against the closed form, per estimator."""

    params = ([1, 2, 10], [1_000, 10_000], ["exact", "sliced"])
    param_names = ["dim", "num_samples", "method"]
    timeout = 300

    def setup(self, dim: int, num_samples: int, method: str) -> None:
        self.x, self.y = _shifted_pair(num_samples, dim)
        # Closed forms for a unit shift: W2 = 1; sliced W2 = 1 / sqrt(D).
        self.truth = 1.0 if method == "exact" else 1.0 / math.sqrt(dim)

    def time_wasserstein(self, dim: int, num_samples: int, method: str) -> None:
        wasserstein(self.x, self.y, method=method)

    def track_abs_error(self, dim: int, num_samples: int, method: str) -> float:
        return abs(wasserstein(self.x, self.y, method=method).value - self.truth)

    track_abs_error.unit = "distance"


class MMD:
    """Unbiased MMD^2 time, and its error against the closed form at a fixed bandwidth."""

    params = ([2, 10], [1_000, 10_000])
    param_names = ["dim", "num_samples"]
    timeout = 300

    def setup(self, dim: int, num_samples: int) -> None:
        self.x, self.y = _shifted_pair(num_samples, dim)
        h = math.sqrt(dim)
        # E k(X, X') = (1 + 2 / h^2)^(-D/2); E k(X, Y) adds exp(-|m|^2 / (2 (h^2 + 2))).
        self.bandwidth = h
        self.truth = 2 * (1 + 2 / h**2) ** (-dim / 2) * (1 - math.exp(-1 / (2 * (h**2 + 2))))

    def time_mmd(self, dim: int, num_samples: int) -> None:
        mmd(self.x, self.y)

    def track_abs_error(self, dim: int, num_samples: int) -> float:
        return abs(mmd(self.x, self.y, bandwidth=self.bandwidth).value - self.truth)

    track_abs_error.unit = "mmd2"


class ScoreObservation:
    """Every sample-based score of one observation with its noise floors and moment errors,
    10,000 method samples against the 10,000 reference samples, as a worker process does it
    (``sbibench.run.worker.score_observation``), on one torch thread. Earlier versions recomputed the floors in
    every worker: their cache is cleared before each call so both versions are timed alike."""

    params = (["normal_mean", "normal_mean_variance", "linear_gaussian"],)
    param_names = ["task"]
    number = 1
    repeat = 3
    timeout = 600

    def setup(self, task: str) -> None:
        import tempfile
        from pathlib import Path

        from sbibench import get_task
        from sbibench.run.suite import load_suite

        torch.set_num_threads(1)
        folder = Path(tempfile.mkdtemp())
        (folder / "score.toml").write_text(
            f'name = "score"\ndescription = "one observation"\ntasks = ["{task}"]\n'
            "budgets = [1000]\nseeds = [0]\nobservations = [1]\nnum_posterior_samples = 10000\n"
            'metrics = ["c2st", "mmd", "wasserstein", "moments"]\n'
            "[sbc]\nnum_datasets = 0\nnum_posterior_samples = 1\n[methods.exact]\n"
        )
        self.job = load_suite(folder / "score.toml").jobs()[0]
        self.task = get_task(task)
        posterior = self.task.posterior(self.task.observation(1))
        self.posterior = _FixedSamples(posterior.sample((10_000,)))

    def time_score_observation(self, task: str) -> None:
        from sbibench.run import worker

        floors = getattr(worker, "_floors", None)
        if floors is not None:
            floors.cache_clear()
        worker.score_observation(self.task, 1, self.posterior, self.job)


class _FixedSamples:
    """A posterior that returns the same samples whatever it is asked."""

    def __init__(self, samples: torch.Tensor) -> None:
        self.samples = samples

    def sample(self, n: int, x: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        return self.samples[:n]


class C2STSbibm:
    """sbibm's C2ST recipe (our port) at the size sbibm's published table used: 10,000 vs
    10,000 in 10-D, N(0, I) against N(0.15, I) (Bayes accuracy 0.594), on 2 threads. Set
    beside scikit-learn's, side by side: ``python benchmarks/c2st_sbibm_speed.py``."""

    timeout = 900

    def setup(self) -> None:
        g = torch.Generator().manual_seed(0)  # the data of benchmarks/c2st_sbibm_speed.py
        self.x = torch.randn(10_000, 10, generator=g, dtype=torch.float64)
        self.y = torch.randn(10_000, 10, generator=g, dtype=torch.float64) + 0.15

    def time_c2st_sbibm(self) -> None:
        c2st(self.x, self.y, seed=0, recipe="sbibm", num_threads=2)
