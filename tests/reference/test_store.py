"""Stored reference posteriors: exact draws, read only when their checksums and card match."""

import shutil

import pytest
import torch

from sbibench import get_task, list_tasks
from sbibench.reference.build import verify_reference
from sbibench.reference.store import ReferenceError, load_reference, reference_dir


@pytest.mark.parametrize("name", list_tasks())
def test_reference_samples_have_the_exact_moments(name):
    """n exact draws (10,000, or the card's num_reference_samples): each sample mean lies
    within 4.5 standard errors (sd / sqrt(n)) of the exact mean recorded in the manifest, and
    each sample variance within 4.5 of its standard error; a check fails by chance with
    probability 7e-6, so even the 1,000 checks of the 100-D task alarm falsely below 1%."""
    task = get_task(name)
    for k in range(1, task.num_observations + 1):
        samples = task.reference_samples(k)
        n = len(samples)
        assert n == task.num_reference_samples
        mean, cov = task.reference_moments(k)
        sd = cov.diagonal().sqrt()
        assert ((samples.mean(0) - mean).abs() < 4.5 * sd / n**0.5).all()
        # Relative SE of a sample variance: sqrt((kurtosis - 1) / n); Gaussian kurtosis 3,
        # the heavier-tailed Gamma / inverse-gamma here stay below 6.
        relative = (samples.var(0) - cov.diagonal()).abs() / cov.diagonal()
        assert (relative < 4.5 * (5 / n) ** 0.5).all()
        assert task.prior.support.check(samples).all()
        assert torch.allclose(task.posterior(task.observation(k)).mean, mean, rtol=1e-12)


def test_one_changed_byte_is_caught_by_load_and_verify(copy):
    task, folder = copy
    path = folder / "samples.npz"
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))
    with pytest.raises(ReferenceError, match=r"samples.npz: sha256 differs"):
        load_reference(task, folder)
    problems = verify_reference(task, folder, floors=False)
    assert any("samples.npz: sha256 differs" in p for p in problems)


def test_a_missing_or_broken_manifest_is_reported(copy):
    task, folder = copy
    (folder / "MANIFEST.json").write_text("{not json")
    assert "not a valid manifest" in verify_reference(task, folder)[0]
    with pytest.raises(ReferenceError, match="MANIFEST.json: not a valid manifest"):
        load_reference(task, folder)
    (folder / "MANIFEST.json").unlink()
    assert "MANIFEST.json: missing" in verify_reference(task, folder)[0]


def test_references_of_an_edited_card_are_refused_on_load(tmp_path):
    """Reference folders sit beside their card's tasks/ folder; after the card is edited, its
    old references are refused with the card named, not served."""
    from sbibench.task import load_card

    task = get_task("normal_mean")
    (tmp_path / "tasks").mkdir()
    card = tmp_path / "tasks" / "normal_mean.toml"
    card.write_text(task.card_path.read_text().replace("std = 3.0", "std = 3.5"))
    shutil.copytree(reference_dir(task), tmp_path / "reference_posteriors" / "normal_mean")
    edited = load_card(card)
    with pytest.raises(ReferenceError, match=f"built from another version of {card}"):
        edited.reference_samples(1)
