"""The report's figures: accuracy against budget and wall time, accuracy and cost against
dimension (a dimension ladder), SBC ECDF bands, coverage.

Each figure has one panel per task and one legend for the whole figure (below the panels), and
a method has the same colour in every figure: colours are given out over the sorted method
names of the whole table, so a leaderboard with seventeen methods stays readable. Panels are
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

__all__ = ["all_figures", "method_colours", "overlapping_text"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt


def method_colours(methods: Any) -> dict[str, Any]:
    """A fixed colour per method name (sorted), from a palette of up to 20 distinct colours."""
    import seaborn as sns

    names = sorted({str(m) for m in methods})
    palette = sns.color_palette("tab10" if len(names) <= 10 else "tab20", len(names))
    return dict(zip(names, palette, strict=True))


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
    figure: Any, colours: dict[str, Any], shown: set[str], extra: list | None = None
) -> None:
    """One legend for the figure, below the panels: the methods it shows, in colour order."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=c, marker="o", label=m) for m, c in colours.items() if m in shown
    ]
    handles += extra or []
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6),
                  fontsize=8, frameon=False)  # fmt: skip


def _headline() -> tuple[str, str]:
    """(column, label) of the registry's headline score (`sbibench.scoring.headline`)."""
    column = headline().columns[0]
    return column.name, column.label or column.name


def score_by_budget(table: Any, colours: dict[str, Any]) -> Any:
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
            axis.plot(means.index, means.values, marker="o", color=colours[str(method)])
        if f"{column}_floor" in data:
            axis.axhline(data[f"{column}_floor"].mean(), color="grey", linestyle="--")
        axis.set(xscale="log", title=task, xlabel="simulations", ylabel=label)
    floor = Line2D([], [], color="grey", linestyle="--", label="exact posterior's floor")
    _legend(figure, colours, set(ok["method"].astype(str)), [floor])
    return figure


def accuracy_by_time(table: Any, colours: dict[str, Any]) -> Any:
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
            axis.scatter(group["seconds"], group[column], s=10, color=colours[str(method)])
        axis.set(xscale="log", title=task, xlabel="wall time (s)", ylabel=label)
    _legend(figure, colours, set(ok["method"].astype(str)))
    return figure


_TIME_PANELS = (
    ("fit", "training seconds"),  # time_train + time_propose (a sequential method's rounds)
    ("time_sample", "sampling seconds"),
)


def by_dimension(table: Any, colours: dict[str, Any], ladders: dict[str, dict[str, int]]) -> Any:
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
            axis.plot(means.index, means.values, marker="o", color=colours[str(method)])
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
    _legend(figure, colours, set(ok["method"].astype(str)), [floor])
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


def sbc_ecdf(calibrated: list, colours: dict[str, Any]) -> Any:
    """Per task, each method's SBC rank ECDF minus the uniform CDF in its worst coordinate,
    with the simultaneous 95% band of Säilynoja et al. (2022) for one coordinate: a calibrated
    method stays inside the grey band."""
    from sbibench.metrics import ecdf_uniformity  # torch: only for a run with calibration

    tasks = sorted({task for task, _, _ in calibrated})
    figure, axes = _grid(len(tasks))
    for axis, task in zip(axes, tasks, strict=False):
        for name, method, kept in calibrated:
            if name != task:
                continue
            test = ecdf_uniformity(kept["ranks"], int(kept["num_samples"]))
            z = test.points
            worst = np.abs(test.ecdf - z[:, None]).max(0).argmax()
            axis.plot(z, test.ecdf[:, worst] - z, linewidth=1, color=colours[method])
        axis.fill_between(z, test.lower - z, test.upper - z, color="grey", alpha=0.3)
        axis.set(title=task, xlabel="fractional rank", ylabel="ECDF − uniform")
    _legend(figure, colours, {method for _, method, _ in calibrated})
    return figure


def coverage_curves(calibrated: list, colours: dict[str, Any]) -> Any:
    """Expected coverage against credibility level (HPD or TARP), one line per method."""
    tasks = sorted({task for task, _, _ in calibrated})
    figure, axes = _grid(len(tasks))
    levels = np.linspace(0, 1, 101)
    for axis, task in zip(axes, tasks, strict=False):
        for name, method, kept in calibrated:
            if name != task:
                continue
            ranks = np.asarray(kept["coverage_ranks"])
            total = int(kept["num_samples"]) + 1
            coverage = (ranks[None, :] < levels[:, None] * total).mean(1)
            axis.plot(levels, coverage, color=colours[method], linewidth=1)
        axis.plot([0, 1], [0, 1], color="grey", linestyle="--")
        axis.set(title=task, xlabel="credibility level", ylabel="expected coverage")
    _legend(figure, colours, {method for _, method, _ in calibrated})
    return figure


def all_figures(table: Any, folder: Path) -> list[tuple[str, Any]]:
    """Every figure the report shows, titled (those of the headline score where the suite
    scored it)."""
    colours = method_colours(table["method"])
    figures = []
    column, label = _headline()
    if column in table and table[column].notna().any():
        figures += [
            (f"{label} against simulation budget", score_by_budget(table, colours)),
            (f"{label} against wall time", accuracy_by_time(table, colours)),
        ]
        ladders = dimension_ladders(table)
        if ladders:
            figures.append(
                (
                    f"{label}, training and sampling time against the parameter dimension",
                    by_dimension(table, colours, ladders),
                )
            )
    calibrated = _calibrated(table, Path(folder))
    if calibrated:
        figures.append(
            (
                "SBC at the largest budget: rank ECDF minus uniform in each method's worst "
                "coordinate, with the 95% simultaneous band",
                sbc_ecdf(calibrated, colours),
            )
        )
        figures.append(
            ("Expected coverage at the largest budget", coverage_curves(calibrated, colours))
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
