"""Calibration verdicts: a fit's SBC and coverage tests combined, corrected over a board.

The rule, in two steps (`RULE` states it for the report):

1. **Per fit**, the D simultaneous ECDF-band tests of its SBC ranks (one per parameter) and
   the ECDF-band test of its coverage ranks are combined by Bonferroni: p = min(1, T x the
   smallest of the T = D + 1 p-values). The tests share their datasets and are strongly
   dependent (in one dimension the coverage ranks are nearly a fold of the SBC ranks), so a
   combination that assumes independence (Fisher) would reject exact posteriors too often;
   Bonferroni is valid under any dependence and, with T at most 11 here, costs little power.
2. **Over a board**, the fits' combined p-values are adjusted by Holm's step-down method,
   which bounds the chance that *any* calibrated fit on the board is called miscalibrated by
   alpha. A leaderboard's verdict is read cell by cell as a claim about a method, so calling a
   good method miscalibrated is the costlier error; a false-discovery rate
   (Benjamini-Hochberg) bounds only the share of false calls among the rejections, and on a
   board where most fits are miscalibrated its level rises towards alpha per fit: the exact
   posterior would again "fail" about one fit in twenty. What Holm gives up in power is
   given back in part by ``inconclusive`` (below): a borderline fit is not called calibrated.

A fit is then

- ``miscalibrated`` when its Holm-adjusted p-value is at most alpha, with a direction;
- ``inconclusive`` when its p-value lies within one SBC resampling sd of the level that
  would flip its verdict, on the normal-quantile scale z = Phi^-1(1 - p) (see `judge`), or
  when it is not rejected on fewer than `MIN_DATASETS` datasets (too few to have power);
- ``calibrated`` otherwise.

The direction comes from the rank histogram's shape (`sbibench.metrics.rank_shape`: a U is
under-dispersed, a hump over-dispersed, ranks piled to one side biased) and from the signed
coverage curve (coverage above the diagonal is conservative, below it overconfident), each
named only where its z-score is beyond ``Z_DIRECTION``. Where the two point opposite ways
(under-dispersed yet conservative, or over-dispersed yet overconfident) the direction reads
"mixed": the fit is no less miscalibrated (the marginals can be too wide while the joint
regions are too small, as with wrong correlations), but neither word describes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALPHA",
    "MIN_DATASETS",
    "RULE",
    "Z_DIRECTION",
    "Evidence",
    "Verdict",
    "combine",
    "coverage_z",
    "holm",
    "judge",
    "judge_all",
    "z_of",
]

ALPHA = 0.05
# Below 200 datasets a posterior 25% too wide or 20% too narrow (in sd) escapes even an
# uncorrected 5% test in more than one fit in ten: in the conjugate Gaussian model, 100 fits
# each, both tests combined caught 1.25x in 65% of fits at N = 100 and 88% at N = 200, 0.8x
# in 66% and 92%.
MIN_DATASETS = 200
Z_DIRECTION = 1.96  # a direction statistic counts when beyond its two-sided 5% point

RULE = (
    "Calibration verdict per fit: the ECDF-band tests of its SBC ranks (one per parameter) "
    "and of its coverage ranks, combined by Bonferroni (T tests: T x the smallest p); the "
    f"fits' p-values Holm-adjusted over every fit in the report, at alpha = {ALPHA}. "
    "miscalibrated: adjusted p <= alpha, with its direction (SBC histogram: under-dispersed "
    "= U, over-dispersed = hump, biased = ranks to one side; coverage: overconfident or "
    "conservative; mixed where they point opposite ways); inconclusive: p within one "
    "bootstrap sd (over the SBC datasets, on the normal-quantile scale) of the level that "
    f"would flip the verdict, or not rejected on fewer than {MIN_DATASETS} datasets; "
    "calibrated: otherwise."
)


@dataclass(frozen=True)
class Evidence:
    """What one fit's calibration tests found; NaN where a record does not say.

    Attributes:
        sbc_p: the smallest ECDF-band p-value over the D parameters' SBC ranks.
        num_parameters: D.
        num_datasets: N, the SBC datasets.
        coverage_p: the ECDF-band p-value of the coverage ranks; NaN: not known.
        bias_z: the SBC bias z-score of largest magnitude over parameters (> 0: posterior
            too low).
        dispersion_z: the SBC dispersion z-score of largest magnitude (> 0: U shape).
        coverage_z: the signed mean coverage deviation in null standard errors (> 0:
            conservative), `coverage_z`.
        spread: SBC's resampling sd of the combined p-value on the scale
            z = Phi^-1(1 - p): z at the 16% quantile of p over bootstrap resamples of the
            datasets minus z at its median (`sbibench.metrics.ecdf_p_quantiles`; one sd for
            a normal z), p capped at 1/2; NaN: not known.
    """

    sbc_p: float
    num_parameters: int
    num_datasets: int
    coverage_p: float = math.nan
    bias_z: float = math.nan
    dispersion_z: float = math.nan
    coverage_z: float = math.nan
    spread: float = math.nan

    @property
    def p_value(self) -> float:
        """The fit's combined p-value (`combine`)."""
        return combine(self.sbc_p, self.num_parameters, self.coverage_p)


