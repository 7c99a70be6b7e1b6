"""Derived-data caches (decoded slices in data/cache/, code maps beside their VQ-VAE checkpoint): one version
number, one file naming, one careful reader. A cache is keyed by what it was derived from; a damaged or
stale one is rebuilt, never trusted."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .utils import atomic_torch_save

CACHE_VERSION = 1   # bump when the content of a cache changes meaning: every old cache is then rebuilt


def cache_file(folder: Path, name: str) -> Path:
    """``folder/<name>.pt``: the one naming of cache files."""
    return Path(folder) / f"{name}.pt"


def read_cache(path: Path, key: str | None = None) -> dict | None:
    """The cached dict at ``path``, or None when it is missing, unreadable (with a warning) or was made for
    another ``key`` (its "key" entry)."""
    if not path.exists():
        return None
    try:
        cached = torch.load(path, weights_only=True)
    except Exception as error:  # a damaged cache is rebuilt, never trusted
        warnings.warn(f"cache file {path} could not be read ({error}); building it again", stacklevel=3)
        return None
    if not isinstance(cached, dict) or (key is not None and cached.get("key") != key):
        return None
    return cached


def write_cache(payload: dict, path: Path) -> None:
    atomic_torch_save(payload, path)
