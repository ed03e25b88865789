"""Our exact reference posteriors next to sbibm's stored ones: C2ST per observation against
the noise floor. A script, not asv (each C2ST of 10,000 vs 10,000 trains five classifiers).

    pip download sbibm==1.1.0 --no-deps -d /tmp/sbibm
    python benchmarks/peers/sbibm_references.py /tmp/sbibm/sbibm-1.1.0-py2.py3-none-any.whl

For each of the four tasks whose observations are sbibm's (their cards name the source) and
each observation k = 1..10, it reads sbibm's ``reference_posterior_samples.csv.bz2`` from the
wheel (no install needed), checks that the wheel's observation is the one on our card, and
scores our 10,000 reference samples against sbibm's 10,000 with the C2ST that the noise floors
use (`sbibench.scoring.sample_scores`: 5 folds, seed 0). The floor is the same C2ST between our
reference and 10,000 fresh exact draws, stored beside the references. Both are draws of the
C2ST between two exact sample sets, so their difference has standard deviation about sqrt(2)
times the binomial null's, 0.5 / sqrt(2n); a pair is called indistinguishable when the C2ST
exceeds the floor by less than 4 of those (0.020 at n = 10,000). Pass ``--markdown`` for a
table to paste; the exit status is 1 when any observation fails.
"""

from __future__ import annotations

import argparse
import bz2
import io
import math
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

from sbibench import get_task
from sbibench.reference.build import noise_floors
from sbibench.scoring import sample_scores

__all__ = ["SBIBM_NAMES", "compare", "sbibm_files"]

SBIBM_NAMES = {  # our task -> sbibm's
    "linear_gaussian": "gaussian_linear",
    "gaussian_linear_uniform": "gaussian_linear_uniform",
    "gaussian_mixture": "gaussian_mixture",
    "two_moons": "two_moons",
}
TOLERANCE_SDS = 4.0


def _csv(content: bytes) -> np.ndarray:
    return np.loadtxt(io.StringIO(content.decode()), delimiter=",", skiprows=1, ndmin=2)


def sbibm_files(wheel: Path, task: str, k: int) -> dict[str, np.ndarray]:
    """sbibm's observation (1, M), true parameters (1, D) and reference samples (N, D)."""
    folder = f"sbibm/tasks/{task}/files/num_observation_{k}"
    with zipfile.ZipFile(wheel) as archive:
        return {
            "observation": _csv(archive.read(f"{folder}/observation.csv")),
            "true_parameters": _csv(archive.read(f"{folder}/true_parameters.csv")),
            "samples": _csv(
                bz2.decompress(archive.read(f"{folder}/reference_posterior_samples.csv.bz2"))
            ),
        }


def compare(wheel: Path, name: str, k: int) -> dict:
    """C2ST of our reference samples against sbibm's for observation k, with the floor."""
    task = get_task(name)
    files = sbibm_files(wheel, SBIBM_NAMES[name], k)
    observation = torch.from_numpy(files["observation"][0])
    # The card copies the wheel's decimal text; float64 parsing of the same text agrees.
    if not torch.allclose(task.observation(k), observation, rtol=0, atol=1e-12):
        raise ValueError(f"{name} observation {k}: the card's data differ from sbibm's")
    ours = task.reference_samples(k)
    theirs = torch.from_numpy(files["samples"])
    scores = sample_scores(ours, theirs, ("c2st",), bandwidth=1.0)
    floor = noise_floors(task, k, len(ours))["c2st"]
    sd = scores["c2st_null_sd"]
    return {
        "task": name,
        "observation": k,
        "num_sbibm": len(theirs),
        "c2st": scores["c2st"],
        "floor": floor,
        "null_sd": sd,
        "excess_sds": (scores["c2st"] - floor) / (math.sqrt(2) * sd),
        "ok": scores["c2st"] - floor < TOLERANCE_SDS * math.sqrt(2) * sd,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="path of sbibm-1.1.0-py2.py3-none-any.whl")
    parser.add_argument("--task", action="append", choices=list(SBIBM_NAMES))
    parser.add_argument("--observation", type=int, action="append")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    if args.markdown:
        print("| task | obs | C2ST vs sbibm | noise floor | (C2ST - floor) / (sqrt2 sd) | |")
        print("|---|---:|---:|---:|---:|---|")
    for name in args.task or list(SBIBM_NAMES):
        for k in args.observation or range(1, 11):
            row = compare(args.wheel, name, k)
            rows.append(row)
            verdict = "ok" if row["ok"] else "DIFFERENT"
            if args.markdown:
                print(
                    f"| {name} | {k} | {row['c2st']:.4f} | {row['floor']:.4f} | "
                    f"{row['excess_sds']:+.1f} | {verdict} |",
                    flush=True,
                )
            else:
                print(
                    f"{name:<24} obs {k:>2}: C2ST {row['c2st']:.4f}, floor {row['floor']:.4f}, "
                    f"excess {row['excess_sds']:+.1f} sd, {verdict}",
                    flush=True,
                )
    sys.exit(0 if all(row["ok"] for row in rows) else 1)


if __name__ == "__main__":
    main()