@dataclass(frozen=True)
class Verdict:
    """One fit's verdict.

    Attributes:
        label: ``"calibrated"``, ``"miscalibrated"`` or ``"inconclusive"``.
        direction: how it is miscalibrated, e.g. ``"under-dispersed, overconfident"``;
            empty when calibrated or when no shape stands out.
        p_adjusted: the Holm-adjusted combined p-value.
        reason: why, in a few words.
    """

    label: str
    direction: str
    p_adjusted: float
    reason: str

    def __str__(self) -> str:
        return f"{self.label} ({self.direction})" if self.direction else self.label


def combine(sbc_p: float, num_parameters: int, coverage_p: float = math.nan) -> float:
    """Bonferroni over a fit's tests: min(1, T x the smallest p), T = D (+ 1 with coverage).

    Example:
        >>> combine(0.01, 2, 0.2)
        0.03
    """
    if not num_parameters >= 1:
        raise ValueError(f"num_parameters must be >= 1, got {num_parameters!r}")
    values = [sbc_p] if math.isnan(coverage_p) else [sbc_p, coverage_p]
    tests = num_parameters + (len(values) - 1)
    return float(min(1.0, tests * min(values)))


def holm(p_values: np.ndarray | list[float], clip: bool = True) -> np.ndarray:
    """Holm's step-down adjusted p-values, shape (m,) -> (m,); NaN stays NaN, uncounted.
    ``clip=False`` leaves them above 1 (how far a fit is from its rejection level).

    Example:
        >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    known = np.flatnonzero(~np.isnan(p))
    order = known[np.argsort(p[known], kind="stable")]
    m = len(order)
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.maximum.accumulate(scaled) if m else scaled
    out[order] = np.minimum(1.0, adjusted) if clip else adjusted
    return out


def coverage_z(mean_deviation: float, num_datasets: int, num_samples: int) -> float:
    """The signed mean coverage deviation (`CoverageCurve.mean_deviation` on the default grid
    of 101 levels) in standard errors under calibration: exact for ranks uniform on
    {0, ..., L}; > 0 conservative, < 0 overconfident.

    Example:
        >>> round(coverage_z(0.005, 1000, 100), 1)  # L = 100: a calibrated curve sits 0.005 up
        0.0
    """
    levels = np.linspace(0.0, 1.0, 101)
    r = np.arange(num_samples + 1)
    g = (r[:, None] < levels[None, :] * (num_samples + 1)).mean(1) - levels.mean()
    return float((mean_deviation - g.mean()) / (g.std() / math.sqrt(num_datasets)))


def _shape(evidence: Evidence) -> str:
    b, d = evidence.bias_z, evidence.dispersion_z
    if math.isnan(b) or math.isnan(d) or max(abs(b), abs(d)) < Z_DIRECTION:
        return ""
    if abs(b) >= abs(d):
        return "biased low" if b > 0 else "biased high"
    return "under-dispersed" if d > 0 else "over-dispersed"


def _coverage_side(evidence: Evidence) -> str:
    c = evidence.coverage_z
    if math.isnan(c) or abs(c) < Z_DIRECTION:
        return ""
    return "conservative" if c > 0 else "overconfident"


def z_of(p: float) -> float:
    """Phi^-1(1 - p) with p capped at 1/2 (so z >= 0): the scale SBC's spread is read on."""
    from scipy.stats import norm

    return float(norm.isf(min(max(p, 1e-300), 0.5)))


