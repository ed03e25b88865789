"""Building reference posteriors: reproducible files, noise floors, and verification that
names what was damaged."""

import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch

from sbibench import get_task, list_tasks
from sbibench.reference.build import (
    FLOOR_DRAWS,
    FLOOR_SIZES,
    build_reference,
    floor_summary,
    noise_floors,
    verify_reference,
)
from sbibench.reference.store import ReferenceError, _npz_bytes, load_reference, reference_dir
from sbibench.scoring import FLOOR_SCORES


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    """normal_mean_variance's reference folder, built twice (floors of 2 draws)."""
    task = get_task("normal_mean_variance")
    folder = tmp_path_factory.mktemp("builds")
    # 2 draws per floor, not the shipped 10: a build costs a fifth (the floors are almost all
    # of it), and reproducibility does not depend on how many there are
    return task, [
        build_reference(task, folder / side / task.name, floor_draws=2)
        for side in ("first", "second")
    ]


@pytest.mark.slow
def test_building_again_gives_identical_bytes(two_builds):
    """On one machine, two builds agree byte for byte. Against the committed files, the
    observations and parameters are the same bytes anywhere; the samples may differ in their
    last bit on another CPU (its vector math rounds differently: 0.2% of normal_mean_variance's
    draws by one ulp, measured), which `sbibench reference verify` allows (1e-9 relative) and
    CI checks for every task. The noise floors (MMD's float32 sums may differ in their last
    digits with the thread count) are checked through verify, below."""
    task, (first, second) = two_builds
    for name in ("observations.csv", "true_parameters.csv", "samples.npz"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    for name in ("observations.csv", "true_parameters.csv"):
        assert (first / name).read_bytes() == (reference_dir(task) / name).read_bytes(), name
    assert verify_reference(task, first, floors=False) == []


@pytest.mark.slow
def test_built_noise_floors_verify(two_builds):
    task, (first, _) = two_builds
    assert verify_reference(task, first) == []


def test_committed_references_verify():
    # Everything but the noise floors, which take seconds per observation to regenerate:
    # `sbibench reference verify` in CI and the slow test below regenerate those.
    for name in list_tasks():
        assert verify_reference(get_task(name), floors=False) == []
        assert load_reference(get_task(name)).floors["draws"] == FLOOR_DRAWS, name


@pytest.mark.slow
def test_committed_noise_floors_verify():
    assert verify_reference(get_task("normal_mean")) == []


def test_noise_floors_are_stored_for_the_suites_sizes_and_computed_for_others():
    task = get_task("normal_mean")
    stored = noise_floors(task, 3, 2000)
    row = next(
        r
        for r in load_reference(task).floors["floors"]
        if (r["observation"], r["num_samples"]) == (3, 2000)
    )
    assert stored == {key: row[key] for name in FLOOR_SCORES for key in (name, f"{name}_sd")}
    for name in FLOOR_SCORES:  # each mean and sd is that of the row's stored draws
        assert len(row["draws"][name]) == FLOOR_DRAWS
        assert (row[name], row[f"{name}_sd"]) == floor_summary(row["draws"][name])


def test_floors_at_a_size_not_stored_are_computed_once_and_cached(tmp_path, monkeypatch):
    task = get_task("normal_mean")
    monkeypatch.setenv("SBIBENCH_CACHE_DIR", str(tmp_path))
    computed = noise_floors(task, 3, 300)
    # The exact posterior against itself: the C2ST floor's mean over 10 draws lies within 4
    # binomial sds of the mean (0.5 / sqrt(600) / sqrt(10)) of chance plus the small upward
    # bias a cross-validated accuracy has at chance (it is a maximum over what each fold
    # learns; 0.016 measured here, allowed up to 0.03). Its sd, from 10 draws, lies in the
    # chi-square(9) 0.1%-99.9% range of a sd of binomial size: 0.36 to 1.76 x 0.5 / sqrt(600).
    binomial = 0.5 / 600**0.5
    assert -4 * binomial / FLOOR_DRAWS**0.5 < computed["c2st"] - 0.5 < 0.03
    assert 0.36 * binomial < computed["c2st_sd"] < 1.76 * binomial
    files = list((tmp_path / "floors").iterdir())
    assert len(files) == 1 and files[0].name.startswith("normal_mean-")
    assert noise_floors(task, 3, 300) == computed  # read back, not recomputed
    files[0].write_text("{broken")  # a damaged cache entry is computed again
    assert noise_floors(task, 3, 300) == computed


def test_floors_under_other_score_options_are_refused(copy):
    task, folder = copy
    path = folder / "noise_floors.json"
    table = json.loads(path.read_text())
    table["options"]["c2st"] = "another recipe"
    path.write_text(json.dumps(table, indent=1) + "\n")
    assert any("noise_floors.json: sha256 differs" in p for p in verify_reference(task, folder))
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    manifest["files"]["noise_floors.json"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(ReferenceError, match="computed under other score options"):
        noise_floors(task, 1, 2000, folder)


@pytest.mark.slow
def test_an_edited_noise_floor_is_named(copy):
    task, folder = copy
    path = folder / "noise_floors.json"
    table = json.loads(path.read_text())
    # observation 2 at the larger size: its first draw moved well past the 4 sd (0.014 at
    # 10,000) verify allows, the mean and sd moved with it so that only regeneration can tell
    row = table["floors"][3]
    row["draws"]["c2st"][0] += 0.05
    row["c2st"], row["c2st_sd"] = floor_summary(row["draws"]["c2st"])
    table["floors"][0]["mmd_sd"] *= 2  # observation 1 at 2,000: an sd its draws do not give
    path.write_text(json.dumps(table, indent=1) + "\n")
    problems = verify_reference(task, folder)
    assert any(f"observation 2 at {FLOOR_SIZES[1]} samples: c2st differ" in p for p in problems), (
        problems
    )
    wanted = f"observation 1 at {FLOOR_SIZES[0]} samples: mmd's mean or sd (not those of its"
    assert any(wanted in p for p in problems), problems


def test_a_changed_sample_is_named_by_verify(copy):
    # Regeneration is compared as numbers (to 1e-9 of the largest value, so that last-bit
    # differences between CPUs pass); a value moved by 0.1% is named with its observation.
    task, folder = copy
    samples = load_reference(task, folder).samples.clone()
    samples[6, 5000, 0] *= 1.001
    (folder / "samples.npz").write_bytes(_npz_bytes(samples))
    problems = verify_reference(task, folder, floors=False)
    assert any("samples.npz: sha256 differs" in p for p in problems)
    assert any(
        "samples.npz: differs from what the card regenerates (observations 7)" in p
        for p in problems
    ), problems


def test_an_edited_observation_is_named(copy):
    task, folder = copy
    path = folder / "observations.csv"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace(",", ",1", 1)
    path.write_text("\n".join(lines) + "\n")
    problems = verify_reference(task, folder, floors=False)
    assert any("observations.csv: sha256 differs" in p for p in problems)
    assert any(
        "observations.csv: differs from what the card regenerates (observations 4)" in p
        for p in problems
    )


SBIBM_WHEEL = os.environ.get("SBIBENCH_SBIBM_WHEEL", "")


@pytest.mark.slow
@pytest.mark.skipif(
    not Path(SBIBM_WHEEL).is_file(),
    reason="set SBIBENCH_SBIBM_WHEEL to sbibm-1.1.0-py2.py3-none-any.whl "
    "(pip download sbibm==1.1.0 --no-deps) to compare with sbibm's references",
)
@pytest.mark.parametrize(
    "name", ["linear_gaussian", "gaussian_linear_uniform", "gaussian_mixture", "two_moons"]
)
def test_references_are_indistinguishable_from_sbibms(name):
    """C2ST of our 10,000 reference samples against sbibm's stored 10,000, for each of the ten
    observations, exceeds the stored noise floor (the same C2ST between two exact sample sets)
    by less than 4 standard deviations of a difference of two null C2STs, 4 sqrt(2) 0.5 /
    sqrt(2n) = 0.020; with 40 such checks a false alarm has probability about 1e-3."""
    import bz2
    import io
    import zipfile

    import numpy as np

    from sbibench.scoring import sample_scores

    sbibm = {"linear_gaussian": "gaussian_linear"}.get(name, name)
    task = get_task(name)
    with zipfile.ZipFile(SBIBM_WHEEL) as wheel:
        for k in range(1, 11):
            folder = f"sbibm/tasks/{sbibm}/files/num_observation_{k}"
            text = bz2.decompress(wheel.read(f"{folder}/reference_posterior_samples.csv.bz2"))
            theirs = np.loadtxt(io.StringIO(text.decode()), delimiter=",", skiprows=1)
            observation = np.loadtxt(
                io.StringIO(wheel.read(f"{folder}/observation.csv").decode()),
                delimiter=",",
                skiprows=1,
            )
            assert np.allclose(task.observation(k).numpy(), observation, rtol=0, atol=1e-12)
            ours = task.reference_samples(k)
            score = sample_scores(ours, torch.from_numpy(theirs), ("c2st",), bandwidth=1.0)
            floor = noise_floors(task, k, len(ours))["c2st"]
            allowed = 4 * math.sqrt(2) * score["c2st_null_sd"]
            assert score["c2st"] - floor < allowed, (k, score["c2st"], floor)


def test_padded_observations_are_compared_padding_and_all(tmp_path):
    """normal_mean_sets' observations hold NaN padding: an untouched regeneration matches,
    a moved number or a padding entry filled in (a set grown by one) is named."""
    task = get_task("normal_mean_sets")
    folder = tmp_path / task.name
    shutil.copytree(reference_dir(task), folder)
    assert verify_reference(task, folder, floors=False) == []
    path = folder / "observations.csv"
    lines = path.read_text().splitlines()
    cells = lines[3].split(",")
    cells[1] = repr(float(cells[1]) + 0.01)  # observation 3: its first draw moved
    lines[3] = ",".join(cells)
    cells = lines[8].split(",")
    cells[cells.index("nan")] = "0.5"  # observation 8 (n = 10): an 11th draw
    lines[8] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    problems = verify_reference(task, folder, floors=False)
    assert any(
        "observations.csv: differs from what the card regenerates (observations 3, 8)" in p
        for p in problems
    ), problems
