"""Code maps: a split encoded once by a trained VQ-VAE, with labels for a conditional prior, cached.

The cache file sits next to the VQ-VAE checkpoint (``<run>/codes/<checkpoint>-<split>-<data>.pt``) and
holds its key: the fingerprint of the checkpoint file's bytes, the dataset's fingerprint and the label
settings (the number of depth buckets, where the labels are depths). A cache whose key differs (the VQ-VAE
was retrained or resumed, the data changed) is rebuilt, never reused.

Labels: for the OASIS layout, ``n_buckets`` equal bins of the slice index (slice depth, 0 = lowest
slices), with bin edges from the train split so that every split uses the same ones; for an ImageFolder
tree, the class folder; for a plain folder, none.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .cache import CACHE_VERSION, cache_file, read_cache, write_cache
from .checkpoint import checkpoint_fingerprint, load_vqvae
from .config import PixelCNNConfig
from .data import SliceDataset, load_dataset
from .metrics import code_usage
from .utils import get_device


@dataclass
class CodeMaps:
    indices: torch.Tensor            # (N, h, w) long: the VQ-VAE's code at each position
    labels: torch.Tensor | None      # (N,) long: the label of each map, None when the source has none
    label_names: list[str]           # the name of each label value
    label_kind: str                  # "depth" | "class" | "none"
    codebook_size: int               # K
    split: str
    key: str                         # what the cache is keyed by: VQ-VAE checkpoint, data, labels

    def __len__(self) -> int:
        return self.indices.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.indices.shape[-2:])

    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    def histogram(self) -> torch.Tensor:
        """How often each code occurs over all maps: (K,) int64."""
        return code_usage(self.indices, self.codebook_size)


def depth_buckets(slice_index: torch.Tensor, n_buckets: int, lo: int, hi: int) -> torch.Tensor:
    """Slice indices (N,) -> bucket (N,) long: ``n_buckets`` equal bins of [lo, hi], clamped."""
    position = (slice_index.double() - lo) / (hi - lo + 1)                   # [0, 1) inside the range
    return (position * n_buckets).floor().long().clamp(0, n_buckets - 1)


def depth_bucket_names(n_buckets: int, lo: int, hi: int) -> list[str]:
    """``slices a-b`` for each bucket of ``depth_buckets``."""
    members = depth_buckets(torch.arange(lo, hi + 1), n_buckets, lo, hi)
    names = []
    for b in range(n_buckets):
        inside = torch.arange(lo, hi + 1)[members == b]
        names.append(f"slices {int(inside.min())}-{int(inside.max())}" if len(inside) else f"bucket {b} (empty)")
    return names


def conditioning_labels(dataset: SliceDataset, n_buckets: int, depth_range: tuple[int, int] | None = None):
    """(labels (N,) long | None, label names, kind) for a split: slice-depth buckets, classes or none.

    ``depth_range`` (lo, hi) fixes the bucket edges (default: this split's own range of slice indices).
    """
    if dataset.slice_index is not None:
        lo, hi = depth_range or (int(dataset.slice_index.min()), int(dataset.slice_index.max()))
        return depth_buckets(dataset.slice_index, n_buckets, lo, hi), depth_bucket_names(n_buckets, lo, hi), "depth"
    if dataset.labels is not None:
        return dataset.labels.clone(), list(dataset.class_names), "class"
    return None, [], "none"


@torch.no_grad()
def encode_images(vqvae, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """uint8 slices (N, 1, S, S) -> code maps (N, h, w) long on the CPU (``vqvae.encode_indices``)."""
    device = next(vqvae.parameters()).device
    maps = [vqvae.encode_indices(images[s:s + batch_size].to(device).float() / 255.0).cpu()
            for s in range(0, len(images), batch_size)]
    return torch.cat(maps)


def _cache_path(vqvae_path: Path, split: str, data_fingerprint: str) -> Path:
    return cache_file(vqvae_path.parent / "codes", f"{vqvae_path.stem}-{split}-{data_fingerprint}")


def _depth_range(source, image_size: int, dataset: SliceDataset, group_by: str | None = None) -> tuple[int, int] | None:
    """The train split's range of slice indices: the same bucket edges for every split."""
    if dataset.slice_index is None:
        return None
    train = dataset if dataset.split == "train" else load_dataset(source, "train", image_size, group_by=group_by)
    return int(train.slice_index.min()), int(train.slice_index.max())


def load_code_maps(vqvae_path, source: str = "default", split: str = "train", *,
                   n_buckets: int = PixelCNNConfig.depth_buckets,
                   device: torch.device | None = None, cache: bool = True, batch_size: int = 64) -> CodeMaps:
    """The code maps of ``split`` of ``source`` under the VQ-VAE checkpoint ``vqvae_path``, with labels.

    Read from the cache when its key matches (see module docstring), encoded and cached otherwise. The
    slices are loaded at the image size the VQ-VAE was trained at.
    """
    vqvae_path = Path(vqvae_path)
    vqvae = load_vqvae(vqvae_path, device or get_device())
    dataset = load_dataset(source, split, vqvae.image_size, group_by=vqvae.group_by)  # the VQ-VAE's own split
    buckets = f"-b{n_buckets}" if dataset.slice_index is not None else ""   # only depth labels have buckets
    key = f"v{CACHE_VERSION}-{checkpoint_fingerprint(vqvae_path)}-{dataset.fingerprint}{buckets}"
    path = _cache_path(vqvae_path, split, dataset.fingerprint)
    cached = read_cache(path, key) if cache else None
    if cached is None:
        labels, names, kind = conditioning_labels(dataset, n_buckets,
                                                  _depth_range(source, vqvae.image_size, dataset, vqvae.group_by))
        cached = {"key": key, "indices": encode_images(vqvae, dataset.images, batch_size).int(),
                  "labels": labels, "label_names": names, "label_kind": kind}
        if cache:
            write_cache(cached, path)
    return CodeMaps(indices=cached["indices"].long(), labels=cached["labels"], label_names=list(cached["label_names"]),
                    label_kind=cached["label_kind"], codebook_size=vqvae.config.codebook_size, split=split, key=key)
