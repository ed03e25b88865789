"""The report's figures: accuracy against budget and wall time, SBC ECDF bands, coverage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["all_figures"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt


def _grid(count: int, width: float = 3.6, height: float = 3.0) -> tuple[Any, np.ndarray]:
    plt = _pyplot()
    columns = min(count, 4)
    rows = -(-count // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(width * columns, height * rows), squeeze=False
    )
    for axis in axes.flat[count:]:
        axis.set_visible(False)
    return figure, axes.flat


def c2st_by_budget(table: Any) -> Any:
    """C2ST against the simulation budget per task, one line per method, floor dashed."""
    import seaborn as sns

    ok = table[table["status"] == "ok"]
    tasks = sorted(ok["task"].unique())
    figure, axes = _grid(len(tasks))
    for axis, task in zip(axes, tasks, strict=False):
        data = ok[ok["task"] == task]
        sns.lineplot(
            data=data, x="budget", y="c2st", hue="method", marker="o", errorbar=("ci", 95), ax=axis
        )
        axis.axhline(data["c2st_floor"].mean(), color="grey", linestyle="--", label="exact floor")
        axis.set(xscale="log", title=task, ylim=(0.45, 1.0), xlabel="simulations", ylabel="C2ST")
        axis.legend(fontsize=6)
    return figure


def accuracy_by_time(table: Any) -> Any:
    """C2ST against wall time (simulate + train + sample) per task."""
    import seaborn as sns

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
        sns.scatterplot(data=ok[ok["task"] == task], x="seconds", y="c2st", hue="method", ax=axis)
        axis.set(xscale="log", title=task, xlabel="wall time (s)", ylabel="C2ST")
        axis.legend(fontsize=6)
    return figure


def _calibrated(table: Any, folder: Path) -> list[tuple[str, str, dict]]:
    """(task, method, kept SBC arrays) for every calibrated job in the folder."""
    found = []
    if "sbc_datasets" not in table:
        return found
    calibrated = table[table["sbc_datasets"].notna()].drop_duplicates("key")
    for _, row in calibrated.sort_values(["task", "method"]).iterrows():
        path = folder / "records" / f"{row['key']}.sbc.npz"
        if path.is_file():
            with np.load(path) as archive:
                found.append((row["task"], f"{row['method']} ({row['budget']})", dict(archive)))
    return found


def sbc_ecdf(calibrated: list) -> Any:
    """ECDF of SBC ranks minus the uniform CDF, per dimension, with the simultaneous 95% band
    of Säilynoja et al. (2022): a calibrated method stays inside the grey band."""
    from sbibench.metrics import ecdf_uniformity

    figure, axes = _grid(len(calibrated))
    for axis, (task, method, kept) in zip(axes, calibrated, strict=False):
        test = ecdf_uniformity(kept["ranks"], int(kept["num_samples"]))
        z = test.points
        axis.fill_between(z, test.lower - z, test.upper - z, color="grey", alpha=0.3)
        for d in range(test.ecdf.shape[1]):
            axis.plot(z, test.ecdf[:, d] - z, linewidth=1, label=f"θ{d + 1}" if d < 10 else None)
        axis.set(title=f"{task}: {method}", xlabel="fractional rank", ylabel="ECDF − uniform")
        axis.legend(fontsize=5, ncol=2)
    return figure


def coverage_curves(calibrated: list) -> Any:
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
            axis.plot(levels, coverage, label=method)
        axis.plot([0, 1], [0, 1], color="grey", linestyle="--")
        axis.set(title=task, xlabel="credibility level", ylabel="expected coverage")
        axis.legend(fontsize=6)
    return figure


def all_figures(table: Any, folder: Path) -> list[tuple[str, Any]]:
    """Every figure the report shows, titled."""
    figures = [
        ("C2ST against simulation budget", c2st_by_budget(table)),
        ("C2ST against wall time", accuracy_by_time(table)),
    ]
    calibrated = _calibrated(table, Path(folder))
    if calibrated:
        figures.append(
            ("SBC: rank ECDF minus uniform, with 95% simultaneous bands", sbc_ecdf(calibrated))
        )
        figures.append(("Expected coverage", coverage_curves(calibrated)))
    return figures
