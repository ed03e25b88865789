"""The report's figures: accuracy against budget and wall time, accuracy and cost against
dimension (a dimension ladder), SBC ECDF bands, coverage.

Each figure has one panel per task and one legend for the whole figure (below the panels), and
a method has the same style in every figure (`method_styles`): its family (ABC, posterior,
likelihood or ratio estimation, references, others) gives the colour, and within a family each
method has its own shade, marker and line style, so nineteen methods stay apart. Panels are
laid out by matplotlib's constrained layout, which keeps titles, tick labels and axis labels
of neighbouring panels apart (`overlapping_text` checks that it did).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sbibench.records import read_ranks
from sbibench.report.tables import dimension_ladders
from sbibench.scoring import headline

__all__ = ["FAMILIES", "all_figures", "method_styles", "overlapping_text"]

# Method families (by method name, not label) and their colours: tab10's blue, orange, green,
# red, grey; anything else (a user's method, the sbi package's) is purple.
FAMILIES = {
    "posterior estimation": (("npe", "snpe_a", "snpe_b", "snpe_c", "fmpe", "npse"), 0),
    "likelihood estimation": (("nle", "snle"), 2),
    "ratio estimation": (("nre", "nre_b", "nre_c", "bnre", "snre", "snre_b"), 3),
    "ABC": (("rej_abc", "smc_abc"), 1),
    "references": (("exact", "oracle_mcmc", "amortized_vi"), 7),
}
_OTHER = ("others", 4)
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_LINES = ("-", "--", "-.", ":")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt


def family_of(name: str) -> tuple[str, int]:
    """(family, tab10 colour index) of a method name (`FAMILIES`)."""
    for family, (names, colour) in FAMILIES.items():
        if name in names:
            return family, colour
    return _OTHER


def method_styles(table: Any) -> dict[str, dict[str, Any]]:
    """Per method label of ``table``, its matplotlib style (``color``, ``marker``,
    ``linestyle``): the family's colour (by the label's method name) in a shade of its own,
    and a marker and line style of its own within the family. Labels are taken in family
    order, then sorted, so the legend groups each family."""
    import seaborn as sns

    names = table.drop_duplicates("method").set_index("method")["method_name"]
    labels = sorted(names.index.astype(str))
    order = {family: i for i, family in enumerate([*FAMILIES, _OTHER[0]])}
    by_family: dict[str, list[str]] = {}
    for label in labels:
        family, _ = family_of(str(names.get(label, label)))
        by_family.setdefault(family, []).append(label)
    base = sns.color_palette("tab10", 10)
    styles = {}
    for family in sorted(by_family, key=order.get):
        members = by_family[family]
        _, index = family_of(str(names.get(members[0], members[0])))
        shades = sns.blend_palette(
            [sns.dark_palette(base[index], 4)[1], base[index], sns.light_palette(base[index], 4)[2]],
            max(len(members), 2),
        )  # fmt: skip
        spread = np.linspace(0, len(shades) - 1, len(members)).round().astype(int)
        for i, label in enumerate(members):
            styles[label] = {
                "color": tuple(shades[spread[i]]),
                "marker": _MARKERS[i % len(_MARKERS)],
                "linestyle": _LINES[i % len(_LINES)],
            }
    return styles


def _grid(count: int, width: float = 3.6, height: float = 3.0) -> tuple[Any, np.ndarray]:
    plt = _pyplot()
    columns = min(count, 3)
    rows = -(-count // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(width * columns, height * rows + 1.2), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    for axis in axes.flat[count:]:
        axis.set_visible(False)
    return figure, axes.flat


def _legend(
    figure: Any, styles: dict[str, dict], shown: set[str], extra: list | None = None
) -> None:
    """One legend for the figure, below the panels: the methods it shows, by family."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], label=m, **style) for m, style in styles.items() if m in shown]
    handles += extra or []
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6),
                  fontsize=8, frameon=False)  # fmt: skip


def _headline() -> tuple[str, str]:
    """(column, label) of the registry's headline score (`sbibench.scoring.headline`)."""
    column = headline().columns[0]
    return column.name, column.label or column.name


