"""Data loading: decoding an OASIS-sized slice set from PNG files, then reopening it from the cache.

    python benchmarks/data_loading.py [--slices 11328] [--size 256] [--image-size 128]

The real OASIS preprocessed set has 11,328 slices of 256x256 (9,664 / 1,120 / 544). It cannot be
downloaded here, so this writes a stand-in of the same count and size in the same layout (slices of
the built-in MNI152 set, upscaled to 256x256, with masks) into a temporary folder, then times
``load_dataset`` on it: a cold decode of every file, and a reopen from the on-disk cache.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vqvae_lib.data import load_dataset
from vqvae_lib.mni152 import ensure_default_dataset

SPLITS = {"train": 9664, "validate": 1120, "test": 544}


sys.path.insert(0, str(Path(__file__).resolve().parent))
from vqvae_quality import SCHEMA, git_commit, machine  # noqa: E402


def write_standin(root: Path, n_total: int, size: int) -> None:
    source = sorted((ensure_default_dataset() / "keras_png_slices_train").glob("*.png"))
    scale = n_total / sum(SPLITS.values())
    i = 0
    for split, count in SPLITS.items():
        (root / f"keras_png_slices_{split}").mkdir(parents=True)
        (root / f"keras_png_slices_seg_{split}").mkdir(parents=True)
        for _ in range(round(count * scale)):
            src = source[i % len(source)]
            name = src.name[len("case_"):].replace("_slice_", f"_{i // len(source)}_slice_")
            image = Image.open(src).resize((size, size), Image.Resampling.BILINEAR)
            mask_src = src.parent.parent / "keras_png_slices_seg_train" / ("seg_" + src.name[len("case_"):])
            mask = Image.open(mask_src).resize((size, size), Image.Resampling.NEAREST)
            image.save(root / f"keras_png_slices_{split}" / f"case_{name}", compress_level=1)
            mask.save(root / f"keras_png_slices_seg_{split}" / f"seg_{name}", compress_level=1)
            i += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=sum(SPLITS.values()))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vqvae-loading-"))
    try:
        root, cache = work / "oasis", work / "cache"
        start = time.perf_counter()
        write_standin(root, args.slices, args.size)
        written = time.perf_counter() - start
        timings = {}
        for label in ("cold", "cached"):
            start = time.perf_counter()
            sets = [load_dataset(root, split, args.image_size, cache_dir=cache) for split in SPLITS]
            timings[label] = time.perf_counter() - start
        n = sum(len(s) for s in sets)
        record = {"schema": SCHEMA, "slices": n, "file_size": args.size, "image_size": args.image_size,
                  "write_seconds": round(written, 1), "decode_seconds": round(timings["cold"], 2),
                  "cached_seconds": round(timings["cached"], 3),
                  "decode_slices_per_second": round(n / timings["cold"]),
                  "in_memory_mib": round(sum(s.images.numel() + s.masks.numel() for s in sets) / 2**20, 1)}
        record.update(machine=machine(), commit=git_commit(), date=time.strftime("%Y-%m-%d %H:%M"))
        print(json.dumps(record))
        out = Path(__file__).resolve().parent / "results" / "data-loading.json"
        out.write_text(json.dumps(record, indent=1))
        assert np.isfinite(record["cached_seconds"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