def judge(
    evidence: Evidence, p_adjusted: float, critical: float = math.nan, alpha: float = ALPHA
) -> Verdict:
    """One fit's verdict from its evidence and its board-adjusted p-value (module rule).

    Arguments:
        evidence: the fit's tests.
        p_adjusted: its Holm-adjusted combined p-value.
        critical: the combined p-value at which its verdict would flip, other fits held:
            ``alpha * p / p_holm`` with p_holm the unclipped adjusted value; NaN: no
            closeness check. The verdict is inconclusive when
            |z_of(p) - z_of(critical)| < ``evidence.spread``.
        alpha: the family-wise level.

    Example:
        >>> e = Evidence(1e-9, 1, 1000, 1e-8, bias_z=0.3, dispersion_z=9.0, coverage_z=-8.0)
        >>> str(judge(e, 5e-8))
        'miscalibrated (under-dispersed, overconfident)'
    """
    if math.isnan(p_adjusted):
        raise ValueError("p_adjusted is NaN: the fit has no calibration p-value")
    if not (math.isnan(evidence.spread) or math.isnan(critical)):
        distance = abs(z_of(evidence.p_value) - z_of(critical))
        if distance < evidence.spread:
            return Verdict(
                "inconclusive", "", p_adjusted,
                f"p {evidence.p_value:.2g} within one SBC resampling sd "
                f"({evidence.spread:.2g} in z) of the level {critical:.2g} that flips it",
            )  # fmt: skip
    if p_adjusted <= alpha:
        shape, side = _shape(evidence), _coverage_side(evidence)
        direction = ", ".join(part for part in (shape, side) if part)
        opposite = {("under-dispersed", "conservative"), ("over-dispersed", "overconfident")}
        if (shape, side) in opposite:  # e.g. marginals too wide, joint regions too small
            direction = f"mixed: SBC {shape}, coverage {side}"
        return Verdict("miscalibrated", direction, p_adjusted, f"adjusted p {p_adjusted:.2g}")
    if evidence.num_datasets < MIN_DATASETS:
        return Verdict(
            "inconclusive", "", p_adjusted,
            f"not rejected, but {evidence.num_datasets} < {MIN_DATASETS} datasets",
        )  # fmt: skip
    return Verdict("calibrated", "", p_adjusted, f"adjusted p {p_adjusted:.2g}")


def judge_all(evidence: list[Evidence], alpha: float = ALPHA) -> list[Verdict]:
    """Every fit's verdict, Holm-adjusting the combined p-values over all of them.

    Arguments:
        evidence: one per fit on the board, in any order.
        alpha: the family-wise level.

    Returns:
        One `Verdict` per fit, in the order given.
    """
    p = np.array([e.p_value for e in evidence])
    raw = holm(p, clip=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        # where the fit's p would make its adjusted p reach alpha (p = 0: alpha / m)
        critical = np.where(raw > 0, alpha * p / raw, alpha / max(len(p), 1))
    return [
        judge(e, float(min(1.0, r)), float(c), alpha)
        for e, r, c in zip(evidence, raw, critical, strict=True)
    ]