def overview(table: Any) -> Any:
    """One panel per budget: a methods x tasks grid of the mean headline score, coloured by its
    excess over the exact posterior's floor (the score where no floor is recorded); the
    competing methods by mean rank (`sbibench.report.ranks`), then the references."""
    from sbibench.report.ranks import REFERENCES, rank_methods

    plt = _pyplot()
    import seaborn as sns

    column, label = _headline()
    ok = table[table["status"] == "ok"]
    budgets = sorted(ok["budget"].unique())
    tasks = sorted(ok["task"].unique())
    methods_of = ok.drop_duplicates("method").set_index("method")["method_name"]
    rows_of = {}
    for budget in budgets:
        records = table[table["budget"] == budget]
        ranking = rank_methods(
            records, column, lower_better=headline().columns[0].better != "higher"
        )
        ranked = ranking.methods if ranking is not None else []
        references = sorted(m for m in records["method"].unique()
                            if methods_of.get(m) in REFERENCES)  # fmt: skip
        others = sorted(set(records["method"].unique()) - set(ranked) - set(references))
        rows_of[budget] = [*ranked, *others, *references]
    height = max(len(rows) for rows in rows_of.values())
    figure, axes = plt.subplots(
        1, len(budgets), figsize=(max(0.75 * len(tasks) + 2.4, 4.5) * len(budgets), 0.3 * height + 2.2),
        squeeze=False, layout="constrained",
    )  # fmt: skip
    floor = f"{column}_floor"
    grids = {}
    for budget in budgets:
        data = ok[ok["budget"] == budget]
        means = data.pivot_table(index="method", columns="task", values=column, aggfunc="mean")
        means = means.reindex(index=rows_of[budget], columns=tasks)
        colour = means
        if floor in data and data[floor].notna().any():
            floors = data.groupby("task")[floor].mean().reindex(tasks)
            colour = means - floors.to_numpy()[None, :]
        grids[budget] = (means, colour)
    top = max(float(np.nanmax(c.to_numpy())) for _, c in grids.values())  # one scale for all
    for axis, budget in zip(axes.flat, budgets, strict=True):
        means, colour = grids[budget]
        sns.heatmap(colour, ax=axis, annot=means, fmt=".2f", cmap="rocket_r", vmin=0,
                    vmax=max(top, 1e-3), cbar=axis is axes.flat[-1], annot_kws={"fontsize": 7},
                    cbar_kws={"label": f"{label} minus the exact posterior's floor"})  # fmt: skip
        axis.set(title=f"{budget:,} simulations", xlabel="", ylabel="")
        axis.tick_params(axis="x", labelrotation=45, labelsize=8)
        axis.tick_params(axis="y", labelsize=8)
    return figure


def score_by_budget(table: Any, styles: dict[str, dict]) -> Any:
    """The headline score against the simulation budget per task, one line per method, its
    floor dashed."""
    from matplotlib.lines import Line2D

    column, label = _headline()
    ok = table[table["status"] == "ok"]
    tasks = sorted(ok["task"].unique())
    figure, axes = _grid(len(tasks))
    for axis, task in zip(axes, tasks, strict=False):
        data = ok[ok["task"] == task]
        for method, group in data.groupby("method"):
            means = group.groupby("budget")[column].mean()
            axis.plot(means.index, means.values, **styles[str(method)])
        if f"{column}_floor" in data:
            axis.axhline(data[f"{column}_floor"].mean(), color="grey", linestyle="--")
        axis.set(xscale="log", title=task, xlabel="simulations", ylabel=label)
    floor = Line2D([], [], color="grey", linestyle="--", label="exact posterior's floor")
    _legend(figure, styles, set(ok["method"].astype(str)), [floor])
    return figure


def accuracy_by_time(table: Any, styles: dict[str, dict]) -> Any:
    """The headline score against wall time (simulate + train + propose + sample) per task."""
    column, label = _headline()
    ok = table[table["status"] == "ok"].copy()
    ok["seconds"] = (
        ok[["time_simulate", "time_train", "time_propose", "time_sample"]]
        .fillna(0)
        .sum(axis=1)
        .clip(lower=1e-3)
    )
    tasks = sorted(ok["task"].unique())
    figure, axes = _grid(len(tasks))
    for axis, task in zip(axes, tasks, strict=False):
        data = ok[ok["task"] == task]
        for method, group in data.groupby("method"):
            style = styles[str(method)]
            axis.scatter(group["seconds"], group[column], s=12, color=style["color"],
                         marker=style["marker"])  # fmt: skip
        axis.set(xscale="log", title=task, xlabel="wall time (s)", ylabel=label)
    _legend(figure, styles, set(ok["method"].astype(str)))
    return figure


