"""Tests for the calibration verdict's pieces: Bonferroni within a fit, Holm over a board, the
rank-histogram shape, the signed coverage deviation and the bootstrap spread of a p-value."""

import math

import numpy as np
import pytest

from sbibench.metrics import ecdf_p_quantiles, ecdf_uniformity, rank_shape
from sbibench.metrics.verdict import Evidence, combine, coverage_z, holm, judge, judge_all


def test_combine_is_bonferroni_over_parameters_and_coverage():
    assert combine(0.01, 3) == pytest.approx(0.03)
    assert combine(0.01, 3, 0.002) == pytest.approx(0.008)  # 4 tests, smallest 0.002
    assert combine(0.5, 2, 0.9) == 1.0
    with pytest.raises(ValueError, match="num_parameters"):
        combine(0.1, 0)


def test_holm_matches_its_definition_and_skips_nan():
    p = np.array([0.02, np.nan, 0.001, 0.04, 0.5])
    # sorted 0.001, 0.02, 0.04, 0.5 over m = 4: 0.004, 0.06, max(0.06, 0.08), max(., 0.5)
    expected = [0.06, np.nan, 0.004, 0.08, 0.5]
    np.testing.assert_allclose(holm(p), expected)
    assert holm([0.9, 0.8], clip=False).tolist() == pytest.approx([1.6, 1.6])
    assert holm([]).shape == (0,)


def _ranks(generator, n, scale=1.0, shift=0.0, num_samples=100):
    """SBC ranks (N,) of the conjugate Gaussian: posterior N(x / 2, 1 / 2) scaled and shifted."""
    theta = generator.standard_normal(n)
    x = theta + generator.standard_normal(n)
    sd = math.sqrt(0.5)
    samples = x[:, None] / 2 + shift * sd + scale * sd * generator.standard_normal((n, num_samples))
    return (samples < theta[:, None]).sum(1)


def test_rank_shape_is_standard_normal_for_exact_ranks():
    # 400 exact fits of N = 200: each z is N(0, 1) under uniformity, so the mean over fits has
    # sd 1 / 20 and the sd over fits has sd ~ 1 / sqrt(2 * 400) = 0.035; 4-sd tolerances.
    rng = np.random.default_rng(0)
    z = np.array([np.concatenate(rank_shape(_ranks(rng, 200), 100)) for _ in range(400)])
    assert np.abs(z.mean(0)).max() < 4 / 20
    assert np.abs(z.std(0) - 1).max() < 4 * 0.035


@pytest.mark.parametrize(
    ("scale", "shift", "sign_bias", "sign_dispersion"),
    [(0.5, 0.0, 0, 1), (2.0, 0.0, 0, -1), (1.0, 1.0, -1, 0), (1.0, -1.0, 1, 0)],
)
def test_rank_shape_tells_narrow_wide_and_shifted(scale, shift, sign_bias, sign_dispersion):
    bias, dispersion = rank_shape(_ranks(np.random.default_rng(1), 200, scale, shift), 100)
    b, d = float(bias[0]), float(dispersion[0])
    if sign_bias:  # shifted up by one posterior sd: the truth ranks low, "biased high"
        assert np.sign(b) == sign_bias and abs(b) > abs(d) and abs(b) > 5
    else:  # 2x too narrow: a U, dispersion > 0; 2x too wide: a hump, < 0
        assert np.sign(d) == sign_dispersion and abs(d) > abs(b) and abs(d) > 5


def test_coverage_z_is_zero_centred_for_uniform_ranks():
    # The mean deviation of 500 uniform-rank curves of N = 200: its z has mean 0 and sd 1
    # (sd of the mean over 500: 0.045; tolerance 4 sd), whatever L's discreteness.
    rng = np.random.default_rng(2)
    levels = np.linspace(0, 1, 101)
    for num_samples in (20, 100):
        z = []
        for _ in range(500):
            r = rng.integers(0, num_samples + 1, 200)
            deviation = ((r[None, :] < levels[:, None] * (num_samples + 1)).mean(1) - levels).mean()
            z.append(coverage_z(deviation, 200, num_samples))
        assert abs(np.mean(z)) < 4 * 0.045 and abs(np.std(z) - 1) < 0.15


def test_bootstrap_quantiles_bracket_the_observed_p_value():
    rng = np.random.default_rng(3)
    ranks = np.column_stack([_ranks(rng, 500), _ranks(rng, 500)])
    observed = ecdf_uniformity(ranks, 100).p_value.min()
    low, median, high = ecdf_p_quantiles(ranks, 100, (0.05, 0.5, 0.95))
    assert 0 <= low <= median <= high <= 1
    # resampling adds the sample's own deviation again: the bootstrap median sits below the
    # observed p-value, and the 5% quantile well below it
    assert low < observed and low < 0.1 * high
    again = ecdf_p_quantiles(ranks, 100, (0.05, 0.5, 0.95))
    np.testing.assert_array_equal(again, [low, median, high])  # seeded
    with pytest.raises(ValueError, match="quantiles"):
        ecdf_p_quantiles(ranks, 100, (1.5,))


def test_judge_reads_directions_and_disagreement():
    narrow = Evidence(1e-12, 1, 1000, 1e-10, bias_z=0.5, dispersion_z=8.0, coverage_z=-7.0)
    assert str(judge(narrow, 1e-10)) == "miscalibrated (under-dispersed, overconfident)"
    wide = Evidence(1e-12, 1, 1000, 1e-10, bias_z=0.5, dispersion_z=-8.0, coverage_z=6.0)
    assert str(judge(wide, 1e-10)) == "miscalibrated (over-dispersed, conservative)"
    shifted = Evidence(1e-12, 1, 1000, 1e-10, bias_z=-9.0, dispersion_z=4.0, coverage_z=-3.0)
    assert str(judge(shifted, 1e-10)) == "miscalibrated (biased high, overconfident)"
    odd = Evidence(1e-12, 1, 1000, 1e-10, bias_z=0.5, dispersion_z=8.0, coverage_z=5.0)
    expected = "miscalibrated (mixed: SBC under-dispersed, coverage conservative)"
    assert str(judge(odd, 1e-10)) == expected
    unclear = Evidence(1e-12, 1, 1000, 1e-10, bias_z=1.0, dispersion_z=1.5, coverage_z=0.3)
    assert str(judge(unclear, 1e-10)) == "miscalibrated"  # no shape stands out
    few = Evidence(0.5, 1, 50, 0.5)
    assert judge(few, 1.0).label == "inconclusive" and "50 < 200" in judge(few, 1.0).reason
    assert judge(Evidence(0.5, 1, 1000, 0.5), 1.0).label == "calibrated"


def test_judge_all_calls_a_borderline_fit_inconclusive():
    # Alone on a board (m = 1, T = 2), p = 0.01 has critical level 0.05: z 2.33 against 1.64,
    # a distance of 0.68 in z. With a resampling sd of 1 it is inconclusive, with 0.5 it is
    # miscalibrated, and with no known spread the threshold alone decides.
    base = {"sbc_p": 0.005, "num_parameters": 1, "num_datasets": 1000, "coverage_p": 0.2}
    assert judge_all([Evidence(**base, spread=1.0)])[0].label == "inconclusive"
    assert judge_all([Evidence(**base, spread=0.5)])[0].label == "miscalibrated"
    assert judge_all([Evidence(**base)])[0].label == "miscalibrated"
    assert judge_all([]) == []
