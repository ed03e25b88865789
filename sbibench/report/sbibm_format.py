"""A run's records in sbibm's results format, so that they merge with sbibm's published tables
(sbi-benchmark/results, ``main_paper.csv``): one row per record with sbibm's columns, in
its order, and its spelling of budgets ("10³").

- ``task``: sbibm's name (`SBIBM_TASKS`: ``linear_gaussian`` is its ``gaussian_linear``).
- ``algorithm``: sbibm's name (`ALGORITHMS`) for the records of the shipped ``sbibm`` suite,
  whose methods are sbibm's algorithms with its published settings; any other suite's method
  keeps its label (``npe`` in the standard suite is a MAF, not sbibm's NSF).
- ``C2ST``: ``c2st_sbibm``, sbibm's own recipe, and empty where the run did not score it. Our
  default ``c2st`` reads differently (docs/scores.md) and is never written here.
- ``NLTP``: ``nll_true_parameters``, -log q(theta* | x), the same quantity as sbibm's.
- ``RT``: minutes of simulating, training, proposing and drawing this record's samples (an
  amortized fit's time in each of its records, as each sbibm run trains its own).
- ``MMD``, ``MEDDIST``, ``KSD``: empty. Our MMD takes its bandwidth from the pooled samples,
  sbibm's from the reference samples alone, so the two are different numbers.
- ``folder``: the record's job key (sbibm's run folder).

Failed records are rows with empty scores, so that counts match the grid.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["ALGORITHMS", "COLUMNS", "SBIBM_TASKS", "budget_label", "sbibm_table", "write_sbibm"]

COLUMNS = (
    "task", "num_simulations", "num_observation", "algorithm",
    "C2ST", "MMD", "MEDDIST", "NLTP", "RT", "KSD", "folder",
)  # fmt: skip
# The sbibm suite's labels -> sbibm's algorithm names, in sbibm's table order.
ALGORITHMS = {
    "rej_abc": "REJ-ABC", "smc_abc": "SMC-ABC", "npe": "NPE", "snpe_c": "SNPE",
    "nle": "NLE", "snle": "SNLE", "nre_b": "NRE", "snre_b": "SNRE",
}  # fmt: skip
# Our tasks that are sbibm's under another name.
SBIBM_TASKS = {"linear_gaussian": "gaussian_linear"}
_TIMES = ("time_simulate", "time_train", "time_propose", "time_sample")
_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def budget_label(budget: int) -> str:
    """A budget as sbibm's tables write it: "10³" for a power of ten, else the number.

    Example:
        >>> budget_label(1000), budget_label(2000)
        ('10³', '2000')
    """
    power = round(math.log10(budget)) if budget > 0 else 0
    return f"10{str(power).translate(_SUPERSCRIPT)}" if 10**power == budget else str(budget)


def sbibm_table(table: Any) -> Any:
    """The records of ``table`` (`sbibench.load_results`) as a DataFrame of sbibm's `COLUMNS`,
    sorted by task, budget, algorithm and observation."""
    import pandas as pd

    def column(name: str) -> Any:
        return table[name] if name in table else pd.Series(math.nan, index=table.index)

    ok = table["status"] == "ok"
    sbibm_suite = table["suite"] == "sbibm"
    algorithm = table["method"].where(~sbibm_suite, table["method"].map(ALGORITHMS))
    runtime = sum(column(name).fillna(0.0) for name in _TIMES) / 60.0
    out = pd.DataFrame({
        "task": table["task"].map(lambda task: SBIBM_TASKS.get(task, task)),
        "num_simulations": table["budget"].map(budget_label),
        "num_observation": table["observation"],
        "algorithm": algorithm.fillna(table["method"]),
        "C2ST": column("c2st_sbibm").where(ok),
        "MMD": math.nan, "MEDDIST": math.nan,
        "NLTP": column("nll_true_parameters").where(ok),
        "RT": runtime.where(ok),
        "KSD": math.nan,
        "folder": table["key"],
    })  # fmt: skip
    order = table.sort_values(["task", "budget", "method", "seed", "observation"]).index
    return out.loc[order, list(COLUMNS)].reset_index(drop=True)


def write_sbibm(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write ``sbibm.csv``: the run folder's records in sbibm's format (`sbibm_table`), into
    ``out`` (default: the run folder). Returns its path."""
    from sbibench.paths import write_atomic
    from sbibench.records import load_results

    folder = Path(folder)
    table = load_results(folder)
    if table.empty:
        raise ValueError(f"{folder}: no records to write")
    out = Path(out) if out is not None else folder
    out.mkdir(parents=True, exist_ok=True)
    path = out / "sbibm.csv"
    write_atomic(path, sbibm_table(table).to_csv(index=False).encode())
    return path
