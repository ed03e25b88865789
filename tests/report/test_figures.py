"""The report's figures: legible with many methods, one colour per method, and the dimension
ladder's figure."""

from sbibench.records import load_results


def _many_methods(tiny_run):
    """The tiny run's records under seventeen method names and five task names, as many as a
    standard leaderboard shows: a layout test needs the count, not new numbers."""
    import pandas

    table = load_results(tiny_run)
    parts = []
    for i in range(17):
        part = table.copy()
        part["method"] = part["method"] + f"_{i:02d}"
        parts.append(part)
    for extra in ("linear_gaussian", "linear_gaussian_vae", "normal_mean_variance"):
        part = parts[0].copy()
        part["task"] = extra
        parts.append(part)
    return pandas.concat(parts, ignore_index=True)


def test_figures_stay_legible_with_seventeen_methods(tiny_run):
    """Five task panels, 51 method labels: no panel's title, ticks or labels overlap another
    panel or the legend once drawn; one legend per figure; a method's style (colour, marker,
    line) is the same in every figure and no two methods share one."""
    import matplotlib.pyplot as plt

    from sbibench.report.figures import all_figures, overlapping_text

    colours = {}
    for title, figure in all_figures(_many_methods(tiny_run), tiny_run):
        assert overlapping_text(figure) == [], title
        if title.startswith("Overview"):  # a grid with a colour bar: no method legend
            assert not figure.legends and len(figure.axes[0].get_yticklabels()) == 51
            plt.close(figure)
            continue
        assert len(figure.legends) == 1 and all(not a.get_legend() for a in figure.axes)
        for handle in figure.legends[0].legend_handles:
            style = (tuple(handle.get_color()), handle.get_marker(), handle.get_linestyle())
            if handle.get_label() != "exact posterior's floor":
                assert colours.setdefault(handle.get_label(), style) == style
        plt.close(figure)
    assert len(colours) == 51 and len(set(colours.values())) == 51


def test_a_family_shares_a_hue_and_its_methods_differ_in_shade_and_marker(tiny_run):
    """npe, snpe_c and fmpe (posterior estimation) are blues, rej_abc is orange; within the
    family no two share a colour or a marker."""
    import colorsys

    import pandas

    from sbibench.report.figures import method_styles

    table = pandas.DataFrame({
        "method": ["npe", "npe_nsf", "snpe_c", "fmpe", "rej_abc"],
        "method_name": ["npe", "npe", "snpe_c", "fmpe", "rej_abc"],
    })  # fmt: skip
    styles = method_styles(table)
    hue = {m: colorsys.rgb_to_hls(*s["color"])[0] for m, s in styles.items()}
    blues = [hue[m] for m in ("npe", "npe_nsf", "snpe_c", "fmpe")]
    assert max(blues) - min(blues) < 0.05 and abs(hue["rej_abc"] - blues[0]) > 0.2
    family = [styles[m] for m in ("npe", "npe_nsf", "snpe_c", "fmpe")]
    assert len({s["color"] for s in family}) == len({s["marker"] for s in family}) == 4


def test_a_dimension_ladder_gets_a_figure(ladder_run):
    """C2ST, training and sampling time against D, one panel each, on a log axis; a run on
    fewer than three dimensions of a family has no such figure."""
    from sbibench.report.figures import all_figures, overlapping_text

    table = load_results(ladder_run)
    figures = dict(all_figures(table, ladder_run))
    title = "C2ST, training and sampling time against the parameter dimension"
    figure = figures[title]
    titles = [axis.get_title() for axis in figure.axes if axis.get_visible()]
    assert titles == [
        "linear_gaussian: C2ST",
        "linear_gaussian: training seconds",
        "linear_gaussian: sampling seconds",
    ]
    assert all(axis.get_xscale() == "log" for axis in figure.axes if axis.get_visible())
    assert overlapping_text(figure) == []
    two_rungs = table[table["task"] != "linear_gaussian"]
    assert title not in dict(all_figures(two_rungs, ladder_run))


def test_the_sbc_band_holds_all_coordinates_of_a_calibrated_method():
    """Calibrated ranks in 10-D: the band drawn is the simultaneous band at 1 - 0.05 / 10
    (Bonferroni over the coordinates), and the worst coordinate stays inside it, where a
    one-coordinate band is narrower. The coverage panel draws its band too."""
    import numpy as np

    from sbibench.metrics import ecdf_uniformity
    from sbibench.report.figures import coverage_curves, sbc_ecdf

    rng = np.random.default_rng(0)  # uniform ranks: calibrated by construction
    kept = {"ranks": rng.integers(0, 101, (200, 10)), "num_samples": 100,
            "coverage_ranks": rng.integers(0, 101, 200)}  # fmt: skip
    styles = {"exact": {"color": (0, 0, 0), "marker": "o", "linestyle": "-"}}
    figure = sbc_ecdf([("linear_gaussian", "exact", kept)], styles)
    axis = figure.axes[0]
    band = axis.collections[0].get_paths()[0].vertices
    wide = ecdf_uniformity(kept["ranks"], 100, alpha=0.005)
    narrow = ecdf_uniformity(kept["ranks"], 100, alpha=0.05)
    assert band[:, 1].max() == np.float64((wide.upper - wide.points).max())
    assert (wide.upper - wide.points).max() > (narrow.upper - narrow.points).max()
    (line,) = axis.lines
    z, y = line.get_data()
    assert ((wide.lower - z <= y + 1e-12) & (y <= wide.upper - z + 1e-12)).all()
    coverage = coverage_curves([("linear_gaussian", "exact", kept)], styles)
    assert len(coverage.axes[0].collections) == 1  # the band
