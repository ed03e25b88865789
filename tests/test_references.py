"""Reference posteriors: reproducible files, checksums, and verification that catches damage."""

import shutil

import pytest
import torch

from sbibench import get_task, list_tasks
from sbibench.references import (
    ReferenceError,
    build_reference,
    load_reference,
    reference_dir,
    verify_reference,
)


@pytest.mark.parametrize("name", list_tasks())
def test_reference_samples_have_the_exact_moments(name):
    """10,000 exact draws: each sample mean lies within 4.5 standard errors (sd / 100) of the
    exact mean recorded in the manifest, and each sample variance within 4.5 of its standard
    error; with ~10 x D such checks per task a false alarm has probability below 1e-3."""
    task = get_task(name)
    for k in range(1, task.num_observations + 1):
        samples = task.reference_samples(k)
        mean, cov = task.reference_moments(k)
        sd = cov.diagonal().sqrt()
        assert ((samples.mean(0) - mean).abs() < 4.5 * sd / 100).all()
        # Relative SE of a sample variance: sqrt((kurtosis - 1) / n); Gaussian kurtosis 3,
        # the heavier-tailed Gamma / inverse-gamma here stay below 6.
        relative = (samples.var(0) - cov.diagonal()).abs() / cov.diagonal()
        assert (relative < 4.5 * (5 / 10_000) ** 0.5).all()
        assert task.prior.support.check(samples).all()
        assert torch.allclose(task.posterior(task.observation(k)).mean, mean, rtol=1e-12)


def test_building_again_gives_identical_bytes(tmp_path):
    task = get_task("normal_mean_variance")
    folder = build_reference(task, tmp_path / task.name)
    for path in reference_dir(task).iterdir():
        assert (folder / path.name).read_bytes() == path.read_bytes(), path.name


def test_committed_references_verify():
    for name in list_tasks():
        assert verify_reference(get_task(name)) == []


@pytest.fixture
def copy(tmp_path):
    task = get_task("poisson_gamma")
    folder = tmp_path / task.name
    shutil.copytree(reference_dir(task), folder)
    return task, folder


def test_one_changed_byte_is_caught_by_load_and_verify(copy):
    task, folder = copy
    path = folder / "samples.npz"
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))
    with pytest.raises(ReferenceError, match=r"samples.npz: sha256 differs"):
        load_reference(task, folder)
    problems = verify_reference(task, folder)
    assert any("samples.npz: sha256 differs" in p for p in problems)
    assert any("samples.npz: differs from what the card regenerates" in p for p in problems)


def test_an_edited_observation_is_named(copy):
    task, folder = copy
    path = folder / "observations.csv"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace(",", ",1", 1)
    path.write_text("\n".join(lines) + "\n")
    problems = verify_reference(task, folder)
    assert any("observations.csv: sha256 differs" in p for p in problems)
    assert any(
        "observations.csv: differs from what the card regenerates (observations 4)" in p
        for p in problems
    )


def test_a_missing_or_broken_manifest_is_reported(copy):
    task, folder = copy
    (folder / "MANIFEST.json").write_text("{not json")
    assert "not a valid manifest" in verify_reference(task, folder)[0]
    with pytest.raises(ReferenceError, match="MANIFEST.json: not a valid manifest"):
        load_reference(task, folder)
    (folder / "MANIFEST.json").unlink()
    assert "MANIFEST.json: missing" in verify_reference(task, folder)[0]
