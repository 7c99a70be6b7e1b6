"""The data layer: layouts, splits, transforms, cache and every bad-input case."""
import itertools
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vqvae_lib import data
from vqvae_lib.data import load_dataset, pad_to_square, prepare_slice

KAGGLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oasis-kaggle" / "train"


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def _slice(value: int, h: int = 20, w: int = 16) -> np.ndarray:
    array = np.zeros((h, w), np.uint8)
    array[4:-4, 3:-3] = value
    return array


def make_oasis(root: Path, subjects=("001", "002", "003"), slices=3, masks=True) -> Path:
    for split, subject in zip(data.OASIS_SPLITS, subjects):
        for k in range(slices):
            _save(root / f"keras_png_slices_{split}" / f"case_{subject}_slice_{k}.nii.png", _slice(10 * k + 50))
            if masks:
                mask = np.zeros((20, 16), np.uint8)
                mask[4:-4, 3:-3] = 85 * (1 + k % 3)
                _save(root / f"keras_png_slices_seg_{split}" / f"seg_{subject}_slice_{k}.nii.png", mask)
    return root


def make_imagefolder(root: Path, per_class=10) -> Path:
    for label, name in enumerate(("healthy", "sick")):
        for i in range(per_class):
            _save(root / name / f"img{i}.png", _slice(40 + 20 * label + i, 24, 24))
    return root


def make_subjects(root: Path, n_subjects=10, slices=4) -> Path:
    """An ImageFolder tree whose names carry a subject id: <class>/subj<id>_slice<k>.png, 4 slices each."""
    for subject in range(n_subjects):
        name = "healthy" if subject < n_subjects // 2 else "sick"
        for k in range(slices):
            _save(root / name / f"subj{subject:02d}_slice{k}.png", _slice(40 + 10 * subject + k, 24, 24))
    return root


def _pairwise_disjoint(sets) -> bool:
    return all(a.isdisjoint(b) for a, b in itertools.combinations(sets, 2))


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


def test_oasis_layout_splits_subjects_and_masks(tmp_path, cache_dir):
    root = make_oasis(tmp_path / "oasis")
    train = load_dataset(root, "train", 32, cache_dir=cache_dir)
    test = load_dataset(root, "test", 32, cache_dir=cache_dir)
    assert train.layout == "oasis" and len(train) == 3 and len(test) == 3
    assert train.split_kind == test.split_kind == "by subject"
    assert train.subjects == ["001"] * 3 and test.subjects == ["003"] * 3
    assert train.slice_index.tolist() == [0, 1, 2]
    assert train.images.shape == (3, 1, 32, 32) and train.images.dtype == torch.uint8
    assert train.masks.shape == (3, 32, 32)
    # masks 85/170/255 -> classes 1/2/3, paired with their own slice
    assert [int(m.max()) for m in train.masks] == [1, 2, 3]
    assert len(load_dataset(root, "all", 32, cache_dir=cache_dir)) == 9
    item = train[0]
    assert set(item) == {"image", "mask", "slice_index"}
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0


def test_oasis_layout_without_masks(tmp_path, cache_dir):
    root = make_oasis(tmp_path / "oasis", masks=False)
    ds = load_dataset(root, "validate", 16, cache_dir=cache_dir)
    assert ds.masks is None and "mask" not in ds[0]


def test_transforms_pad_to_centred_square_then_resize():
    image = Image.fromarray(np.full((10, 4), 200, np.uint8))
    square = np.asarray(pad_to_square(image))
    assert square.shape == (10, 10)
    assert (square[:, 3:7] == 200).all() and (square[:, :3] == 0).all() and (square[:, 7:] == 0).all()
    small = prepare_slice(image, 5)
    assert small.shape == (5, 5) and small.dtype == np.uint8
    assert small[:, 2].min() > 150 and small[:, 0].max() < 60  # antialiased, still centred
    rgb = Image.fromarray(np.full((8, 8, 3), 255, np.uint8))
    assert prepare_slice(rgb, 8).max() == 255


