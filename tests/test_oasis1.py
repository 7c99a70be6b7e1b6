"""OASIS-1 converter: synthetic Analyze volumes in the real disc layout -> OASIS PNG slice layout."""
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from vqvae_lib.oasis1 import SPLITS, convert_oasis1, main, split_subjects

SHAPE = (24, 28, 20)  # (x, y, z)
CENTRE = (10, 18, 10)  # the brain sits left (low x) and anterior (high y)
RADIUS = 7
SESSIONS = ["0001_MR1", "0002_MR1", "0002_MR2", "0003_MR1", "0004_MR1", "0005_MR1", "0006_MR1"]
STEM = "mpr_n4_anon_111_t88_masked_gfc"


def synthetic_scan(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A sphere of 'brain': FAST labels 3 (core), 2, 1 (outer shell); T1 intensity grows with label."""
    x, y, z = np.indices(SHAPE)
    r = np.sqrt((x - CENTRE[0]) ** 2 + (y - CENTRE[1]) ** 2 + (z - CENTRE[2]) ** 2)
    labels = np.select([r < 3, r < 5, r <= RADIUS], [3, 2, 1], 0).astype(np.uint8)
    noise = np.random.default_rng(seed).integers(0, 40, SHAPE)
    image = np.where(labels > 0, 100 * labels + noise, 0).astype(np.int16)
    return image, labels


def save_analyze(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.AnalyzeImage(data, np.eye(4)), str(path))


def image_path(root: Path, session: str) -> Path:
    tag = f"OAS1_{session}"
    return root / tag / "PROCESSED" / "MPRAGE" / "T88_111" / f"{tag}_{STEM}.img"


def seg_path(root: Path, session: str) -> Path:
    tag = f"OAS1_{session}"
    return root / tag / "FSL_SEG" / f"{tag}_{STEM}_fseg.img"


def write_disc(root: Path, sessions=SESSIONS) -> Path:
    for i, session in enumerate(sessions):
        image, labels = synthetic_scan(i)
        if i % 2:  # half the scans carry the trailing singleton dimension of the real files
            image, labels = image[..., None], labels[..., None]
        save_analyze(image_path(root, session), image)
        save_analyze(seg_path(root, session), labels)
    return root


def expected_slices(min_fraction=0.05, step=1) -> list[int]:
    brain = synthetic_scan(0)[1] > 0
    fraction = brain.mean(axis=(0, 1))
    return [z for z in range(SHAPE[2]) if fraction[z] > 0 and fraction[z] >= min_fraction][::step]


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def files_by_split(dst: Path, kind: str) -> dict[str, set[str]]:
    return {split: {p.name for p in (dst / f"keras_png_slices{kind}_{split}").iterdir()} for split in SPLITS}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("oasis1")
    src = write_disc(root / "disc")
    report = convert_oasis1(src, root / "out", seed=0)
    return src, root / "out", report


def find_png(dst: Path, session: str, k: int, prefix: str = "case") -> Path:
    (path,) = dst.glob(f"keras_png_slices_*/{prefix}_{session}_slice_{k}.nii.png")
    return path


def test_layout_and_file_names(converted):
    _, dst, report = converted
    n = len(expected_slices())
    assert sorted(p.name for p in dst.iterdir()) == sorted(
        f"keras_png_slices{kind}_{split}" for kind in ("", "_seg") for split in SPLITS)
    cases, segs = files_by_split(dst, ""), files_by_split(dst, "_seg")
    for split in SPLITS:
        sessions = report.subjects[split]
        assert cases[split] == {f"case_{s}_slice_{k}.nii.png" for s in sessions for k in range(n)}
        assert segs[split] == {f"seg_{s}_slice_{k}.nii.png" for s in sessions for k in range(n)}
        assert report.slices[split] == n * len(sessions)
    assert report.skipped == []


def test_masks_are_fseg_labels_times_85_in_display_orientation(converted):
    src, dst, _ = converted
    labels = np.asarray(nib.load(seg_path(src, "0003_MR1")).dataobj).reshape(SHAPE)  # saved as (X, Y, Z, 1)
    k = len(expected_slices()) // 2
    z = expected_slices()[k]
    mask = read_png(find_png(dst, "0003_MR1", k, prefix="seg"))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 85, 170, 255}
    assert mask.shape == (SHAPE[1], SHAPE[0])
    np.testing.assert_array_equal(mask, labels[:, ::-1, z].T * 85)  # row i <- y = Y-1-i, column j <- x = j


def test_anterior_is_at_the_top_and_x_runs_left_to_right(converted):
    _, dst, _ = converted
    image = read_png(find_png(dst, "0001_MR1", len(expected_slices()) // 2))
    rows, cols = np.nonzero(image)
    assert rows.mean() == pytest.approx(SHAPE[1] - 1 - CENTRE[1], abs=0.5)  # high y -> top rows
    assert cols.mean() == pytest.approx(CENTRE[0], abs=0.5)


def test_intensities_zero_outside_brain_and_full_range_inside(converted):
    _, dst, _ = converted
    brain = synthetic_scan(0)[1] > 0
    for k, z in enumerate(expected_slices()):
        image = read_png(find_png(dst, "0001_MR1", k))
        np.testing.assert_array_equal(image > 0, brain[:, ::-1, z].T)
    middle = read_png(find_png(dst, "0001_MR1", len(expected_slices()) // 2))
    assert middle.max() == 255


def test_slices_without_enough_brain_are_skipped(converted, tmp_path):
    src, _, _ = converted
    assert 0 < len(expected_slices()) < SHAPE[2]
    report = convert_oasis1(src, tmp_path / "all", min_brain_fraction=0.0, slice_step=2)
    assert len(expected_slices(0.0, 2)) < SHAPE[2] / 2  # empty slices are never kept
    assert sum(report.slices.values()) == len(SESSIONS) * len(expected_slices(0.0, 2))
    for path in (tmp_path / "all").glob("keras_png_slices_*/case_*.png"):
        assert read_png(path).any()


def test_scan_without_brain_is_reported_as_skipped(tmp_path):
    src = write_disc(tmp_path / "disc", SESSIONS[:2])
    save_analyze(image_path(src, "0002_MR1"), np.zeros(SHAPE, np.int16))
    report = convert_oasis1(src, tmp_path / "out")
    assert [path for path, _ in report.skipped] == [str(image_path(src, "0002_MR1"))]
    assert sum(map(len, report.subjects.values())) == 1


def test_split_is_by_subject_deterministic_and_complete(converted, tmp_path):
    src, dst, report = converted
    again = convert_oasis1(src, tmp_path / "again", seed=0)
    assert again.subjects == report.subjects
    assert files_by_split(tmp_path / "again", "") == files_by_split(dst, "")
    placed = [s for split in SPLITS for s in report.subjects[split]]
    assert sorted(placed) == SESSIONS
    split_of = {s: split for split in SPLITS for s in report.subjects[split]}
    assert split_of["0002_MR1"] == split_of["0002_MR2"]
    assert all(report.subjects[split] for split in SPLITS)


def test_split_subjects_keeps_one_in_train():
    assert split_subjects(["0001"], (0.5, 0.25, 0.25)) == {"0001": "train"}
    assignment = split_subjects([f"{i:04d}" for i in range(10)], seed=3)
    assert sorted(assignment.values()) == ["test"] + ["train"] * 8 + ["validate"]
    assert assignment == split_subjects([f"{i:04d}" for i in reversed(range(10))], seed=3)


def test_missing_source_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        convert_oasis1(tmp_path / "nowhere", tmp_path / "out")


def test_no_volumes_names_folder_and_pattern(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty.*_masked_gfc\.img"):
        convert_oasis1(tmp_path / "empty", tmp_path / "out")


def test_missing_fseg_names_image_and_expected_file(tmp_path):
    src = write_disc(tmp_path / "disc", SESSIONS[:2])
    seg_path(src, "0002_MR1").unlink()
    with pytest.raises(ValueError, match="OAS1_0002_MR1_mpr.*_masked_gfc_fseg.img") as info:
        convert_oasis1(src, tmp_path / "out")
    assert str(image_path(src, "0002_MR1")) in str(info.value)
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_shape_mismatch_names_both_files(tmp_path):
    src = write_disc(tmp_path / "disc", SESSIONS[:1])
    save_analyze(seg_path(src, "0001_MR1"), np.zeros((24, 28, 18), np.uint8))
    with pytest.raises(ValueError, match="mismatch") as info:
        convert_oasis1(src, tmp_path / "out")
    message = str(info.value)
    assert str(image_path(src, "0001_MR1")) in message and str(seg_path(src, "0001_MR1")) in message


def test_non_3d_volume_names_file(tmp_path):
    src = write_disc(tmp_path / "disc", SESSIONS[:1])
    save_analyze(image_path(src, "0001_MR1"), np.ones((24, 28, 20, 2), np.int16))
    with pytest.raises(ValueError, match="not a 3-D volume") as info:
        convert_oasis1(src, tmp_path / "out")
    assert str(image_path(src, "0001_MR1")) in str(info.value)


@pytest.mark.parametrize("damage", ["header", "voxels"])
def test_unreadable_file_names_file(tmp_path, damage):
    src = write_disc(tmp_path / "disc", SESSIONS[:1])
    bad = image_path(src, "0001_MR1")
    if damage == "header":
        bad.with_suffix(".hdr").write_bytes(b"not an Analyze header")
    else:
        bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(ValueError, match="cannot read") as info:
        convert_oasis1(src, tmp_path / "out")
    assert str(bad) in str(info.value)


def test_labels_outside_fast_range_name_file(tmp_path):
    src = write_disc(tmp_path / "disc", SESSIONS[:1])
    save_analyze(seg_path(src, "0001_MR1"), np.full(SHAPE, 7, np.uint8))
    with pytest.raises(ValueError, match="FAST") as info:
        convert_oasis1(src, tmp_path / "out")
    assert str(seg_path(src, "0001_MR1")) in str(info.value)


def test_destination_not_empty_needs_overwrite(tmp_path):
    src = write_disc(tmp_path / "disc", SESSIONS[:2])
    stale = tmp_path / "out" / "keras_png_slices_test" / "case_9999_MR1_slice_0.nii.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="out"):
        convert_oasis1(src, tmp_path / "out")
    report = convert_oasis1(src, tmp_path / "out", overwrite=True)
    assert not stale.exists() and sum(report.slices.values()) > 0


def test_bad_options_are_refused(tmp_path):
    src = write_disc(tmp_path / "disc", SESSIONS[:1])
    for kwargs in ({"splits": (0.5, 0.5, 0.5)}, {"slice_step": 0}, {"min_brain_fraction": 2.0}):
        with pytest.raises(ValueError):
            convert_oasis1(src, tmp_path / "out", **kwargs)


def test_command_line_prints_report(converted, tmp_path, capsys):
    src, _, _ = converted
    assert main([str(src), str(tmp_path / "cli"), "--seed", "0", "--slice-step", "2"]) == 0
    out = capsys.readouterr().out
    assert "train" in out and str(tmp_path / "cli") in out
    with pytest.raises(SystemExit) as info:
        main([str(src), str(tmp_path / "cli")])
    assert info.value.code == 1 and "not empty" in capsys.readouterr().err


def test_converted_release_loads_with_the_data_layer(tmp_path):
    """End to end: OASIS-1 volumes -> slice layout -> load_dataset with masks."""
    from vqvae_lib.data import load_dataset

    convert_oasis1(write_disc(tmp_path / "oasis1"), tmp_path / "slices")
    ds = load_dataset(tmp_path / "slices", "train", 32, cache_dir=tmp_path / "cache")
    assert ds.layout == "oasis" and ds.masks is not None and len(ds) > 0
    inside, outside = ds.images[:, 0][ds.masks > 0].float(), ds.images[:, 0][ds.masks == 0].float()
    assert inside.mean() > 10 * outside.mean()
