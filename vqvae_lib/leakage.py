"""Leakage between the parts of a split: how many test slices have a near-copy among the training slices?

A source whose file names carry no subject id can only be split by file, and then neighbouring slices of
one subject (nearly the same image) land on both sides: the "held-out" score then partly measures how well
the model remembers its training slices. ``leakage_share`` is the share of test slices whose most similar
training slice has SSIM above ``LEAKAGE_SSIM`` (0.9); print it beside every held-out score.

Exact SSIM against every training slice costs one SSIM per (test, train) pair, so the most similar
slice is found as in ``sample_quality.nearest_neighbours``: the ``candidates`` training slices nearest
in average-pooled pixel space are shortlisted and the best full-resolution SSIM among them is kept. A
near-copy is also near in pooled space, so the shortlist finds it. ``chunk`` test slices are scored at a
time: memory stays bounded (about ``chunk * candidates`` full-size images) however large the sets are.
"""
from __future__ import annotations

import torch

from .sample_quality import nearest_neighbours

LEAKAGE_SSIM = 0.9  # SSIM to the nearest training slice above which a test slice counts as leaked


def nearest_train_ssim(test_images: torch.Tensor, train_images: torch.Tensor, candidates: int = 8,
                       pool_size: int = 32, chunk: int = 64) -> torch.Tensor:
    """(n, 1, S, S) test slices, (N, 1, S, S) training slices (uint8, or float in [0, 1]) -> (n,) SSIM of
    each test slice to its most similar training slice (best among the shortlisted ``candidates``)."""
    if (test_images.dim() != 4 or test_images.shape[1:] != train_images.shape[1:] or len(test_images) == 0
            or len(train_images) == 0):
        raise ValueError(f"test_images and train_images must be (N, 1, S, S) images of one size with N >= 1, "
                         f"got {tuple(test_images.shape)} and {tuple(train_images.shape)}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return nearest_neighbours(test_images, train_images, candidates, pool_size, chunk).ssim   # (n,)


def leakage_share(test_images: torch.Tensor, train_images: torch.Tensor, threshold: float = LEAKAGE_SSIM,
                  candidates: int = 8, pool_size: int = 32, chunk: int = 64) -> float:
    """The share of test slices whose most similar training slice has SSIM above ``threshold``: 0 when no
    test slice has a near-copy in training, 1 when every one has (see module docstring)."""
    nearest = nearest_train_ssim(test_images, train_images, candidates, pool_size, chunk)
    return float((nearest > threshold).float().mean())
