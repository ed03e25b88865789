"""Set every cell of an sbibm-suite run beside sbibm's published mean C2ST, as a Markdown table.

    python scripts/sbibm_table.py results/sbibm [--published benchmarks/peers/sbibm_published.csv]

A cell is (task, budget, algorithm). "ours" is the mean of ``c2st_sbibm`` (sbibm's recipe) over
the cell's observations, "sbibm" the published mean over the same observations; the
difference's se is the paired one (sd of the per-observation differences / sqrt(n)): both
sides score the same ten observations, so what the observations share cancels. A cell meets
the goal when ours <= sbibm + max(0.02, 2 se). "default" and "floor" are our own recipe's mean
C2ST and its exact-vs-exact floor on the same draws, so each row also shows how far the two
recipes read apart. Cells with fewer than ten observations so far are shown, marked "part".
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas

from sbibench.records import load_results
from sbibench.report.sbibm_format import ALGORITHMS

PUBLISHED = Path(__file__).resolve().parent.parent / "benchmarks/peers/sbibm_published.csv"


def cells(run: Path, published: Path = PUBLISHED) -> pandas.DataFrame:
    """One row per (task, budget, algorithm) that the run has ok records of."""
    ours = load_results(run)  # the records themselves: a run in progress has no results.csv
    ours = ours[(ours["status"] == "ok") & ours["method"].isin(list(ALGORITHMS))].copy()
    ours["algorithm"] = ours["method"].map(ALGORITHMS)
    theirs = pandas.read_csv(published).rename(
        columns={"num_simulations": "budget", "num_observation": "observation", "C2ST": "sbibm"}
    )
    both = ours.merge(theirs, on=["task", "algorithm", "budget", "observation"], how="left")
    rows = []
    for (task, budget, method), cell in both.groupby(["task", "budget", "method"], sort=False):
        n = len(cell)
        difference = cell["c2st_sbibm"] - cell["sbibm"]
        se = difference.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan
        goal = cell["sbibm"].mean() + max(0.02, 2 * se) if n > 1 else math.nan
        rows.append({
            "task": task, "budget": budget, "algorithm": ALGORITHMS[method], "n": n,
            "ours": cell["c2st_sbibm"].mean(),
            "ours_se": cell["c2st_sbibm"].std(ddof=1) / math.sqrt(n) if n > 1 else math.nan,
            "sbibm": cell["sbibm"].mean(), "difference": difference.mean(), "difference_se": se,
            "met": bool(cell["c2st_sbibm"].mean() <= goal) if n > 1 else None,
            "default": cell["c2st"].mean(), "floor": cell["c2st_floor"].mean(),
        })  # fmt: skip
    order = {name: i for i, name in enumerate(ALGORITHMS.values())}
    table = pandas.DataFrame(rows)
    return table.sort_values(
        ["task", "budget", "algorithm"], key=lambda c: c.map(order) if c.name == "algorithm" else c
    ).reset_index(drop=True)


def markdown(table: pandas.DataFrame) -> str:
    """The cells as a Markdown table."""
    lines = [
        "| task | sims | algorithm | obs | ours (sbibm recipe) | sbibm | ours - sbibm | goal "
        "| ours (default) | floor (default) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        met = {True: "met", False: "**missed**", None: ""}[row.met]
        if row.n < 10:
            met = f"part ({met})" if met else "part"
        lines.append(
            f"| {row.task} | {row.budget:,} | {row.algorithm} | {row.n} "
            f"| {row.ours:.3f} ± {row.ours_se:.3f} | {row.sbibm:.3f} "
            f"| {row.difference:+.3f} ± {row.difference_se:.3f} | {met} "
            f"| {row.default:.3f} | {row.floor:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder of the sbibm suite")
    parser.add_argument("--published", type=Path, default=PUBLISHED)
    args = parser.parse_args()
    table = cells(args.run, args.published)
    print(markdown(table))
    whole = table[table["n"] >= 10]
    print(
        f"\n{len(whole)} whole cells: {int(whole['met'].sum())} meet the goal; "
        f"mean ours - sbibm {whole['difference'].mean():+.3f}"
    )


if __name__ == "__main__":
    main()
