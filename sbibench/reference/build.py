"""Building reference posteriors from a task's card, their noise floors, and verifying the
stored files against a regeneration (the files' format is `sbibench.reference.store`'s).

Generation is a pure function of the card: one ``torch.Generator`` seeded with the card's
``seed`` draws the K true parameters from the prior, then simulates the K observations, then
draws the posterior samples of observation 1, 2, ..., K in turn. A card with an
``[observations]`` table (another benchmark's observations, its source named) supplies the
true parameters and observations itself, and the generator draws only the samples. The
observations come from the model's simulator, which never fails: a card's ``[failures]``
(`sbibench.failures`) are those of the simulator the methods run, so a failing variant of a
task with the same seed has that task's observations and samples. A model with
``simulate_observations`` (i.i.d. sets of stated sizes, `sbibench.models.iid_sets`) draws the
observations with it, each at the size its card states. Files are written
byte-for-byte reproducibly (fixed zip timestamps, shortest round-trip float text). The exact
draws behind a noise floor come from their own generator, seeded by (card seed, observation,
size), so they are independent of the reference samples.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Dirichlet, Distribution

from sbibench import __version__
from sbibench.models.common import sample
from sbibench.paths import write_atomic
from sbibench.reference.store import (
    FILES,
    Reference,
    ReferenceError,
    file_contents,
    load_reference,
    read_floors,
    read_manifest,
    reference_dir,
    sha256,
    write_reference,
)
from sbibench.scoring import (
    FLOOR_SCORES,
    SCORE_OPTIONS,
    get_score,
    mmd_bandwidth,
    sample_scores,
)
from sbibench.task import NUM_REFERENCE_SAMPLES, Task

__all__ = [
    "FLOOR_DRAWS",
    "FLOOR_SIZES",
    "NUM_SAMPLES",
    "build_reference",
    "exact_moments",
    "excess_sd",
    "floor_cache_dir",
    "floor_excess",
    "floor_summary",
    "generate_reference",
    "noise_floors",
    "verify_reference",
]


NUM_SAMPLES = NUM_REFERENCE_SAMPLES  # per observation, unless the card says fewer
FLOOR_SIZES = (2000, 10_000)  # the scoring sample sizes of the shipped suites, where stored
# Independent exact-posterior draws behind each floor. A floor is their mean and sd: with 10,
# the sd is known to about 1 / sqrt(2 * 9) = 24% and the mean to a third of an sd, enough to
# tell a method 2 sd above its floor from one at it; each more draw costs as much as a whole
# floor did when it was one draw (about 6.5 CPU-minutes over every stored reference).
FLOOR_DRAWS = 10


def exact_moments(posterior: Distribution) -> tuple[Tensor, Tensor]:
    """Mean (*batch, D) and covariance (*batch, D, D) of an exact posterior."""
    if isinstance(posterior, Dirichlet):  # dependent components, singular covariance
        total = posterior.concentration.sum(-1, keepdim=True)
        mean = posterior.concentration / total
        outer = mean.unsqueeze(-1) * mean.unsqueeze(-2)
        return mean, (torch.diag_embed(mean) - outer) / (total.unsqueeze(-1) + 1)
    covariance = getattr(posterior, "covariance_matrix", None)
    if covariance is None:  # independent dimensions (e.g. Independent(Gamma))
        covariance = torch.diag_embed(posterior.variance)
    return posterior.mean, covariance


def generate_reference(
    task: Task,
    num_samples: int | None = None,
    floors: bool = True,
    floor_draws: int = FLOOR_DRAWS,
) -> Reference:
    """Draw a task's observations and exact posterior samples (``num_samples`` per observation,
    default the card's ``num_reference_samples``) from its card's seed, and compute the noise
    floors at the ``FLOOR_SIZES`` it holds (a few seconds per observation and draw) if asked:
    the first ``floor_draws`` draws (the shipped references hold `FLOOR_DRAWS`; fewer serve
    verification and quick test builds)."""
    num_samples = task.num_reference_samples if num_samples is None else num_samples
    generator = torch.Generator().manual_seed(task.seed)
    if task.fixed_observations is not None:  # the card's; the generator draws samples only
        theta, x, _ = task.fixed_observations
    else:
        theta = task.sample_prior(task.num_observations, generator)
        # the model's simulator, which never fails; a model with observations of stated
        # sizes (`sbibench.models.iid_sets`) draws each at its size instead
        simulate = getattr(task.model, "simulate_observations", task.model.simulate)
        x = simulate(theta, generator)
    posterior = task.posterior(x)  # batch shape (K,)
    samples = torch.stack(
        [sample(task.posterior(x[k]), num_samples, generator) for k in range(len(x))]
    )
    means, covariances = exact_moments(posterior)
    table = {}
    if floors:
        rows = [
            _floor_row(task, x[k - 1], samples[k - 1], k, n, floor_draws)
            for k in range(1, len(x) + 1)
            for n in FLOOR_SIZES
            if n <= num_samples
        ]
        table = {"options": SCORE_OPTIONS, "draws": floor_draws, "floors": rows}
    return Reference(x, theta, samples, means, covariances, manifest={}, floors=table)


def _floor_draw(task: Task, x: Tensor, reference: Tensor, k: int, n: int, r: int) -> dict:
    """Draw r of observation k's floors at sample size n: the floor scores of reference[:n]
    against n exact draws from a generator of their own (seeded by card seed, k, n, r)."""
    digest = hashlib.sha256(f"noise-floor:{task.seed}:{k}:{n}:{r}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    exact = sample(task.posterior(x), n, generator)
    scores = sample_scores(reference[:n], exact, FLOOR_SCORES, mmd_bandwidth(reference))
    return {name: scores[name] for name in FLOOR_SCORES}


def floor_summary(values: list[float]) -> tuple[float, float]:
    """Mean and sd (n - 1 in the denominator) of a floor's draws, summed exactly
    (`math.fsum`), so stored summaries are re-derived bit for bit from the stored draws."""
    mean = math.fsum(values) / len(values)
    variance = math.fsum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)
    return mean, math.sqrt(variance)


def _floor_row(
    task: Task, x: Tensor, reference: Tensor, k: int, n: int, draws: int = FLOOR_DRAWS
) -> dict:
    """Observation k's floors at sample size n: for each floor score, the mean (under its
    name) and sd (``<name>_sd``) over the first ``draws`` floor draws, and the draws
    themselves (``draws``: ``{score: [value per draw]}``)."""
    values = [_floor_draw(task, x, reference, k, n, r) for r in range(draws)]
    row: dict = {"observation": k, "num_samples": n}
    for name in FLOOR_SCORES:
        row[name], row[f"{name}_sd"] = floor_summary([v[name] for v in values])
    row["draws"] = {name: [v[name] for v in values] for name in FLOOR_SCORES}
    return row


def floor_cache_dir() -> Path:
    """Where floors at sizes no reference stores are kept once computed:
    ``SBIBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/sbibench`` (default ``~/.cache/sbibench``),
    then ``floors/``. Every job process of a run, and every later run on the machine, reads
    them there instead of spending `FLOOR_DRAWS` classifier fits per observation again."""
    root = os.environ.get("SBIBENCH_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "sbibench"
    return Path(root) / "floors"


def _computed_floor(task: Task, folder: Path, k: int, n: int) -> dict:
    """Observation k's floors at a size n that ``noise_floors.json`` does not hold: from the
    cache (`floor_cache_dir`), else computed and written there. The file's name hashes what
    fixes the floor (the reference samples' sha256, the score options, the draws, k, n); one
    that cannot be read is computed again."""
    reference = load_reference(task, folder)
    key = json.dumps([reference.manifest["files"]["samples.npz"], SCORE_OPTIONS, FLOOR_DRAWS, k, n])
    path = floor_cache_dir() / f"{task.name}-{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"
    try:
        row = json.loads(path.read_text())
        if all(name in row and f"{name}_sd" in row for name in FLOOR_SCORES):
            return row
    except (OSError, ValueError):
        pass
    row = _floor_row(task, reference.observations[k - 1], reference.samples[k - 1], k, n)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, (json.dumps(row) + "\n").encode())
    except OSError:  # a read-only home: the floor is still right, only not kept
        pass
    return row


def noise_floors(task: Task, k: int, n: int, folder: Path | None = None) -> dict[str, float]:
    """The noise floors of observation k at sample size n: stored, or computed now (and kept
    for this process) for a size that ``noise_floors.json`` does not hold.

    Returns:
        For every score in `sbibench.scoring.FLOOR_SCORES`, its floor's mean over the
        `FLOOR_DRAWS` exact-posterior draws under the score's name, and their sd under
        ``<name>_sd``.

    Raises:
        ReferenceError: the stored floors were computed under other score options.
    """
    folder = Path(folder) if folder is not None else reference_dir(task)
    table = load_reference(task, folder).floors
    if table["options"] != SCORE_OPTIONS:
        raise ReferenceError(
            f"{folder / 'noise_floors.json'}: computed under other score options "
            f"({table['options']}); run `sbibench reference build --task {task.name}`"
        )
    row = next((r for r in table["floors"] if (r["observation"], r["num_samples"]) == (k, n)), None)
    if row is None:
        row = _computed_floor(task, folder, k, n)
    return {key: row[key] for name in FLOOR_SCORES for key in (name, f"{name}_sd")}


def floor_excess(task: Task, k: int, samples: Tensor) -> dict[str, float]:
    """Each floor score of ``samples`` (n, D) for observation k, as its excess over the floor
    at n, ``(score - floor mean) / sd``, the sd the larger of the floor's and the score's own
    recorded noise sd where it has one (C2ST's ``c2st_noise_sd``; see `excess_sd`). For
    exact-posterior samples (from a generator that is not one of the floors') that is about
    a draw of Student's t with `FLOOR_DRAWS` - 1 degrees of freedom, or less."""
    reference = task.reference_samples(k)
    floors = noise_floors(task, k, len(samples))
    scores = sample_scores(
        reference[: len(samples)], samples, FLOOR_SCORES, mmd_bandwidth(reference)
    )
    return {
        name: (scores[name] - floors[name])
        / excess_sd(floors[f"{name}_sd"], scores.get(f"{name}_noise_sd"))
        for name in FLOOR_SCORES
    }


def excess_sd(floor_sd: float, noise_sd: float | None) -> float:
    """The sd a score's excess over its floor is measured in: the floor's sd over its draws,
    but at least the score's own recorded noise sd (None: it records none). C2ST needs the
    second: of 10 exact-vs-exact draws at 10,000 the classifier at chance reads just below
    0.5 with an sd of 0.0012-0.0023, under the binomial 0.0035 of any held-out accuracy, and
    a draw where it picks up noise reads 0.51 (measured on the standard tasks)."""
    return floor_sd if noise_sd is None or not noise_sd > floor_sd else noise_sd


def _manifest(task: Task, reference: Reference, contents: dict[str, bytes]) -> dict:
    return {
        "task": task.name,
        "card_sha256": task.card_sha256,
        "sbibench_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "seed": task.seed,
        "num_observations": task.num_observations,
        "num_samples": reference.samples.shape[1],
        "generation": _GENERATION if task.fixed_observations is None else _FIXED,
        **({} if task.fixed_observations is None else {"source": task.fixed_observations[2]}),
        "files": {name: hashlib.sha256(content).hexdigest() for name, content in contents.items()},
        "posterior": [
            {"observation": k, "mean": mean, "covariance": covariance}
            for k, (mean, covariance) in enumerate(
                zip(reference.means.tolist(), reference.covariances.tolist(), strict=True), 1
            )
        ],
    }


_GENERATION = (
    "one torch.Generator seeded with `seed` draws the true parameters, then the observations, "
    "then the posterior samples of observations 1..K in turn"
)
_FIXED = (
    "the true parameters and observations are the card's [observations] (see `source`); one "
    "torch.Generator seeded with `seed` draws the posterior samples of observations 1..K in turn"
)


def build_reference(task: Task, folder: Path | None = None, floor_draws: int = FLOOR_DRAWS) -> Path:
    """Generate and write a task's reference folder (default `reference_dir`); returns it.
    ``floor_draws`` exact-posterior draws make each floor (fewer than `FLOOR_DRAWS` only for
    a quick build to test with: the shipped references hold `FLOOR_DRAWS`).

    Each file is written to a temporary name and renamed; the manifest goes last, so an
    interrupted build leaves checksums that `verify_reference` reports as wrong.
    """
    folder = Path(folder) if folder is not None else reference_dir(task)
    reference = generate_reference(task, floor_draws=floor_draws)
    contents = file_contents(task, reference)
    write_reference(folder, contents, _manifest(task, reference, contents))
    return folder


# Regenerated on another CPU, float64 draws differ in their last bits (vectorised kernels
# differ by instruction set; seen: 6e-10 relative on a value near zero after a matrix product),
# so files are compared as numbers, to this fraction of each observation's largest value.
# Damage and edits are caught exactly by the sha256 checks.
RTOL = 1e-9


def _differing_observations(path: Path, expected: bytes) -> str:
    """Which observations of a file differ from the regenerated content by more than `RTOL`
    (as numbers); "" when none does, or why the file cannot be compared."""
    try:
        if path.suffix == ".csv":
            found = [_row(line) for line in path.read_text().splitlines()[1:]]
            wanted = [_row(line) for line in expected.decode().splitlines()[1:]]
        else:
            with np.load(path) as have, np.load(io.BytesIO(expected)) as want:
                found = [have[key] for key in want.files]
                wanted = [want[key] for key in want.files]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError):
        return " (unreadable)"
    if len(found) != len(wanted):
        return f" ({len(found)} observations, expected {len(wanted)})"
    numbers = [
        k
        for k, (a, b) in enumerate(zip(found, wanted, strict=True), 1)
        if a.shape != b.shape
        or not np.array_equal(np.isnan(a), np.isnan(b))  # padded sets: the same padding
        or not np.all(np.abs(a - b)[~np.isnan(b)] <= RTOL * np.nanmax(np.abs(b), initial=0.0))
    ]
    return f" (observations {', '.join(map(str, numbers))})" if numbers else ""


def _row(line: str) -> np.ndarray:
    return np.array([float(v) for v in line.split(",")])


def verify_reference(
    task: Task, folder: Path | None = None, floors: bool = True, floor_draws: int = 1
) -> list[str]:
    """Regenerate a task's reference from its card and compare with the files on disk.

    Returns a list of problems, each naming the file (empty when everything matches):
    checksums, the card's hash, and every observation, parameter, sample, moment and (with
    ``floors``) noise floor. Of each floor's `FLOOR_DRAWS` draws the first ``floor_draws``
    are regenerated (a few seconds per observation and draw), and every stored mean and sd
    is re-derived from the stored draws. Draws are compared to 1e-6 relative (1e-7
    absolute): MMD's float32 kernel sums may differ in their last digits with the number
    of threads; C2ST and Wasserstein reproduce exactly.
    """
    folder = Path(folder) if folder is not None else reference_dir(task)
    try:
        manifest = read_manifest(folder)
    except ReferenceError as error:
        return [str(error)]
    problems = []
    for name in FILES:
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif sha256(path) != manifest["files"][name]:
            problems.append(f"{path}: sha256 differs from MANIFEST.json (corrupted or edited)")
    if manifest.get("card_sha256") != task.card_sha256:
        problems.append(
            f"{folder / 'MANIFEST.json'}: built from another version of {task.card_path}"
        )
    expected = generate_reference(task, floors=floors, floor_draws=floor_draws)
    for name, content in file_contents(task, expected).items():
        path = folder / name
        if name == "noise_floors.json":
            if floors and path.is_file():
                problems += _compare_floors(path, expected.floors)
        elif path.is_file() and path.read_bytes() != content:
            which = _differing_observations(path, content)
            if which:
                problems.append(f"{path}: differs from what the card regenerates{which}")
    stored = manifest["posterior"]
    for k, (mean, covariance) in enumerate(
        zip(expected.means, expected.covariances, strict=True), 1
    ):
        entry = stored[k - 1] if k <= len(stored) else {}
        same = "mean" in entry and torch.allclose(
            torch.tensor(entry["mean"], dtype=torch.float64), mean, rtol=RTOL, atol=0
        )
        same = same and torch.allclose(
            torch.tensor(entry["covariance"], dtype=torch.float64), covariance, rtol=RTOL, atol=0
        )
        if not same:
            problems.append(f"{folder / 'MANIFEST.json'}: exact moments of observation {k} differ")
    return problems


def _same_floor(name: str, stored: float | None, regenerated: float, n: int) -> bool:
    """Whether a stored floor matches its regeneration.

    On the machine that built it every floor reproduces exactly. Elsewhere a score that
    retrains a network (the registry's ``retrained``: C2ST's float32 classifier, whose
    rounding, and so its trajectory, depends on the CPU) is held to 4 standard deviations of
    its own binomial noise, 0.5 / sqrt(2n) (0.014 at n = 10,000); the others (MMD's float32
    kernel sums, Wasserstein's float64 transport) to 1e-6 relative, 1e-7 absolute.
    """
    if stored is None:
        return False
    if get_score(name).retrained:
        return abs(stored - regenerated) <= 4 * 0.5 / math.sqrt(2 * n)
    return math.isclose(stored, regenerated, rel_tol=1e-6, abs_tol=1e-7)


def _compare_floors(path: Path, expected: dict) -> list[str]:
    """Problems between stored noise floors and regenerated draws, naming each observation."""
    try:
        stored = read_floors(path)
    except ReferenceError as error:
        return [str(error)]
    if stored["options"] != expected["options"]:
        return [f"{path}: computed under other score options than today's"]
    count = stored.get("draws")
    if not isinstance(count, int) or count < 2:
        return [f"{path}: 'draws' must be the number of draws behind each floor (2 or more)"]
    found = {(r["observation"], r["num_samples"]): r for r in stored["floors"]}
    problems = []
    for row in expected["floors"]:
        key = (row["observation"], row["num_samples"])
        where = f"{path}: observation {key[0]} at {key[1]} samples"
        have = found.get(key)
        if have is None:
            problems.append(f"{where}: missing")
            continue
        bad = []
        for name in FLOOR_SCORES:
            draws = have["draws"].get(name, [])
            if len(draws) != count or (have[name], have[f"{name}_sd"]) != floor_summary(draws):
                bad.append(f"{name}'s mean or sd (not those of its {count} draws)")
            elif not all(
                _same_floor(name, a, b, key[1])
                for a, b in zip(draws, row["draws"][name], strict=False)
            ):
                bad.append(name)
        if bad:
            problems.append(f"{where}: {', '.join(bad)} differ from what the card regenerates")
    return problems
