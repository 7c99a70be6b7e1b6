"""Convert the OASIS-1 cross-sectional release into the OASIS preprocessed slice layout.

Input, as unpacked from the oasis-brains.org discs (Analyze 7.5 pairs, ``.img`` + ``.hdr``)::

    OAS1_0001_MR1/PROCESSED/MPRAGE/T88_111/OAS1_0001_MR1_mpr_n4_anon_111_t88_masked_gfc.img
    OAS1_0001_MR1/FSL_SEG/OAS1_0001_MR1_mpr_n4_anon_111_t88_masked_gfc_fseg.img

Output, under ``dst_root``::

    keras_png_slices_{train,validate,test}/case_<session>_slice_<k>.nii.png     8-bit T1 slice
    keras_png_slices_seg_{train,validate,test}/seg_<session>_slice_<k>.nii.png  FAST label x 85

``<session>`` is e.g. ``0001_MR1``. The split is drawn per subject (``0001``), so a repeat scan
``0001_MR2`` always lands in the same split as ``0001_MR1``.

Orientation: axial slices are taken along the last array axis (z). The atlas-registered T88 images
follow the Analyze convention (nibabel's default Analyze affine is LAS): the second axis (y) runs from
posterior to anterior, so ``np.rot90`` of the x-y plane puts the anterior of the head in the top row,
and x runs along the columns (the subject's left on the image's right, as radiologists view it).
"""
from __future__ import annotations

import argparse
import io
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .utils import atomic_write_bytes

SPLITS = ("train", "validate", "test")
IMAGE_SUFFIX = "_masked_gfc.img"
LABEL_STEP = 85  # FAST labels 0 background, 1 CSF, 2 grey matter, 3 white matter -> 0/85/170/255
ROBUST_PERCENTILE = 99.5  # of brain voxels; this intensity and above become 255
_SESSION = re.compile(r"OAS1_(\d{4})_(MR\d+)")