_TIME_PANELS = (
    ("fit", "training seconds"),  # time_train + time_propose (a sequential method's rounds)
    ("time_sample", "sampling seconds"),
)


def by_dimension(table: Any, styles: dict[str, dict], ladders: dict[str, dict[str, int]]) -> Any:
    """Along each dimension ladder (``{family: {task: D}}``): the headline score (floor
    dashed), training and sampling seconds per observation against the parameter dimension D, one line per
    method, mean over the rung's records; D and the seconds log-scaled."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullLocator

    ok = table[table["status"] == "ok"].copy()
    ok["fit"] = ok[["time_train", "time_propose"]].fillna(0).sum(axis=1)
    score = _headline()
    panels = [(family, *panel) for family in ladders for panel in (score, *_TIME_PANELS)]
    figure, axes = _grid(len(panels))
    for axis, (family, column, label) in zip(axes, panels, strict=False):
        data = ok[ok["task"].isin(list(ladders[family]))]
        data = data.assign(dimension=data["task"].map(ladders[family]))
        for method, group in data.groupby("method"):
            means = group.groupby("dimension")[column].mean()
            if column != score[0]:
                means = means.clip(lower=1e-2)  # on a log axis; ABC's "training" is zero
            axis.plot(means.index, means.values, **styles[str(method)])
        axis.set(xscale="log", title=f"{family}: {label}", xlabel="parameter dimension D",
                 ylabel=label)  # fmt: skip
        rungs = sorted(set(ladders[family].values()))
        axis.set_xticks(rungs, [str(d) for d in rungs])  # the rungs, not powers of ten
        axis.xaxis.set_minor_locator(NullLocator())
        if column == score[0]:
            if f"{column}_floor" in data:
                floor = data.groupby("dimension")[f"{column}_floor"].mean()
                axis.plot(floor.index, floor.values, color="grey", linestyle="--")
        else:
            axis.set_yscale("log")
    floor = Line2D([], [], color="grey", linestyle="--", label="exact posterior's floor")
    _legend(figure, styles, set(ok["method"].astype(str)), [floor])
    return figure


def _calibrated(table: Any, folder: Path) -> list[tuple[str, str, dict]]:
    """(task, method, kept SBC arrays) of every calibrated job at its task's largest budget."""
    found = []
    if "sbc_datasets" not in table:
        return found
    calibrated = table[table["sbc_datasets"].notna()].drop_duplicates("key")
    largest = calibrated.groupby("task")["budget"].transform("max")
    calibrated = calibrated[calibrated["budget"] == largest]
    for _, row in calibrated.sort_values(["task", "method"]).iterrows():
        arrays = read_ranks(folder, row["key"])
        if arrays is not None:
            found.append((row["task"], str(row["method"]), arrays))
    return found


def sbc_ecdf(calibrated: list, styles: dict[str, dict]) -> Any:
    """Per task, each method's SBC rank ECDF minus the uniform CDF in its worst coordinate,
    with the simultaneous band of Säilynoja et al. (2022) at level 1 - 0.05 / D for D
    coordinates (Bonferroni, as the calibration verdict combines them): a calibrated method's
    worst coordinate leaves the grey band with probability at most 5%."""
    from sbibench.metrics import ecdf_uniformity  # torch: only for a run with calibration

    tasks = sorted({task for task, _, _ in calibrated})
    figure, axes = _grid(len(tasks))
    for axis, task in zip(axes, tasks, strict=False):
        for name, method, kept in calibrated:
            if name != task:
                continue
            ranks = np.asarray(kept["ranks"])
            ranks = ranks[:, None] if ranks.ndim == 1 else ranks
            test = ecdf_uniformity(ranks, int(kept["num_samples"]), alpha=0.05 / ranks.shape[1])
            z = test.points
            worst = np.abs(test.ecdf - z[:, None]).max(0).argmax()
            style = styles[method]
            axis.plot(z, test.ecdf[:, worst] - z, linewidth=1, color=style["color"],
                      linestyle=style["linestyle"])  # fmt: skip
        axis.fill_between(z, test.lower - z, test.upper - z, color="grey", alpha=0.3)
        axis.set(title=task, xlabel="fractional rank", ylabel="ECDF − uniform")
    _legend(figure, styles, {method for _, method, _ in calibrated})
    return figure


