"""The report's calibration verdicts: each fit's evidence from its record and kept ranks, and
the board-wide Holm correction (the rule: `sbibench.metrics.verdict`).

A fit's evidence comes from its record's columns where they exist and, for records written
before those columns did, from the ranks kept beside it (``records/<key>.sbc.npz``): the
coverage test's p-value, the rank-histogram shape and the signed coverage deviation are
computed from the kept arrays. The bootstrap spread of the p-value always is (B = 200
resamples of the fit's datasets, seed 0; `sbibench.metrics.verdict.Evidence`). Where neither holds a value the evidence says NaN
and the verdict is made without it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cell", "evidence", "verdicts"]


def _number(row: Any, column: str) -> float:
    value = row.get(column, math.nan) if hasattr(row, "get") else math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def evidence(row: Any, arrays: dict[str, np.ndarray] | None) -> Any:
    """One fit's `~sbibench.metrics.verdict.Evidence` from one of its records (a mapping of
    columns) and its kept arrays (`sbibench.records.read_ranks`, or None)."""
    from sbibench.metrics import ecdf_p_quantiles, ecdf_uniformity, rank_shape
    from sbibench.metrics.verdict import Evidence, coverage_z, z_of

    ranks = coverage_ranks = None
    num_samples = 0
    if arrays is not None and "ranks" in arrays and "num_samples" in arrays:
        num_samples = int(arrays["num_samples"])
        ranks = np.asarray(arrays["ranks"])
        ranks = ranks[:, None] if ranks.ndim == 1 else ranks
        if "coverage_ranks" in arrays:
            coverage_ranks = np.asarray(arrays["coverage_ranks"]).reshape(-1)
    n = _number(row, "sbc_datasets")
    n = len(ranks) if math.isnan(n) and ranks is not None else n
    fields: dict[str, float] = {
        "coverage_p": _number(row, "coverage_ecdf_p"),
        "bias_z": _number(row, "sbc_bias_z"),
        "dispersion_z": _number(row, "sbc_dispersion_z"),
    }
    if ranks is not None and math.isnan(fields["bias_z"] + fields["dispersion_z"]):
        bias, dispersion = rank_shape(ranks, num_samples)
        fields["bias_z"] = float(bias[np.argmax(np.abs(bias))])
        fields["dispersion_z"] = float(dispersion[np.argmax(np.abs(dispersion))])
    if coverage_ranks is not None and math.isnan(fields["coverage_p"]):
        fields["coverage_p"] = float(ecdf_uniformity(coverage_ranks, num_samples).p_value[0])
    # the z of the signed deviation needs L (its null mean moves with L's discreteness)
    fields["coverage_z"] = math.nan
    if coverage_ranks is not None:
        deviation = _number(row, "coverage_mean_deviation")
        if math.isnan(deviation):  # an older record: the curve from its kept ranks
            levels = np.linspace(0.0, 1.0, 101)
            covered = coverage_ranks[None, :] < levels[:, None] * (num_samples + 1)
            deviation = float((covered.mean(1) - levels).mean())
        fields["coverage_z"] = coverage_z(deviation, len(coverage_ranks), num_samples)
    spread = math.nan
    if ranks is not None:
        columns = ranks if coverage_ranks is None else np.column_stack([ranks, coverage_ranks])
        low, median = columns.shape[1] * ecdf_p_quantiles(columns, num_samples, (0.16, 0.5))
        spread = z_of(low) - z_of(median)
    d = _number(row, "sbc_num_parameters")
    d = ranks.shape[1] if math.isnan(d) and ranks is not None else d
    return Evidence(
        _number(row, "sbc_ecdf_p_min"), int(d), int(n) if not math.isnan(n) else 0,
        spread=spread, **fields,
    )  # fmt: skip


def verdicts(table: Any, folder: str | Path | None = None) -> dict[str, Any]:
    """{job key: `~sbibench.metrics.verdict.Verdict`} for every fit of the table with an SBC
    p-value, Holm-corrected over all of them; the kept ranks are read from ``folder`` (a run
    folder) where given. Empty when no record carries SBC."""
    from sbibench.metrics.verdict import judge_all

    if "sbc_ecdf_p_min" not in table or "sbc_num_parameters" not in table:
        return {}
    fits = table[(table["status"] == "ok") & table["sbc_ecdf_p_min"].notna()]
    fits = fits.drop_duplicates("key")
    if fits.empty:
        return {}
    from sbibench.records import read_ranks

    found = []
    for _, row in fits.iterrows():
        arrays = read_ranks(Path(folder), str(row["key"])) if folder is not None else None
        found.append(evidence(row, arrays))
    return dict(zip(fits["key"].astype(str), judge_all(found), strict=True))


def cell(keys: Any, found: dict[str, Any]) -> str:
    """A board cell: the verdict of the fits ``keys``, "–" where none has one; several fits
    that differ are counted, e.g. "miscalibrated (overconfident) 2/3; calibrated 1/3"."""
    labels = [str(found[k]) for k in dict.fromkeys(map(str, keys)) if k in found]
    if not labels:
        return "–"
    distinct = list(dict.fromkeys(labels))
    if len(distinct) == 1:
        return distinct[0] if len(labels) == 1 else f"{distinct[0]} {len(labels)}/{len(labels)}"
    return "; ".join(f"{v} {labels.count(v)}/{len(labels)}" for v in distinct)