@dataclass
class ConversionReport:
    """What ``convert_oasis1`` wrote: sessions and slice pairs per split, and what it left out."""

    dst_root: Path
    subjects: dict[str, list[str]]  # split -> session ids, e.g. {"train": ["0001_MR1", ...], ...}
    slices: dict[str, int]  # split -> number of (image, mask) PNG pairs
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def summary(self) -> str:
        lines = [f"OASIS slice layout in {self.dst_root}"]
        for split in SPLITS:
            lines.append(f"  {split:<9}{len(self.subjects[split]):5d} scans {self.slices[split]:7d} slices")
        lines += [f"  skipped {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Scan:
    session: str  # "0001_MR1": goes into the file names
    subject: str  # "0001": the unit of the split
    image: Path
    seg: Path


def display_slice(plane: np.ndarray) -> np.ndarray:
    """Orient an x-y plane for display: anterior (high y) in the top row, x along the columns."""
    return np.rot90(plane)


def scale_intensities(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Map a volume to uint8: the robust max of the brain voxels becomes 255; background stays 0."""
    robust_max = float(np.percentile(volume[brain], ROBUST_PERCENTILE))
    scaled = np.clip(volume / robust_max * 255.0, 0.0, 255.0)
    return np.where(brain, np.rint(scaled), 0).astype(np.uint8)


def split_subjects(subjects, splits=(0.8, 0.1, 0.1), seed: int = 0) -> dict[str, str]:
    """Assign each subject to one split: a seeded shuffle of the sorted ids, cut by the fractions.

    Validate and test get ``round(n * fraction)`` subjects each; train keeps the rest, at least one.
    """
    order = sorted(set(subjects))
    order = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
    n = len(order)
    n_val = min(int(n * splits[1] + 0.5), max(n - 1, 0))
    n_test = min(int(n * splits[2] + 0.5), max(n - 1 - n_val, 0))
    names = ["validate"] * n_val + ["test"] * n_test
    names = ["train"] * (n - len(names)) + names
    return dict(zip(order, names, strict=True))


def convert_oasis1(src_root, dst_root, *, splits=(0.8, 0.1, 0.1), seed: int = 0,
                   min_brain_fraction: float = 0.05, slice_step: int = 1,
                   overwrite: bool = False) -> ConversionReport:
    """Write the OASIS slice layout under ``dst_root`` from the OASIS-1 discs under ``src_root``.

    Keeps the axial slices whose brain (non-zero voxels) covers at least ``min_brain_fraction`` of
    the slice, then every ``slice_step``-th of them, numbered ``k = 0..n-1``. Every input file is
    checked (segmentation present, shapes) before anything is written.
    """
    src_root, dst_root = Path(src_root), Path(dst_root)
    _check_options(splits, min_brain_fraction, slice_step)
    _nibabel()                                          # a missing nibabel is named before any work
    scans, skipped = find_scans(src_root)
    _prepare_destination(dst_root, overwrite)
    assignment = split_subjects([scan.subject for scan in scans], splits, seed)
    report = ConversionReport(dst_root, {s: [] for s in SPLITS}, dict.fromkeys(SPLITS, 0), skipped)
    for scan in tqdm(scans, desc="OASIS-1 -> PNG slices", unit="scan"):
        split = assignment[scan.subject]
        written = _convert_scan(scan, dst_root, split, min_brain_fraction, slice_step)
        if written == 0:
            report.skipped.append((str(scan.image), f"no slice with brain fraction >= {min_brain_fraction}"))
            continue
        report.subjects[split].append(scan.session)
        report.slices[split] += written
    return report


def find_scans(src_root: Path) -> tuple[list[_Scan], list[tuple[str, str]]]:
    """Pair every ``*_masked_gfc.img`` under ``src_root`` with its FAST segmentation."""
    if not src_root.is_dir():
        raise FileNotFoundError(f"OASIS-1 source folder not found: {src_root}")
    images = sorted(src_root.rglob(f"*{IMAGE_SUFFIX}"))
    if not images:
        raise ValueError(f"no OASIS-1 volumes under {src_root}: expected files matching '*{IMAGE_SUFFIX}', "
                         f"e.g. OAS1_0001_MR1/PROCESSED/MPRAGE/T88_111/OAS1_0001_MR1_mpr_n4_anon_111_t88"
                         f"{IMAGE_SUFFIX}")
    scans, skipped, seen = [], [], {}
    for image in images:
        match = _SESSION.search(image.name)
        if match is None:
            skipped.append((str(image), "file name holds no OAS1_<nnnn>_MR<n> session id"))
            continue
        session = f"{match[1]}_{match[2]}"
        if session in seen:
            skipped.append((str(image), f"session {session} already read from {seen[session]}"))
            continue
        seen[session] = image
        scans.append(_Scan(session, match[1], image, _find_seg(image, match[0])))
    for scan in scans:
        _check_shapes(scan)
    return scans, skipped


def _find_seg(image: Path, tag: str) -> Path:
    subject_dir = next((p for p in image.parents if p.name == tag), image.parent)
    expected = image.name[: -len(".img")] + "_fseg.img"
    matches = sorted(subject_dir.rglob(expected))
    if not matches:
        raise ValueError(f"no FAST segmentation for {image}: expected {expected} under {subject_dir}")
    return matches[0]


def _nibabel():
    """nibabel, imported on first use: only this converter reads Analyze volumes (the ``oasis`` extra)."""
    try:
        import nibabel
    except ImportError as exc:
        raise ImportError("converting the OASIS-1 release needs nibabel: pip install 'vqvae_lib[oasis]' "
                          "(or pip install nibabel)") from exc
    return nibabel


def _open(path: Path):
    nib = _nibabel()
    try:
        return nib.load(path)
    except Exception as exc:
        raise ValueError(f"cannot read Analyze image {path}: {exc}") from exc


def _shape3d(path: Path, shape: tuple[int, ...]) -> tuple[int, ...]:
    squeezed = tuple(shape)
    while len(squeezed) > 3 and squeezed[-1] == 1:
        squeezed = squeezed[:-1]
    if len(squeezed) != 3:
        raise ValueError(f"{path} is not a 3-D volume: shape {tuple(shape)}")
    return squeezed


def _check_shapes(scan: _Scan) -> None:
    image_shape = _shape3d(scan.image, _open(scan.image).shape)
    seg_shape = _shape3d(scan.seg, _open(scan.seg).shape)
    if image_shape != seg_shape:
        raise ValueError(f"shape mismatch: {scan.image} has {image_shape}, {scan.seg} has {seg_shape}")


def _read_volume(path: Path) -> np.ndarray:
    img = _open(path)
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:
        raise ValueError(f"cannot read the voxels of {path}: {exc}") from exc
    return data.reshape(_shape3d(path, data.shape))


def _read_labels(path: Path) -> np.ndarray:
    raw = _read_volume(path)
    labels = np.rint(raw)
    if labels.min() < 0 or labels.max() > 3 or not np.array_equal(labels, raw):
        raise ValueError(f"{path} is not a FAST segmentation: expected integer labels 0-3, "
                         f"found values in [{raw.min()}, {raw.max()}]")
    return labels.astype(np.uint8)


def _convert_scan(scan: _Scan, dst_root: Path, split: str, min_brain_fraction: float, slice_step: int) -> int:
    volume = _read_volume(scan.image)  # (X, Y, Z)
    labels = _read_labels(scan.seg)  # (X, Y, Z)
    brain = volume > 0
    fraction = brain.mean(axis=(0, 1))  # (Z,)
    kept = np.flatnonzero((fraction > 0) & (fraction >= min_brain_fraction))[::slice_step]
    if kept.size == 0:
        return 0
    pixels = scale_intensities(volume, brain)
    for k, z in enumerate(kept):
        name = f"{scan.session}_slice_{k}.nii.png"
        _write_png(dst_root / f"keras_png_slices_{split}" / f"case_{name}", display_slice(pixels[:, :, z]))
        mask = display_slice(labels[:, :, z] * LABEL_STEP)
        _write_png(dst_root / f"keras_png_slices_seg_{split}" / f"seg_{name}", mask)
    return int(kept.size)


def _write_png(path: Path, pixels: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def _layout_folders(dst_root: Path) -> list[Path]:
    return [dst_root / f"keras_png_slices{kind}_{split}" for kind in ("", "_seg") for split in SPLITS]


def _prepare_destination(dst_root: Path, overwrite: bool) -> None:
    if dst_root.exists() and any(dst_root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{dst_root} is not empty; pass overwrite=True (--overwrite) to replace "
                                  "its keras_png_slices_* folders")
        for folder in _layout_folders(dst_root):
            shutil.rmtree(folder, ignore_errors=True)
    for folder in _layout_folders(dst_root):
        folder.mkdir(parents=True, exist_ok=True)


def _check_options(splits, min_brain_fraction: float, slice_step: int) -> None:
    if len(splits) != 3 or min(splits) < 0 or splits[0] <= 0 or not math.isclose(sum(splits), 1.0):
        raise ValueError(f"splits must be three fractions (train, validate, test) >= 0 that sum to 1, "
                         f"with train > 0; got {splits}")
    if not 0.0 <= min_brain_fraction <= 1.0:
        raise ValueError(f"min_brain_fraction must lie in [0, 1], got {min_brain_fraction}")
    if int(slice_step) != slice_step or slice_step < 1:
        raise ValueError(f"slice_step must be a positive integer, got {slice_step}")


def main(argv=None) -> int:
    """``python -m vqvae_lib.oasis1 SRC DST [--seed 0] [--slice-step 1] [--overwrite]``."""
    parser = argparse.ArgumentParser(prog="python -m vqvae_lib.oasis1",
                                     description="Convert OASIS-1 discs to the OASIS PNG slice layout.")
    parser.add_argument("src", help="folder holding the OAS1_<nnnn>_MR<n> subject folders")
    parser.add_argument("dst", help="folder to write keras_png_slices_* into")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subject split")
    parser.add_argument("--slice-step", type=int, default=1, help="keep every n-th brain slice")
    parser.add_argument("--min-brain-fraction", type=float, default=0.05,
                        help="keep slices whose brain covers at least this fraction")
    parser.add_argument("--overwrite", action="store_true", help="replace existing slice folders in DST")
    args = parser.parse_args(argv)
    try:
        report = convert_oasis1(args.src, args.dst, seed=args.seed, slice_step=args.slice_step,
                                min_brain_fraction=args.min_brain_fraction, overwrite=args.overwrite)
    except (ImportError, OSError, ValueError) as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
