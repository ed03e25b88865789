"""The score registry: one entry per score, read by suites, evaluation, records, report and check.

An entry (`Score`) says everything the rest of sbibench needs to know about a score: its
name (what a suite's ``metrics`` lists), the function that computes it, the record columns
it writes (each with its report label, which direction is better and how ``sbibench check``
judges a change), whether it has a noise floor, and the options that fix its value. Adding a
score is one call to `register_score` (or an entry point in the ``sbibench.scores`` group
naming a `Score`); nothing else is edited:

- suite validation accepts its name in ``metrics`` (`sbibench.run.suite`);
- evaluation calls its function for every observation, or once per fit over the SBC
  datasets for a calibration score (`sbibench.run.worker`);
- its columns join the record schema, in registry order (`sbibench.records`);
- the leaderboard shows every column with a label (`sbibench.report.tables`);
- ``sbibench check`` judges every column with a `Rule` (`sbibench.report.check`).

A score of one observation is a function of a `Draws`; a calibration score of a
`Calibration`. Either returns ``{column: value}`` for the columns it declares (a subset:
``nll`` writes nothing for a method without a density).

Noise floors. A score with ``floor=True`` is a function of the two sample sets alone (and
its options), so the same function between the reference and as many fresh exact draws is what
a perfect method scores: its noise floor, kept as the mean and sd over repeated independent
exact draws (a single draw is not a floor: on a bimodal posterior it swings with how the draws
split between the modes). Floors are computed once and stored beside the
reference posteriors (`sbibench.reference.build`), with `SCORE_OPTIONS` (the floor scores'
``options``, `score_options`); floors stored under other options are refused rather than compared with today's
scores, so registering a new floor score means rebuilding the references
(``sbibench reference build``). Both the score and its floor go through `sample_scores`, with
the same options. The MMD bandwidth is a property of the observation (the median heuristic on
its reference samples), not of the pair, so the score and its floor use the same kernel.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sbibench.registry import load, with_entry_points

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "Calibration",
    "Column",
    "Draws",
    "Score",
    "Rule",
    "compute",
    "floor_scores",
    "get_score",
    "headline",
    "list_scores",
    "mmd_bandwidth",
    "register_score",
    "registered",
    "sample_scores",
    "score_columns",
    "score_options",
]

RULES = ("noise", "p_value", "binomial")


@dataclass(frozen=True)
class Rule:
    """How ``sbibench check`` judges a change in a column (the rules: `sbibench.report.check`).

    Attributes:
        kind: ``"noise"``: the paired mean change against ``k`` times its noise sd, from
            each record's sd in the column ``needs``; ``"p_value"``: a calibration test's
            p-value (one per fit) against a multiple-testing-corrected level, ``needs``
            holding the number of tests behind each p-value; ``"binomial"``: a change against
            ``k`` times the binomial sd of a fraction over ``needs`` datasets.
        needs: the record column the rule reads besides the score's own.
        tolerance: ``"noise"`` only: a change tolerated before noise is considered.
        fallback: ``"noise"`` only: the column read in place of ``needs`` for records that
            lack it (written before it existed); ``check`` says where it stood in.
    """

    kind: str
    needs: str
    tolerance: float = 0.0
    fallback: str = ""

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise ValueError(f"rule kind {self.kind!r} unknown; known: {', '.join(RULES)}")
        if not isinstance(self.needs, str) or not self.needs:
            raise ValueError(
                f"rule {self.kind!r} must name the column it needs, got {self.needs!r}"
            )
        if not self.tolerance >= 0:
            raise ValueError(f"rule tolerance must be >= 0, got {self.tolerance!r}")


@dataclass(frozen=True)
class Column:
    """A record column a score writes.

    Attributes:
        name: the column's name in records and results.csv.
        label: its header in the leaderboard; None: not shown there.
        better: ``"lower"`` or ``"higher"``; None for a detail (an estimator's name, an sd).
        rule: how ``sbibench check`` judges a change in it; None: not judged.
    """

    name: str
    label: str | None = None
    better: str | None = None
    rule: Rule | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"column name must be lower_snake_case, got {self.name!r}")
        if self.better not in (None, "lower", "higher"):
            raise ValueError(f"column {self.name!r}: better must be 'lower' or 'higher'")
        if self.rule is not None and self.better is None:
            raise ValueError(f"column {self.name!r}: a judged column needs a direction (better)")


@dataclass(frozen=True)
class Draws:
    """What a score of one observation may read. Shapes: N samples, D parameters.

    A floor score reads only ``reference``, ``samples`` and ``bandwidth``: its floor is the
    same function with exact draws as ``samples`` and nothing else given.

    Attributes:
        reference: exact posterior samples (N, D), the first N of the reference set.
        samples: the samples scored (N, D): a method's, or fresh exact draws for a floor.
        bandwidth: the MMD kernel's length scale for the observation (`mmd_bandwidth`).
        mean: the exact posterior mean (D,).
        covariance: the exact posterior covariance (D, D).
        true_parameters: the parameters that generated the observation (D,).
        log_prob: the method's log-density at the observation, (K, D) -> (K,); None if none.
    """

    reference: Tensor
    samples: Tensor
    bandwidth: float
    mean: Tensor | None = None
    covariance: Tensor | None = None
    true_parameters: Tensor | None = None
    log_prob: Callable[[Tensor], Tensor] | None = None


@dataclass(frozen=True)
class Calibration:
    """What a calibration score reads: a fit's posteriors on prior-predictive datasets.

    Attributes:
        theta: the datasets' true parameters (N, D), drawn from the prior.
        samples: posterior samples per dataset (N, L, D).
        num_samples: L.
        log_prob: log-densities (N, M, D) -> (N, M), row n under dataset n's posterior (up to
            a constant per dataset); None for a method without one (TARP is used then).
    """

    theta: Tensor
    samples: Tensor
    num_samples: int
    log_prob: Callable[[Tensor], Tensor] | None = None


@dataclass(frozen=True)
class Score:
    """A score: one registry entry.

    Attributes:
        name: what a suite's ``metrics`` lists; for a floor score also its first column and
            its key in the stored noise floors.
        function: ``Draws -> {column: value}`` (``Calibration -> ...`` for a calibration
            score), or its ``"module:attribute"``, imported on first use.
        columns: the columns it writes, in the order the record schema lists them.
        floor: whether it has a noise floor; the floor of its first column is written as
            ``<name>_floor`` (its mean over exact-posterior draws) and ``<name>_floor_sd``
            (their sd).
        options: what fixes its value (estimator, seeds, sizes); stored beside floors.
        calibration: computed once per fit over the SBC datasets (when the suite's
            ``sbc.num_datasets`` > 0) rather than per observation; its columns repeat in the
            fit's records, and it is not listed in a suite's ``metrics``.
        arrays: calibration only: returned arrays kept beside the records (``.sbc.npz``),
            not written into them.
        headline: the score a run's one-line summaries lead with (the terminal's summary
            table, the figures against budget, time and dimension, ``check --tolerance``);
            the first registered headline score is used.
        retrained: its estimator trains a network (C2ST's classifier), so on another CPU its
            floor reproduces to within its binomial noise, not to the last digits.

    Example:
        >>> def spread(draws: Draws) -> dict:
        ...     ratio = draws.samples.std(0) / draws.reference.std(0)
        ...     return {"spread_error": float((ratio - 1).abs().mean())}
        >>> entry = Score("spread", spread, (Column("spread_error", "sd err.", "lower"),))
        >>> entry.column_names  # register_score(entry) adds it to suites, records, reports
        ('spread_error',)
    """

    name: str
    function: Callable[[Any], dict[str, Any]] | str
    columns: tuple[Column, ...]
    floor: bool = False
    options: str = ""
    calibration: bool = False
    arrays: tuple[str, ...] = ()
    headline: bool = False
    retrained: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"score name must be lower_snake_case, got {self.name!r}")
        if not (callable(self.function) or isinstance(self.function, str)):
            raise TypeError(f"score {self.name!r}: function must be callable or 'module:attr'")
        columns = tuple(self.columns)
        if not columns or not all(isinstance(c, Column) for c in columns):
            raise ValueError(f"score {self.name!r}: columns must be a non-empty list of Column")
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "arrays", tuple(self.arrays))
        if self.floor and (self.calibration or columns[0].name != self.name):
            raise ValueError(
                f"score {self.name!r}: a floor score is per observation and its first column "
                f"is named like it, got {columns[0].name!r}"
            )
        if self.arrays and not self.calibration:
            raise ValueError(f"score {self.name!r}: only calibration scores keep arrays")

    @property
    def column_names(self) -> tuple[str, ...]:
        """Every column it writes, the floor column included."""
        names = [c.name for c in self.columns]
        if self.floor:
            names[1:1] = [f"{self.name}_floor", f"{self.name}_floor_sd"]
        return tuple(names)

    def resolve(self) -> Callable[[Any], dict[str, Any]]:
        """The function, imported if given as ``"module:attribute"``."""
        if callable(self.function):
            return self.function
        return load(self.function, f"score {self.name!r}'s function")


# --- the built-in scores ------------------------------------------------------------------
# Each imports its estimator when it first runs: listing, checking and reporting scores (the
# command's --help, suite validation, the report) loads no torch, POT or scikit-learn.


def _c2st(draws: Draws) -> dict[str, Any]:
    from sbibench.metrics import c2st

    result = c2st(draws.reference, draws.samples, seed=0, null="binomial")
    return {
        "c2st": result.value,
        "c2st_null_sd": result.details["null_std"],
        "c2st_noise_sd": result.details["noise_std"],
    }


def _c2st_sbibm(draws: Draws) -> dict[str, Any]:
    from sbibench.metrics import c2st

    result = c2st(draws.reference, draws.samples, seed=0, null="binomial", recipe="sbibm")
    return {
        "c2st_sbibm": result.value,
        "c2st_sbibm_null_sd": result.details["null_std"],
        "c2st_sbibm_noise_sd": result.details["noise_std"],
    }


def _mmd(draws: Draws) -> dict[str, Any]:
    from sbibench.metrics import mmd

    return {"mmd": mmd(draws.reference, draws.samples, bandwidth=draws.bandwidth).value}


def _wasserstein(draws: Draws) -> dict[str, Any]:
    from sbibench.metrics import wasserstein

    result = wasserstein(draws.reference, draws.samples, seed=0)
    return {"wasserstein": result.value, "wasserstein_method": result.method}


def _moments(draws: Draws) -> dict[str, Any]:
    from sbibench.metrics import covariance_error, mean_error

    if draws.mean is None or draws.covariance is None:
        raise ValueError("the moments score needs the exact posterior mean and covariance")
    return {
        "mean_error": mean_error(draws.samples, draws.mean, draws.covariance).value,
        "covariance_error": covariance_error(draws.samples, draws.covariance).value,
    }


def _nll(draws: Draws) -> dict[str, Any]:
    from sbibench.metrics import nll_true_parameters

    if draws.log_prob is None or draws.true_parameters is None:
        return {}  # a method without a density has no NLL
    truth = draws.true_parameters.unsqueeze(0)
    return {"nll_true_parameters": nll_true_parameters(draws.log_prob, truth).value}


def _sbc(inputs: Calibration) -> dict[str, Any]:
    import numpy as np

    from sbibench.metrics import chi2_uniformity, ecdf_uniformity, rank_shape, sbc_ranks

    ranks = sbc_ranks(inputs.theta, inputs.samples)
    chi2 = chi2_uniformity(ranks, inputs.num_samples)
    ecdf = ecdf_uniformity(ranks, inputs.num_samples)
    bias, dispersion = rank_shape(ranks, inputs.num_samples)
    return {
        "sbc_datasets": int(len(inputs.theta)),
        "sbc_num_parameters": int(inputs.theta.shape[-1]),
        "sbc_chi2_p_min": float(np.min(chi2.p_value)),
        "sbc_ecdf_p_min": float(np.min(ecdf.p_value)),
        # the shape of the histogram, each the parameter's z of largest magnitude, signed
        "sbc_bias_z": float(bias[np.argmax(np.abs(bias))]),
        "sbc_dispersion_z": float(dispersion[np.argmax(np.abs(dispersion))]),
        "ranks": ranks.numpy(),
    }


def _coverage(inputs: Calibration) -> dict[str, Any]:
    import numpy as np

    from sbibench.metrics import ecdf_uniformity, expected_coverage, tarp

    if inputs.log_prob is not None:
        curve = expected_coverage(inputs.theta, inputs.samples, inputs.log_prob)
    else:
        curve = tarp(inputs.theta, inputs.samples)
    return {
        "coverage_method": curve.method,
        "coverage_max_deviation": curve.max_deviation,
        "coverage_mean_deviation": curve.mean_deviation,
        "coverage_ecdf_p": float(ecdf_uniformity(curve.ranks, curve.num_samples).p_value[0]),
        "coverage_ranks": np.asarray(curve.ranks),
    }


_BUILTIN = (
    Score(
        "c2st", _c2st,
        (Column("c2st", "C2ST", "lower",
                Rule("noise", "c2st_noise_sd", tolerance=0.02, fallback="c2st_null_sd")),
         Column("c2st_null_sd"), Column("c2st_noise_sd")),
        floor=True, options="c2st-mlp: 5 folds, seed 0, sbibench defaults (from 1,000 per set: "
        "Adam 5e-3 with one tenfold decay), binomial null",
        headline=True, retrained=True,
    ),
    # sbibm's published recipe, its own column so that a record says which recipe scored it;
    # no stored floor (minutes per score at 10,000 in 10-D): its null sd is the binomial one
    Score(
        "c2st_sbibm", _c2st_sbibm,
        (Column("c2st_sbibm", "C2ST (sbibm)", "lower",
                Rule("noise", "c2st_sbibm_noise_sd", tolerance=0.02,
                     fallback="c2st_sbibm_null_sd")),
         Column("c2st_sbibm_null_sd"), Column("c2st_sbibm_noise_sd")),
        options="c2st-sbibm: sbibm 1.1.0's MLPClassifier recipe, 5 folds, seed 0, binomial null",
        retrained=True,
    ),
    Score(
        "mmd", _mmd, (Column("mmd", "MMD²", "lower"),), floor=True,
        options="unbiased MMD^2, Gaussian kernel, bandwidth: median heuristic of the "
        "observation's 10,000 reference samples (1,000-point subsample, seed 0)",
    ),
    Score(
        "wasserstein", _wasserstein,
        (Column("wasserstein", "W2", "lower"), Column("wasserstein_method")), floor=True,
        options="W2, exact optimal transport on seeded 2,000-point subsamples (seed 0)",
    ),
    Score(
        "moments", _moments,
        (Column("mean_error", "mean err. (sd)", "lower"),
         Column("covariance_error", "cov. err.", "lower")),
        options="exact posterior mean and covariance",
    ),
    Score("nll", _nll, (Column("nll_true_parameters", "NLL(θ*)", "lower"),)),
    Score(
        "sbc", _sbc,
        (Column("sbc_datasets"), Column("sbc_num_parameters"),
         Column("sbc_chi2_p_min", better="higher"),
         Column("sbc_ecdf_p_min", "SBC p (min)", "higher", Rule("p_value", "sbc_num_parameters")),
         Column("sbc_bias_z"), Column("sbc_dispersion_z")),
        options="ranks per parameter; chi-square and simultaneous ECDF band tests, min over "
        "parameters; bias and dispersion z of the rank histogram, largest over parameters",
        calibration=True, arrays=("ranks",),
    ),
    Score(
        "coverage", _coverage,
        (Column("coverage_method"),
         Column("coverage_max_deviation", "coverage dev.", "lower", Rule("binomial", "sbc_datasets")),
         Column("coverage_mean_deviation"), Column("coverage_ecdf_p")),
        options="HPD expected coverage where the method has a density, TARP otherwise; signed "
        "mean deviation; ECDF band test of the coverage ranks",
        calibration=True, arrays=("coverage_ranks",),
    ),
)  # fmt: skip

_REGISTRY: dict[str, Score] = {}
_LOADED_ENTRY_POINTS = False


def register_score(metric: Score, replace: bool = False) -> Score:
    """Add a score to the registry; returns it.

    A score registered at run time is seen in this process (the serial executor); for
    process pools and clusters register it in a module the workers import, or name it under
    the ``sbibench.scores`` entry-point group (``name = "module:attribute"`` of a `Score`).

    Raises:
        ValueError: the name is taken (unless ``replace``), or a column is already written
            by another score. (A column named like one every record has is refused by the
            record schema, `sbibench.records.record_columns`, when a run starts.)
    """
    if not isinstance(metric, Score):
        raise TypeError(f"register_score needs a Score, got {type(metric).__name__}")
    if metric.name in _REGISTRY and not replace:
        raise ValueError(f"score {metric.name!r} is registered already")
    taken = {c: m.name for m in _REGISTRY.values() if m.name != metric.name for c in m.column_names}
    for name in (*metric.column_names, *metric.arrays):
        if name in taken:
            raise ValueError(
                f"score {metric.name!r}: column {name!r} is written by {taken[name]!r}"
            )
    _REGISTRY[metric.name] = metric
    return metric


for _metric in _BUILTIN:
    register_score(_metric)


def _load_entry_points() -> None:
    global _LOADED_ENTRY_POINTS
    if _LOADED_ENTRY_POINTS:
        return
    _LOADED_ENTRY_POINTS = True
    for name, path in with_entry_points({}, "scores").items():
        if name not in _REGISTRY:
            register_score(load(path, "score"))


def registered(calibration: bool | None = None) -> list[Score]:
    """Every registered score in registry order; only calibration scores (True) or only
    per-observation ones (False) if asked."""
    _load_entry_points()
    return [m for m in _REGISTRY.values() if calibration is None or m.calibration == calibration]


def headline() -> Score:
    """The score a run's summaries lead with: the first registered with ``headline=True``."""
    return next(metric for metric in registered() if metric.headline)


def list_scores(calibration: bool | None = None) -> list[str]:
    """Names of the registered scores (a suite's ``metrics`` takes the per-observation ones)."""
    return [m.name for m in registered(calibration)]


def get_score(name: str) -> Score:
    """The score called ``name``; ValueError listing the known ones otherwise."""
    _load_entry_points()
    if name not in _REGISTRY:
        raise ValueError(f"unknown score {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def score_columns() -> list[str]:
    """The columns every registered score writes, floors included, in registry order."""
    return [name for metric in registered() for name in metric.column_names]


def compute(metric: Score, inputs: Draws | Calibration) -> dict[str, Any]:
    """Call a score's function and check that it wrote only the columns it declares."""
    values = dict(metric.resolve()(inputs))
    declared = {c.name for c in metric.columns} | set(metric.arrays)
    unknown = sorted(set(values) - declared)
    if unknown:
        raise ValueError(
            f"score {metric.name!r} returned undeclared column(s) {', '.join(unknown)}; "
            f"it declares {', '.join(sorted(declared))}"
        )
    return values


def floor_scores() -> tuple[str, ...]:
    """The names of the floor scores: the keys of the stored noise floors."""
    return tuple(m.name for m in registered(False) if m.floor)


def score_options() -> dict[str, str]:
    """The floor scores' options, stored beside the floors; floors under others are refused."""
    return {m.name: m.options for m in registered(False) if m.floor}


def __getattr__(name: str) -> Any:
    # ``FLOOR_SCORES`` and ``SCORE_OPTIONS``: `floor_scores()` and `score_options()` as names
    # (read by `sbibench.reference.build`), derived when asked so that they follow registrations.
    if name == "FLOOR_SCORES":
        return floor_scores()
    if name == "SCORE_OPTIONS":
        return score_options()
    raise AttributeError(f"module 'sbibench.scoring' has no attribute {name!r}")


def mmd_bandwidth(reference: Tensor) -> float:
    """The MMD kernel's length scale for one observation: the median pairwise distance of its
    reference samples (N, D) (the whole set, so it does not depend on the sample size)."""
    from sbibench.metrics import median_bandwidth

    return median_bandwidth(reference, max_points=1000, seed=0)


def sample_scores(
    reference: Tensor, samples: Tensor, metrics: tuple[str, ...], bandwidth: float
) -> dict[str, Any]:
    """The floor scores named in ``metrics`` (from `FLOOR_SCORES`) between two sample sets.

    Arguments:
        reference: exact posterior samples (N, D).
        samples: the samples to score (N, D).
        metrics: which scores; others in the tuple are ignored.
        bandwidth: the MMD kernel's length scale, from `mmd_bandwidth`.

    Returns:
        The columns of those scores, e.g. ``c2st``, ``c2st_null_sd`` (the binomial null's
        standard deviation) and ``c2st_noise_sd`` (the noise sd with the classifier's
        training), ``mmd``, ``wasserstein`` and ``wasserstein_method``.
    """
    draws = Draws(reference, samples, bandwidth)
    scores: dict[str, Any] = {}
    for metric in registered(False):
        if metric.floor and metric.name in metrics:
            scores.update(compute(metric, draws))
    return scores
