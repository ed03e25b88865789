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
    panel or the legend once drawn; one legend per figure; a method's colour is the same in
    every figure."""
    import matplotlib.pyplot as plt

    from sbibench.report.figures import all_figures, overlapping_text

    colours = {}
    for title, figure in all_figures(_many_methods(tiny_run), tiny_run):
        assert overlapping_text(figure) == [], title
        assert len(figure.legends) == 1 and all(not a.get_legend() for a in figure.axes)
        for handle in figure.legends[0].legend_handles:
            colour = (
                tuple(handle.get_color())
                if handle.get_label() != "exact posterior's floor"
                else None
            )
            assert colours.setdefault(handle.get_label(), colour) == colour
        plt.close(figure)
    methods = [m for m in colours if m != "exact posterior's floor"]
    assert len(methods) == 51 and len({colours[m] for m in methods}) == 20  # tab20, reused


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
