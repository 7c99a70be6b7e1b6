"""The built-in default set: deterministic, real anatomy, OASIS layout, split by subject."""
import hashlib

import numpy as np
import pytest

from vqvae_lib.data import load_dataset
from vqvae_lib.mni152 import DefaultDataSpec, build_default_dataset, ensure_default_dataset, is_built

SMALL = DefaultDataSpec(n_subjects=3, split_subjects=(1, 1, 1), slices_per_subject=4, size=48, pixel_mm=4.0)


def _digest(root):
    files = sorted(p for p in root.rglob("*.png"))
    return [(str(p.relative_to(root)), hashlib.sha256(p.read_bytes()).hexdigest()) for p in files]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_default_dataset(tmp_path_factory.mktemp("mni") / "a", SMALL, progress=False)


def test_builder_is_deterministic(built, tmp_path):
    again = build_default_dataset(tmp_path / "b", SMALL, progress=False)
    assert _digest(built) == _digest(again)
    other = build_default_dataset(tmp_path / "c", DefaultDataSpec(**{**SMALL.__dict__, "seed": 1}), progress=False)
    assert _digest(other) != _digest(built)


def test_layout_split_by_subject_and_masks(built, tmp_path):
    splits = ("train", "validate", "test")
    sets = {split: load_dataset(built, split, SMALL.size, cache_dir=tmp_path) for split in splits}
    subjects = [set(ds.subjects) for ds in sets.values()]
    assert all(len(s) == 1 for s in subjects) and len(set.union(*subjects)) == 3
    train = sets["train"]
    assert len(train) == 4 and train.slice_index.tolist() == [0, 1, 2, 3]
    brain = train.masks > 0
    image = train.images[:, 0]
    assert (image[~brain] == 0).all()                      # skull-stripped: nothing outside the brain
    assert image[brain].float().mean() > 60                # tissue is bright
    assert set(train.masks.unique().tolist()) == {0, 1, 2, 3}


def test_virtual_subjects_differ(built, tmp_path):
    train = load_dataset(built, "train", 32, cache_dir=tmp_path)
    test = load_dataset(built, "test", 32, cache_dir=tmp_path)
    assert not np.array_equal(train.images.numpy(), test.images.numpy())


def test_ensure_builds_once_and_rebuilds_on_a_new_spec(built, monkeypatch):
    assert is_built(built, SMALL)
    calls = []
    monkeypatch.setattr("vqvae_lib.mni152.build_default_dataset", lambda root, spec: calls.append(spec))
    ensure_default_dataset(built, SMALL)
    assert calls == []
    ensure_default_dataset(built, DefaultDataSpec(**{**SMALL.__dict__, "seed": 5}))
    assert len(calls) == 1


def test_spec_validation():
    with pytest.raises(ValueError, match="split_subjects"):
        DefaultDataSpec(n_subjects=3, split_subjects=(2, 2, 2))