def test_sixteen_bit_images_are_scaled(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(path)
    with Image.open(path) as image:
        assert prepare_slice(image, 8).min() == 255


def test_imagefolder_labels_and_seeded_three_part_split(tmp_path, cache_dir):
    root = make_imagefolder(tmp_path / "folders")
    parts = {split: load_dataset(root, split, 16, cache_dir=cache_dir) for split in data.SPLIT_PARTS}
    train = parts["train"]
    assert train.layout == "imagefolder" and train.class_names == ["healthy", "sick"]
    assert [len(parts[split]) for split in data.SPLIT_PARTS] == [16, 2, 2]
    paths = [set(ds.paths) for ds in parts.values()]
    assert _pairwise_disjoint(paths)
    assert set.union(*paths) == set(load_dataset(root, "all", 16, cache_dir=cache_dir).paths)
    assert {ds.split_kind for ds in parts.values()} == {"by file"}
    again = load_dataset(root, "test", 16, cache_dir=cache_dir)
    assert again.paths == parts["test"].paths
    other_seed = load_dataset(root, "test", 16, seed=1, cache_dir=cache_dir)
    assert other_seed.paths != parts["test"].paths
    assert train.labels.tolist() == [int("sick" in p) for p in train.paths]
    assert data.available_splits(root) == ("train", "validate", "test", "all")
    assert data.default_eval_split(root) == "test"
    with pytest.raises(ValueError, match="'dev'"):
        load_dataset(root, "dev", 16, cache_dir=cache_dir)


def test_part_sizes_for_tiny_and_large_sets():
    assert data.part_sizes(3) == (1, 1, 1)
    assert data.part_sizes(4) == (2, 1, 1)
    assert data.part_sizes(20) == (16, 2, 2)
    assert data.part_sizes(5121) == (4097, 512, 512)
    for n in (3, 4, 7, 101):
        parts = [data.held_out_split(n, split, seed=3) for split in data.SPLIT_PARTS]
        assert sorted(sum(parts, [])) == list(range(n)) and all(parts)
    with pytest.raises(ValueError, match="at least 3 groups, got 2"):
        data.part_sizes(2, "groups")


def test_too_few_files_to_split_is_an_error(tmp_path):
    for i in range(2):
        _save(tmp_path / "two" / f"{i}.png", _slice(100))
    with pytest.raises(ValueError, match="at least 3 files, got 2.*split='all'"):
        load_dataset(tmp_path / "two", "train", 16, cache=False)
    assert len(load_dataset(tmp_path / "two", "all", 16, cache=False)) == 2


def test_group_by_keeps_every_group_on_one_side(tmp_path, cache_dir):
    root = make_subjects(tmp_path / "subjects")                        # 10 subjects x 4 slices
    regex = r"subj(\d+)_"
    parts = {split: load_dataset(root, split, 16, group_by=regex, cache_dir=cache_dir) for split in data.SPLIT_PARTS}
    groups = {split: {re.search(regex, p)[1] for p in ds.paths} for split, ds in parts.items()}
    assert [len(groups[split]) for split in data.SPLIT_PARTS] == [8, 1, 1]
    assert [len(parts[split]) for split in data.SPLIT_PARTS] == [32, 4, 4]
    assert _pairwise_disjoint(groups.values()) and len(set.union(*groups.values())) == 10
    assert parts["test"].split_kind == rf"by group ({regex})"
    # a named group "group" wins over earlier groups; the same groups give the same parts
    named = load_dataset(root, "test", 16, group_by=r"(\w+)/subj(?P<group>\d+)", cache_dir=cache_dir)
    assert named.paths == parts["test"].paths
    # by file, slices of one subject land on both sides: the leak group_by is for
    by_file = {split: load_dataset(root, split, 16, cache_dir=cache_dir) for split in ("train", "test")}
    subjects = {split: {re.search(regex, p)[1] for p in ds.paths} for split, ds in by_file.items()}
    assert subjects["train"] & subjects["test"]
    # the same files split another way are other data: the fingerprint says so
    everything = load_dataset(root, "all", 16, cache_dir=cache_dir)
    grouped_everything = load_dataset(root, "all", 16, group_by=regex, cache_dir=cache_dir)
    assert grouped_everything.paths == everything.paths
    assert grouped_everything.fingerprint != everything.fingerprint


def test_group_by_errors_name_the_file_or_the_regex(tmp_path):
    root = make_subjects(tmp_path / "subjects")
    _save(root / "sick" / "scan_extra.png", _slice(90, 24, 24))
    with pytest.raises(ValueError, match=r"scan_extra\.png gives no group.*sick/scan_extra\.png"):
        load_dataset(root, "train", group_by=r"subj(\d+)_", cache=False)
    with pytest.raises(ValueError, match="no capture group"):
        load_dataset(root, "train", group_by=r"subj\d+", cache=False)
    with pytest.raises(ValueError, match="not a valid regular expression"):
        load_dataset(root, "train", group_by=r"subj(\d+", cache=False)
    with pytest.raises(ValueError, match="at least 3 groups, got 2"):
        load_dataset(root, "train", group_by=r"^(\w+)/", cache=False)   # the class folder: only 2 groups
    oasis = make_oasis(tmp_path / "oasis")
    with pytest.raises(ValueError, match="already split by subject"):
        load_dataset(oasis, "train", group_by=r"case_(\d+)", cache=False)


def test_fingerprint_ignores_modification_times_but_not_contents(tmp_path, cache_dir):
    """The student sequence: load, delete the data (make clean-data), rebuild the identical files, load again."""
    root = tmp_path / "plain"
    arrays = [_slice(60 + 10 * i) for i in range(4)]

    def write_all():
        for i, array in enumerate(arrays):
            _save(root / f"{i}.png", array)

    write_all()
    first = load_dataset(root, "all", 20, cache_dir=cache_dir)
    mtimes = [p.stat().st_mtime_ns for p in sorted(root.iterdir())]
    shutil.rmtree(root)
    write_all()
    for i, path in enumerate(sorted(root.iterdir())):
        os.utime(path, ns=(10**9 * (i + 1),) * 2)                    # 1970: surely not the first mtimes
    assert [p.stat().st_mtime_ns for p in sorted(root.iterdir())] != mtimes
    assert load_dataset(root, "all", 20, cache_dir=cache_dir).fingerprint == first.fingerprint
    arrays[2][10, 8] += 1                                             # one pixel of one file
    write_all()
    changed = load_dataset(root, "all", 20, cache_dir=cache_dir)
    assert changed.fingerprint != first.fingerprint
    assert not torch.equal(changed.images[2], first.images[2]) and torch.equal(changed.images[0], first.images[0])


def test_plain_folder(tmp_path, cache_dir):
    for i in range(5):
        _save(tmp_path / "plain" / f"{i}.jpg", _slice(100))
    ds = load_dataset(tmp_path / "plain", "all", 16, cache_dir=cache_dir)
    assert ds.layout == "folder" and len(ds) == 5 and ds.labels is None


@pytest.mark.skipif(not KAGGLE.is_dir(), reason="../shared/data/oasis-kaggle/train is not here")
def test_real_oasis_derived_slices_as_imagefolder(cache_dir):
    val = load_dataset(KAGGLE, "validate", 64, cache_dir=cache_dir)
    assert val.class_names == ["MildDemented", "ModerateDemented", "NonDemented", "VeryMildDemented"]
    assert len(val) == 512  # 10 % of 5,121
    assert val.images.shape == (512, 1, 64, 64)
    assert set(val.labels.unique().tolist()) <= {0, 1, 2, 3}
    # real skull-stripped slices: dark corners, bright tissue in the middle
    mean = val.float_images().mean(0)[0]
    assert mean[:4, :4].max() < 0.05 and mean[28:36, 28:36].mean() > 0.2


def test_cache_is_used_and_invalidated(tmp_path, cache_dir, monkeypatch):
    root = make_oasis(tmp_path / "oasis")
    first = load_dataset(root, "train", 16, cache_dir=cache_dir)
    assert len(list(cache_dir.glob("slices-*.pt"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(data, "_decode", no_decoding)
    second = load_dataset(root, "train", 16, cache_dir=cache_dir)
    assert torch.equal(first.images, second.images) and second.fingerprint == first.fingerprint
    monkeypatch.undo()

    changed = root / "keras_png_slices_train" / "case_001_slice_0.nii.png"
    _save(changed, _slice(250, 22, 16))
    third = load_dataset(root, "train", 16, cache_dir=cache_dir)
    assert third.fingerprint != first.fingerprint
    assert not torch.equal(third.images[0], first.images[0])
    assert load_dataset(root, "train", 8, cache_dir=cache_dir).fingerprint != third.fingerprint


def test_damaged_cache_is_rebuilt_with_a_warning(tmp_path, cache_dir):
    root = make_oasis(tmp_path / "oasis")
    first = load_dataset(root, "train", 16, cache_dir=cache_dir)
    next(cache_dir.glob("slices-*.pt")).write_bytes(b"not a cache")
    with pytest.warns(UserWarning, match="could not be read"):
        again = load_dataset(root, "train", 16, cache_dir=cache_dir)
    assert torch.equal(again.images, first.images)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_dataset(tmp_path / "nowhere")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        load_dataset(tmp_path / "empty", cache=False)


def test_folder_in_no_known_layout(tmp_path):
    (tmp_path / "odd" / "sub").mkdir(parents=True)
    (tmp_path / "odd" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="no known layout"):
        load_dataset(tmp_path / "odd", cache=False)


def test_corrupt_image_warns_with_count_and_name(tmp_path, cache_dir):
    root = make_imagefolder(tmp_path / "folders")
    broken = root / "sick" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.warns(UserWarning, match=r"skipped 1 .*broken\.png"):
        ds = load_dataset(root, "all", 16, cache_dir=cache_dir)
    assert len(ds) == 20 and str(broken) not in ds.paths


def test_all_images_corrupt_is_an_error(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="none of the 3 images"):
        load_dataset(folder, "all", cache=False)


def test_mask_without_image(tmp_path):
    root = make_oasis(tmp_path / "oasis")
    orphan = _save(root / "keras_png_slices_seg_train" / "seg_001_slice_9.nii.png", _slice(85))
    with pytest.raises(ValueError, match=f"mask {orphan} has no image"):
        load_dataset(root, "train", cache=False)


def test_image_without_mask(tmp_path):
    root = make_oasis(tmp_path / "oasis")
    lonely = _save(root / "keras_png_slices_train" / "case_001_slice_7.nii.png", _slice(85))
    with pytest.raises(ValueError, match=f"image {lonely} has no mask"):
        load_dataset(root, "train", cache=False)


def test_badly_named_oasis_file(tmp_path):
    root = make_oasis(tmp_path / "oasis")
    _save(root / "keras_png_slices_train" / "slice7.png", _slice(85))
    with pytest.raises(ValueError, match="slice7.png does not follow the OASIS naming"):
        load_dataset(root, "train", cache=False)


def test_missing_split_and_bad_arguments(tmp_path):
    root = make_oasis(tmp_path / "oasis")
    (root / "keras_png_slices_test").rename(root / "elsewhere")
    with pytest.raises(ValueError, match="keras_png_slices_test"):
        load_dataset(root, "test", cache=False)
    with pytest.raises(ValueError, match="split must be one of"):
        load_dataset(root, "dev", cache=False)
    with pytest.raises(ValueError, match="image_size"):
        load_dataset(root, "train", image_size=0, cache=False)


def test_class_folder_without_images(tmp_path):
    root = make_imagefolder(tmp_path / "folders")
    (root / "empty_class").mkdir()
    (root / "empty_class" / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match="empty_class holds no images"):
        load_dataset(root, "all", cache=False)


def test_dataloader_batch(tmp_path, cache_dir):
    root = make_oasis(tmp_path / "oasis")
    ds = load_dataset(root, "all", 16, cache_dir=cache_dir)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 1, 16, 16) and batch["mask"].shape == (4, 16, 16)


def test_spread_subset_draws_every_group_in_proportion():
    subjects = [f"s{i}" for i in range(10) for _ in range(36)]          # the built-in validate split's layout
    chosen = data.spread_subset(360, 256, subjects)
    per_subject = Counter(subjects[i] for i in chosen.tolist())
    assert len(chosen) == 256 and len(set(chosen.tolist())) == 256 and chosen.tolist() == sorted(chosen.tolist())
    assert set(per_subject) == set(subjects) and set(per_subject.values()) <= {25, 26}
    assert torch.equal(chosen, data.spread_subset(360, 256, subjects))                 # seeded: the same every time
    assert not torch.equal(chosen, data.spread_subset(360, 256, subjects, seed=1))
    skewed = ["a"] * 90 + ["b"] * 10                                           # classes in the split's proportions
    assert Counter(skewed[i] for i in data.spread_subset(100, 20, skewed).tolist()) == {"a": 18, "b": 2}
    assert Counter(skewed[i] for i in data.spread_subset(100, 27, skewed).tolist()) == {"a": 24, "b": 3}
    assert torch.equal(data.spread_subset(5, None), torch.arange(5)) and len(data.spread_subset(50, 7)) == 7


def test_vqvae_validation_scores_every_validate_subject(tmp_path, monkeypatch):
    """Capped validation draws across the validate subjects, not the first ones in file order."""
    from vqvae_lib import pipeline
    from vqvae_lib.config import TrainConfig, VQVAEConfig

    monkeypatch.setenv("VQVAE_HOME", str(tmp_path / "home"))
    root = tmp_path / "oasis"
    for split, subjects in zip(data.OASIS_SPLITS, (("001", "002"), ("101", "102", "103", "104"), ("201",))):
        for s, subject in enumerate(subjects):
            for k in range(6):
                _save(root / f"keras_png_slices_{split}" / f"case_{subject}_slice_{k}.nii.png",
                      _slice(40 + 40 * s + k))
    scored = {}

    def capture(images):
        scored["images"] = images
        return lambda model: {"ssim_mean": 0.0}

    monkeypatch.setattr(pipeline, "reconstruction_validator", capture)
    cfg = VQVAEConfig(hidden_channels=8, res_channels=4, n_res_blocks=1, codebook_size=8, embedding_dim=4)
    pipeline.train_vqvae(str(root), tmp_path / "run", cfg, TrainConfig(batch_size=2, steps=1, warmup_steps=0,
                         eval_every=0, checkpoint_every=0), 16, progress=False, val_images=8)
    brightest = scored["images"].flatten(1).max(1).values.tolist()                   # 40 + 40 s + k: s is the subject
    assert len(brightest) == 8 and sorted(Counter((v - 40) // 40 for v in brightest).values()) == [2, 2, 2, 2]