def coverage_curves(calibrated: list, styles: dict[str, dict]) -> Any:
    """Expected coverage against credibility level (HPD or TARP), one line per method, with
    the simultaneous 95% band of a calibrated method's curve (the curve is the ECDF of its
    coverage ranks: the SBC band of Säilynoja et al., 2022, for one coordinate)."""
    from sbibench.metrics import ecdf_uniformity  # torch: only for a run with calibration

    tasks = sorted({task for task, _, _ in calibrated})
    figure, axes = _grid(len(tasks))
    levels = np.linspace(0, 1, 101)
    for axis, task in zip(axes, tasks, strict=False):
        band = None
        for name, method, kept in calibrated:
            if name != task or "coverage_ranks" not in kept:
                continue
            ranks = np.asarray(kept["coverage_ranks"]).reshape(-1)
            total = int(kept["num_samples"]) + 1
            coverage = (ranks[None, :] < levels[:, None] * total).mean(1)
            style = styles[method]
            axis.plot(levels, coverage, color=style["color"], linestyle=style["linestyle"],
                      linewidth=1)  # fmt: skip
            if band is None:  # the same for every method of the task: the suite's SBC size
                band = ecdf_uniformity(ranks[:, None], int(kept["num_samples"]))
        if band is not None:
            axis.fill_between(band.points, band.lower, band.upper, color="grey", alpha=0.3)
        axis.plot([0, 1], [0, 1], color="grey", linestyle="--")
        axis.set(title=task, xlabel="credibility level", ylabel="expected coverage")
    _legend(figure, styles, {method for _, method, _ in calibrated})
    return figure


def all_figures(table: Any, folder: Path) -> list[tuple[str, Any]]:
    """Every figure the report shows, titled (those of the headline score where the suite
    scored it)."""
    styles = method_styles(table)
    figures = []
    column, label = _headline()
    if column in table and table[column].notna().any():
        figures.append(
            (f"Overview: mean {label} per method and task, coloured by its excess over the "
             "exact posterior's floor; methods by mean rank, references last", overview(table))
        )  # fmt: skip
        if table["budget"].nunique() > 1:  # one budget: nothing to draw against it
            figures.append((f"{label} against simulation budget", score_by_budget(table, styles)))
        figures.append((f"{label} against wall time", accuracy_by_time(table, styles)))
        ladders = dimension_ladders(table)
        if ladders:
            figures.append(
                (
                    f"{label}, training and sampling time against the parameter dimension",
                    by_dimension(table, styles, ladders),
                )
            )
    calibrated = _calibrated(table, Path(folder))
    if calibrated:
        figures.append(
            (
                "SBC at the largest budget: rank ECDF minus uniform in each method's worst "
                "coordinate, with the 95% band over all coordinates",
                sbc_ecdf(calibrated, styles),
            )
        )
        figures.append(
            (
                "Expected coverage at the largest budget, with a calibrated method's 95% band",
                coverage_curves(calibrated, styles),
            )
        )
    return figures


def overlapping_text(figure: Any) -> list[tuple[str, str]]:
    """Pairs of panels (each with its title, tick labels and axis labels as drawn) and the
    legend whose boxes overlap once the figure is drawn; empty when the layout kept them apart."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    boxes = [
        (f"panel {i} ({axis.get_title()})", axis.get_tightbbox(renderer))
        for i, axis in enumerate(a for a in figure.axes if a.get_visible())
    ]
    boxes += [("legend", legend.get_window_extent(renderer)) for legend in figure.legends]
    return [
        (boxes[a][0], boxes[b][0])
        for a in range(len(boxes))
        for b in range(a + 1, len(boxes))
        if boxes[a][1].overlaps(boxes[b][1])
    ]
