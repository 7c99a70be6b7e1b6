"""Shared test data: a tiny two-class ImageFolder tree, with caches and runs kept in tmp."""
from pathlib import Path

import numpy as np
from PIL import Image


def tiny_imagefolder(root: Path, shape: tuple[int, int], margin: tuple[int, int], textured: bool) -> Path:
    """Two class folders of 10 slices each: a bright rectangle on black; class "b" textured if asked."""
    rng = np.random.default_rng(0)
    (mh, mw), (h, w) = margin, shape
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(10):
            image = np.zeros(shape, np.uint8)
            inside = (h - 2 * mh, w - 2 * mw)
            image[mh:-mh, mw:-mw] = rng.integers(0, 250, inside) if textured and cls == "b" else rng.integers(60, 250)
            Image.fromarray(image).save(root / cls / f"{i}.png")
    return root
