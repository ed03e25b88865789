"""The ranks: mean rank per method over (task, observation) blocks, its bootstrap interval
over observations and seeds, Friedman's test and Nemenyi's groups, references left out."""

import math

import numpy as np
import pandas as pd
import pytest

from sbibench.records import load_results
from sbibench.report.ranks import critical_difference, groups, rank_methods
from sbibench.report.tables import leaderboard, rank_sections


def _records(scores: dict[str, list[list[float]]], tasks=("t1", "t2")) -> pd.DataFrame:
    """Records of methods on each task's observations: scores[method][observation] lists
    that method's value per seed, the same on every task."""
    rows = []
    for task in tasks:
        for method, per_observation in scores.items():
            for observation, values in enumerate(per_observation, start=1):
                for seed, value in enumerate(values):
                    rows.append({"task": task, "method": method, "method_name": method,
                                 "budget": 1000, "seed": seed, "observation": observation,
                                 "status": "ok", "c2st": value})  # fmt: skip
    return pd.DataFrame(rows)


def test_methods_apart_on_every_block_rank_in_order_in_groups_of_their_own():
    table = _records({
        "b": [[0.7]] * 15, "a": [[0.6]] * 15, "c": [[0.8]] * 15, "exact": [[0.5]] * 15,
    })  # fmt: skip
    ranking = rank_methods(table, "c2st")
    assert ranking.methods == ["a", "b", "c"]  # the exact posterior is a reference
    assert list(ranking.mean_rank) == [1.0, 2.0, 3.0] and ranking.blocks == 30
    assert list(ranking.low) == list(ranking.high) == [1.0, 2.0, 3.0]  # no spread at all
    assert ranking.friedman_p < 1e-10 and ranking.groups == ["a", "b", "c"]
    assert ranking.cd == pytest.approx(critical_difference(3, 30))
    assert list(ranking.score) == pytest.approx([0.6, 0.7, 0.8])


def test_a_higher_is_better_score_ranks_the_other_way():
    table = _records({"a": [[0.6]] * 5, "b": [[0.7]] * 5})
    assert rank_methods(table, "c2st", lower_better=False).methods == ["b", "a"]


def test_methods_the_data_cannot_order_are_one_group():
    """Equal scores on every block: Friedman's statistic is 0 (p = 1), so one group."""
    table = _records({"a": [[0.6]] * 10, "b": [[0.6]] * 10, "c": [[0.6]] * 10})
    ranking = rank_methods(table, "c2st")
    assert ranking.friedman_p == pytest.approx(1.0) and ranking.groups == ["a"] * 3
    assert list(ranking.mean_rank) == [2.0] * 3


def test_a_failed_run_ranks_last_on_its_block():
    table = _records({"a": [[0.6]] * 4, "b": [[0.7]] * 4})
    table.loc[(table["method"] == "a") & (table["observation"] == 1), "status"] = "failed"
    ranking = rank_methods(table, "c2st")
    # a is last on observation 1 of both tasks (2 of 8 blocks): 1 * 6/8 + 2 * 2/8
    assert dict(zip(ranking.methods, ranking.mean_rank, strict=True)) == {"a": 1.25, "b": 1.75}


def test_the_interval_covers_the_spread_of_the_training_seeds():
    """b's three seeds straddle a's value: its score is their mean (a's + 0.02, so b ranks
    second on every block), but resampled seeds often put it first: the interval reaches
    well below 2 (and is widened to hold the point estimate, 2). With one seed of the same
    mean nothing varies, and the interval is a point."""
    rng = np.random.default_rng(0)
    spread = [[0.62 + d for d in rng.permutation([-0.1, 0.0, 0.1])] for _ in range(10)]
    ranking = rank_methods(_records({"a": [[0.6]] * 10, "b": spread}), "c2st")
    b = ranking.methods.index("b")
    assert ranking.mean_rank[b] == 2.0
    # Per block, resampled b beats a when its 3 draws from {-0.1, 0, 0.1} sum below 0:
    # p = (1 - 7/27) / 2 = 0.37, so b's mean rank over 20 blocks is 2 - 0.37 = 1.63 on
    # average with sd sqrt(0.37 * 0.63 / 20) = 0.11: its 2.5% quantile is near 1.42.
    assert ranking.low[b] < 1.6 and ranking.high[b] == 2.0
    one = rank_methods(_records({"a": [[0.6]] * 10, "b": [[0.62]] * 10}), "c2st")
    assert one.low[1] == one.high[1] == 2.0


def test_groups_are_the_maximal_runs_within_the_critical_difference():
    assert groups(np.array([1.0, 2.0, 3.0]), cd=0.5) == ["a", "b", "c"]
    assert groups(np.array([1.0, 2.0, 3.0]), cd=math.inf) == ["a", "a", "a"]
    assert groups(np.array([1.0, 1.5, 2.4, 3.0]), cd=1.0) == ["a", "ab", "bc", "c"]


def test_the_report_ranks_first_and_each_board_has_a_rank_column(tiny_run):
    table = load_results(tiny_run)
    (section,) = rank_sections(table)  # one budget
    title, text, rows = section
    assert title == "Ranks at 200 simulations" and "Friedman" in text
    assert rows[0] == ["method", "mean rank", "95% interval", "group", "mean C2ST"]
    assert [row[0] for row in rows[1:]] == ["npe", "rej_abc", "exact"] or [
        row[0] for row in rows[1:]
    ] == ["rej_abc", "npe", "exact"]
    assert rows[-1][1] == "reference"
    board = leaderboard(table)["normal_mean"]
    rank = board[0].index("rank")
    cells = {row[0]: row[rank] for row in board[1:]}
    assert cells["exact"] == "reference" and cells["npe"].count("[") == 1


def test_a_method_run_on_some_tasks_only_is_listed_apart_not_ranked_last():
    """c (run on t1 only, as a set embedding runs on set tasks) would rank last on t2's
    blocks where it never ran: it is left out of the ranks and named as partial."""
    table = pd.concat([_records({"a": [[0.6]] * 3, "b": [[0.7]] * 3}),
                       _records({"c": [[0.55]] * 3}, tasks=("t1",))])  # fmt: skip
    ranking = rank_methods(table, "c2st")
    assert ranking.methods == ["a", "b"] and ranking.partial == ["c"]
    assert list(ranking.mean_rank) == [1.0, 2.0]
    (section,) = rank_sections(table)
    assert ["c", "on 1 of 2 tasks", "", "", "0.550"] in section[2]
