"""scripts/sbibm_table.py: the published sbibm rows it reads, and each cell's paired difference
and goal (ours <= sbibm + max(0.02, 2 se)) as the sbibm run's README states them."""

import importlib.util
from pathlib import Path

import pandas
import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("sbibm_table", ROOT / "scripts/sbibm_table.py")
sbibm_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sbibm_table)


def test_the_published_rows_are_whole():
    published = pandas.read_csv(sbibm_table.PUBLISHED)
    cells = published.groupby(["task", "algorithm", "num_simulations"])["num_observation"]
    assert len(cells) == 4 * 8 * 3
    assert (cells.apply(sorted) == [list(range(1, 11))] * len(cells)).all()
    assert published["C2ST"].between(0.45, 1.0).all()  # near 0.5, noise reads a little below
    assert set(published["algorithm"]) == set(sbibm_table.ALGORITHMS.values())


@pytest.mark.parametrize(
    ("shifts", "met"),
    [
        ([0.01] * 10, True),  # 0.01 above everywhere: within the 0.02 allowance
        ([0.03] * 10, False),  # 0.03 above everywhere, se 0: beyond it
        # mean 0.05 above with paired sd 0.105 (se 0.033): within 2 se of theirs
        ([0.15, -0.05] * 5, True),
    ],
)
def test_a_cell_meets_the_goal_by_its_paired_difference(tmp_path, shifts, met):
    published = pandas.read_csv(sbibm_table.PUBLISHED)
    theirs = published[(published["task"] == "two_moons") & (published["algorithm"] == "NPE")
                       & (published["num_simulations"] == 1000)].sort_values("num_observation")  # fmt: skip
    ours = pandas.DataFrame({
        "task": "two_moons", "method": "npe", "budget": 1000, "seed": 0,
        "observation": theirs["num_observation"].to_numpy(), "status": "ok",
        "c2st_sbibm": theirs["C2ST"].to_numpy() + shifts, "c2st": 0.7, "c2st_floor": 0.5,
    })  # fmt: skip
    ours.to_csv(tmp_path / "results.csv", index=False)
    (cell,) = sbibm_table.cells(tmp_path / "results.csv").itertuples()
    assert (cell.algorithm, cell.n, cell.met) == ("NPE", 10, met)
    assert cell.difference == pytest.approx(sum(shifts) / 10)
    differences = pandas.Series(shifts)
    assert cell.difference_se == pytest.approx(differences.std() / 10**0.5, abs=1e-12)
    assert "| two_moons | 1,000 | NPE | 10 |" in sbibm_table.markdown(
        sbibm_table.cells(tmp_path / "results.csv")
    )
