"""Code maps: encoded once, cached next to the VQ-VAE, rebuilt when the checkpoint or the labels change;
slice-depth labels with the train split's bucket edges, class labels for ImageFolder data."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vqvae_lib import codemaps
from vqvae_lib.codemaps import depth_bucket_names, depth_buckets, load_code_maps
from vqvae_lib.config import TrainConfig, VQVAEConfig
from vqvae_lib.data import load_dataset
from vqvae_lib.pipeline import load_vqvae, train_vqvae

TINY_VQVAE = VQVAEConfig(hidden_channels=8, res_channels=4, n_res_blocks=1, codebook_size=8, embedding_dim=4)
CPU = torch.device("cpu")


def write_slice(path: Path, value: int, rng) -> None:
    image = np.zeros((16, 16), np.uint8)
    image[3:13, 4:12] = np.clip(value + rng.integers(0, 60, (10, 8)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def make_oasis(root: Path) -> Path:
    """train: 2 subjects x slices 0..7; validate: 1 x 0..7; test: 1 x slices 0..3 only."""
    rng = np.random.default_rng(0)
    for split, subjects, n_slices in (("train", ("001", "002"), 8), ("validate", ("003",), 8), ("test", ("004",), 4)):
        for subject in subjects:
            for k in range(n_slices):
                write_slice(root / f"keras_png_slices_{split}" / f"case_{subject}_slice_{k}.nii.png", 40 + 20 * k, rng)
    return root


def train_tiny_vqvae(source, out: Path, steps: int = 1, extend: bool = False) -> Path:
    cfg = TrainConfig(batch_size=4, steps=steps, warmup_steps=0, eval_every=0, checkpoint_every=0)
    train_vqvae(str(source), out, TINY_VQVAE, cfg, 16, device=CPU, progress=False, val_images=4, extend=extend)
    return out / "vqvae.pt"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VQVAE_HOME", str(tmp_path / "home"))  # caches stay in tmp
    return tmp_path


@pytest.fixture
def encodings(monkeypatch):
    """Counts the calls that encode slices (cache misses)."""
    calls = []
    original = codemaps.encode_images

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(codemaps, "encode_images", counting)
    return calls


def test_code_maps_are_encoded_once_then_read_from_the_cache(home, encodings):
    source = make_oasis(home / "oasis")
    vqvae_path = train_tiny_vqvae(source, home / "run")
    maps = load_code_maps(vqvae_path, source, "train", n_buckets=2, device=CPU)
    assert len(encodings) == 1 and maps.indices.shape == (16, 4, 4) and maps.indices.dtype == torch.long
    dataset = load_dataset(source, "train", 16)
    assert torch.equal(maps.indices, load_vqvae(vqvae_path, CPU).encode_indices(dataset.float_images()))
    assert maps.label_kind == "depth" and maps.label_names == ["slices 0-3", "slices 4-7"] and maps.n_labels == 2
    assert torch.equal(maps.labels, (dataset.slice_index >= 4).long())
    assert maps.histogram().sum() == 16 * 16 and maps.shape == (4, 4) and maps.codebook_size == 8

    again = load_code_maps(vqvae_path, source, "train", n_buckets=2, device=CPU)
    assert len(encodings) == 1 and torch.equal(again.indices, maps.indices) and again.key == maps.key
    assert len(list((home / "run" / "codes").iterdir())) == 1


def test_stale_cache_is_rebuilt_when_the_checkpoint_or_the_labels_change(home, encodings):
    source = make_oasis(home / "oasis")
    vqvae_path = train_tiny_vqvae(source, home / "run")
    first = load_code_maps(vqvae_path, source, "train", n_buckets=2, device=CPU)
    train_tiny_vqvae(source, home / "run", steps=3, extend=True)         # trained on: the checkpoint changed
    second = load_code_maps(vqvae_path, source, "train", n_buckets=2, device=CPU)
    assert len(encodings) == 2 and second.key != first.key
    images = load_dataset(source, "train", 16).float_images()
    assert torch.equal(second.indices, load_vqvae(vqvae_path, CPU).encode_indices(images))
    third = load_code_maps(vqvae_path, source, "train", n_buckets=4, device=CPU)
    assert len(encodings) == 3 and third.n_labels == 4
    load_code_maps(vqvae_path, source, "train", n_buckets=4, device=CPU)
    assert len(encodings) == 3


def test_damaged_cache_is_rebuilt_with_a_warning(home, encodings):
    source = make_oasis(home / "oasis")
    vqvae_path = train_tiny_vqvae(source, home / "run")
    load_code_maps(vqvae_path, source, "validate", device=CPU)
    (cache_file,) = (home / "run" / "codes").iterdir()
    cache_file.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="could not be read"):
        maps = load_code_maps(vqvae_path, source, "validate", device=CPU)
    assert len(encodings) == 2 and len(maps) == 8


def test_every_split_uses_the_train_splits_depth_buckets(home):
    source = make_oasis(home / "oasis")
    vqvae_path = train_tiny_vqvae(source, home / "run")
    test = load_code_maps(vqvae_path, source, "test", n_buckets=2, device=CPU)  # slices 0..3 of 0..7
    assert test.labels.tolist() == [0, 0, 0, 0] and test.label_names == ["slices 0-3", "slices 4-7"]


def test_depth_buckets_are_equal_bins():
    assert depth_buckets(torch.arange(36), 4, 0, 35).tolist() == [b for b in range(4) for _ in range(9)]
    assert depth_buckets(torch.tensor([-3, 40]), 4, 0, 35).tolist() == [0, 3]
    assert depth_bucket_names(4, 0, 35) == ["slices 0-8", "slices 9-17", "slices 18-26", "slices 27-35"]
    assert depth_bucket_names(3, 0, 4) == ["slices 0-1", "slices 2-3", "slices 4-4"]


def test_imagefolder_classes_are_labels_and_plain_folders_have_none(home):
    rng = np.random.default_rng(1)
    for cls in ("healthy", "demented"):
        for i in range(5):
            write_slice(home / "classes" / cls / f"{i}.png", 60 if cls == "healthy" else 160, rng)
            write_slice(home / "plain" / f"{cls}{i}.png", 100, rng)
    vqvae_path = train_tiny_vqvae(home / "classes", home / "run")
    maps = load_code_maps(vqvae_path, home / "classes", "train", device=CPU)
    dataset = load_dataset(home / "classes", "train", 16)
    assert maps.label_kind == "class" and maps.label_names == ["demented", "healthy"]
    assert torch.equal(maps.labels, dataset.labels)
    assert load_code_maps(vqvae_path, home / "classes", "train", n_buckets=3, device=CPU).key == maps.key  # no depths
    plain = load_code_maps(vqvae_path, home / "plain", "train", device=CPU)
    assert plain.labels is None and plain.label_names == [] and plain.label_kind == "none" and len(plain) == 8
