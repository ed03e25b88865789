"""Calibration verdicts end to end: the calibration scores as the worker computes them, each
fit's evidence as the report reads it back, and the board's Holm correction; the report shows
the verdict column and its rule, also for records written before the verdict's columns."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from sbibench.metrics.verdict import RULE
from sbibench.report.calibration import cell, evidence, verdicts
from sbibench.report.render import write_report
from sbibench.run.suite import SBC_DEFAULTS
from sbibench.scoring import Calibration, compute, registered

DATASETS, DRAWS = SBC_DEFAULTS["num_datasets"], SBC_DEFAULTS["num_posterior_samples"]
NEW_COLUMNS = ("sbc_bias_z", "sbc_dispersion_z", "coverage_mean_deviation", "coverage_ecdf_p")


def _calibrate(seed, scale=1.0, shift=0.0):
    """A fit's record columns and kept arrays, as the worker makes them: theta ~ N(0, 1),
    x ~ N(theta, 1), posterior N(x / 2, 1 / 2) (exact, sampled exactly) with its sd scaled
    and its mean shifted by ``shift`` posterior sds; HPD coverage from its density."""
    generator = torch.Generator().manual_seed(seed)
    theta = torch.randn(DATASETS, 1, generator=generator, dtype=torch.float64)
    x = theta + torch.randn(DATASETS, 1, generator=generator, dtype=torch.float64)
    sd = scale * math.sqrt(0.5)
    mean = x / 2 + shift * math.sqrt(0.5)
    noise = torch.randn(DATASETS, DRAWS, 1, generator=generator, dtype=torch.float64)
    samples = mean[:, None, :] + sd * noise
    posterior = torch.distributions.Normal(mean[:, None, :], sd)

    def log_prob(values):  # (N, M, 1) -> (N, M), row n under dataset n's posterior
        return posterior.log_prob(values).sum(-1)

    inputs = Calibration(theta, samples, DRAWS, log_prob)
    summary, kept = {}, {"num_samples": DRAWS}
    for metric in registered(calibration=True):
        values = compute(metric, inputs)
        kept.update({name: values.pop(name) for name in metric.arrays})
        summary.update(values)
    return summary, kept


@pytest.fixture(scope="module")
def board():
    """30 exact fits and three miscalibrated ones (2x too narrow, 2x too wide, shifted by one
    posterior sd), at the standard sizes (200 datasets x 100 draws), judged as one board."""
    from sbibench.metrics.verdict import judge_all

    fits = [_calibrate(seed) for seed in range(30)]
    fits += [_calibrate(100, scale=0.5), _calibrate(101, scale=2.0), _calibrate(102, shift=1.0)]
    found = judge_all([evidence(summary, kept) for summary, kept in fits])
    return fits, found


def test_exact_posterior_is_calibrated_across_thirty_fits(board):
    _, found = board
    exact = found[:30]
    assert not [v for v in exact if v.label == "miscalibrated"]
    # inconclusive needs p within one resampling sd of its flip level: for an exact fit on a
    # board of 33 about p < 0.03, ~6% of fits; Binomial(30, 0.06) exceeds 6 with prob. 0.002.
    assert sum(v.label == "calibrated" for v in exact) >= 24, [str(v) for v in exact]


def test_narrow_wide_and_shifted_posteriors_are_miscalibrated_with_a_direction(board):
    _, found = board
    narrow, wide, shifted = found[30:]
    assert str(narrow) == "miscalibrated (under-dispersed, overconfident)"
    assert str(wide) == "miscalibrated (over-dispersed, conservative)"
    # shifted up: the truth ranks low among the samples, and falls outside the HPD regions
    assert str(shifted) == "miscalibrated (biased high, overconfident)"
    assert max(v.p_adjusted for v in found[30:]) < 1e-10


def test_records_without_the_new_columns_give_the_same_evidence(board):
    fits, _ = board
    for summary, kept in (fits[0], fits[30], fits[31]):
        new = evidence(summary, kept)
        older = {k: v for k, v in summary.items() if k not in NEW_COLUMNS}
        old = evidence(older, kept)  # computed from the kept ranks instead
        for field in ("coverage_p", "bias_z", "dispersion_z", "coverage_z", "spread"):
            assert getattr(old, field) == pytest.approx(getattr(new, field), rel=1e-9), field
        # without kept arrays either, only the SBC p-value is known: no direction, no spread
        bare = evidence(older, None)
        assert math.isnan(bare.coverage_p) and math.isnan(bare.spread)
        assert bare.p_value == pytest.approx(min(1.0, summary["sbc_ecdf_p_min"]))


def test_cell_counts_differing_fits():
    from sbibench.metrics.verdict import Verdict

    found = {
        "a": Verdict("calibrated", "", 1.0, ""),
        "b": Verdict("miscalibrated", "biased low", 0.0, ""),
    }
    assert cell(["a"], found) == "calibrated"
    assert cell(["a", "a"], found) == "calibrated"  # one fit's records
    assert cell(["a", "b", "c"], found) == "calibrated 1/2; miscalibrated (biased low) 1/2"
    assert cell(["c"], found) == "–"


def test_report_shows_the_verdict_column_and_its_rule(tiny_run, tmp_path):
    markdown, page, latex = (p.read_text() for p in write_report(tiny_run, tmp_path))
    assert RULE in markdown and "calibration |" in markdown
    assert "<th>calibration</th>" in page and "Holm-adjusted" in page
    assert "Holm-adjusted" in latex
    # the tiny grid calibrates on a handful of datasets: never enough to call calibrated
    board = markdown.split("## normal_mean")[1].split("##")[0]
    assert "inconclusive" in board and "| calibrated" not in board


def test_older_records_still_report(tiny_run, tmp_path):
    folder = tmp_path / "older"
    shutil.copytree(tiny_run, folder)
    for path in (folder / "records").glob("*.json"):
        content = json.loads(path.read_text())
        for record in content["records"]:
            for name in NEW_COLUMNS:
                record.pop(name, None)
        path.write_text(json.dumps(content))
    (folder / "results.csv").unlink()
    markdown = write_report(folder, tmp_path / "out")[0].read_text()
    assert RULE in markdown and "inconclusive" in markdown
    found = verdicts(__import__("sbibench.records").records.load_results(folder), folder)
    assert found and all(np.isfinite(v.p_adjusted) for v in found.values())
