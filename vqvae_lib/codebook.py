"""Codebook inspection: how a model uses its K codes, what each code looks like, and what editing codes does.

Everything works on code index maps (N, h, w): :func:`encode_split` computes them once for a set of
slices, and the statistics, patches and edits below are cheap functions of them. A code at grid position
(row, col) sits on the pixel block ``[row*ds, (row+1)*ds) x [col*ds, (col+1)*ds)`` (ds = downsample);
:func:`decoder_footprint` gives the larger block of pixels that the decoder lets it change.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from . import pipeline
from .config import Profile, get_profile
from .data import SliceDataset, spread_images
from .metrics import code_usage
from .utils import evaluating


@dataclass
class CodebookStats:
    """How often each of the K codes occurs over all positions of a set of code maps.

    "Dead" here means never chosen on these images: not the quantizer's running-usage notion
    (``VectorQuantizer.dead_codes``) that decides restarts during training.
    """

    counts: Tensor                 # (K,) int64: positions assigned to each code
    perplexity: float              # 2 ** entropy_bits: the number of equally used codes it is worth
    active: int                    # codes used at least once
    dead: Tensor                   # (n_dead,) int64: ids of the codes never used here (sorted)
    entropy_bits: float            # entropy of the usage distribution in bits, at most log2(K)
    by_group: Tensor | None = None  # (G, K) int64: counts per group of images (slice depth, class)
    group_names: list[str] = field(default_factory=list)  # one name per row of by_group
    group_by: str = ""             # what the groups are, e.g. "slice index" or "class"

    @property
    def codebook_size(self) -> int:
        return self.counts.numel()

    @property
    def usage(self) -> Tensor:
        """(K,) fraction of positions taken by each code (sums to 1)."""
        return self.counts.double() / self.counts.sum()

    def summary(self) -> dict:
        return {"codebook_size": self.codebook_size, "perplexity": self.perplexity, "active": self.active,
                "dead": int(self.dead.numel()), "entropy_bits": self.entropy_bits,
                "max_entropy_bits": math.log2(self.codebook_size), "positions": int(self.counts.sum())}


def entropy_bits(counts: Tensor) -> float:
    """Entropy in bits of a histogram (any shape): 0 for one code, log2(k) for k codes used equally."""
    counts = counts.double().flatten()
    if counts.sum() <= 0:
        raise ValueError("entropy of an empty histogram: no code was counted")
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log2()).sum()) + 0.0  # + 0.0: no "-0.0" for a single code


def stats_from_indices(indices: Tensor, codebook_size: int, groups=None, group_names: Sequence[str] | None = None,
                       group_by: str = "") -> CodebookStats:
    """Statistics of code maps ``indices`` (N, h, w). ``groups`` (N,) puts each image in a group: with
    ``group_names``, ids 0..G-1 (row g of by_group is group_names[g]); without, any values (ints or
    strings), one row per distinct value in sorted order."""
    counts = code_usage(indices, codebook_size)  # (K,)
    bits = entropy_bits(counts)
    stats = CodebookStats(counts=counts, perplexity=2.0 ** bits, active=int((counts > 0).sum()),
                          dead=(counts == 0).nonzero().flatten(), entropy_bits=bits, group_by=group_by)
    if groups is not None:
        ids, stats.group_names = _group_ids(groups, group_names, len(indices))
        G, K = len(stats.group_names), codebook_size
        flat = ids.view(-1, 1) * K + indices.reshape(len(indices), -1).long()  # (N, h*w): group*K + code
        stats.by_group = torch.bincount(flat.flatten(), minlength=G * K).view(G, K)
    return stats


def _group_ids(groups, names: Sequence[str] | None, n: int) -> tuple[Tensor, list[str]]:
    values = groups.tolist() if isinstance(groups, Tensor) else list(groups)
    if len(values) != n:
        raise ValueError(f"groups has {len(values)} entries for {n} code maps")
    if names is not None:
        if any(not 0 <= int(v) < len(names) for v in values):
            raise ValueError(f"with group_names, groups must be ids in [0, {len(names)})")
        return torch.tensor([int(v) for v in values], dtype=torch.long), list(names)
    keys = sorted(set(values))
    row = {k: i for i, k in enumerate(keys)}
    return torch.tensor([row[v] for v in values], dtype=torch.long), [str(k) for k in keys]


def codebook_stats(model: nn.Module, data, groups="auto", group_names: Sequence[str] | None = None,
                   batch_size: int = 64) -> CodebookStats:
    """Encode ``data`` (a SliceDataset or uint8 images (N, 1, S, S)) and count code use.

    ``groups="auto"``: a dataset's slice depth (OASIS layout) or class (ImageFolder), else none;
    ``None``: no groups; or (N,) group values as in :func:`stats_from_indices`.
    """
    group_by = ""
    if isinstance(groups, str) and groups == "auto":
        groups = None
        if isinstance(data, SliceDataset) and data.slice_index is not None:
            groups, group_by = data.slice_index, "slice index"
        elif isinstance(data, SliceDataset) and data.labels is not None:
            groups, group_names, group_by = data.labels, data.class_names, "class"
    indices = encode_split(model, data, batch_size)
    return stats_from_indices(indices, model.config.codebook_size, groups, group_names, group_by)


# ----------------------------------------------------------------------------- encoding

class EncodedSplit(NamedTuple):
    indices: Tensor    # (N, h, w) int64: the nearest code at each position
    distances: Tensor  # (N, h, w) float32: squared distance from the encoder output to that code


def _images(data) -> Tensor:
    return data.images if isinstance(data, SliceDataset) else data


def encode_with_distances(model: nn.Module, data, batch_size: int = 64) -> EncodedSplit:
    """Code maps of ``data`` (SliceDataset, or images (N, 1, S, S): uint8, or float in [0, 1]), on CPU.

    Runs in eval mode under ``torch.inference_mode`` on the model's device; restores the mode after.
    """
    images, device = _images(data), next(model.parameters()).device
    if len(images) == 0:
        raise ValueError("nothing to encode: no images")
    indices, distances = [], []
    with evaluating(model):
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                x = images[start:start + batch_size].to(device)
                x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()  # (B, 1, S, S)
                codes, squared = model.quantizer.nearest_with_distances(model.encode(x))  # (B, h, w) each
                indices.append(codes.cpu())
                distances.append(squared.cpu())
    return EncodedSplit(torch.cat(indices), torch.cat(distances))


def encode_split(model: nn.Module, data, batch_size: int = 64) -> Tensor:
    """Code maps (N, h, w) int64 of ``data``; see :func:`encode_with_distances`."""
    return encode_with_distances(model, data, batch_size).indices


# ----------------------------------------------------------------------------- what a code means

class CodePatch(NamedTuple):
    image: int     # index of the image
    row: int       # grid position of the code
    col: int
    patch: Tensor  # (ph, pw) the pixels under the code plus the margin, clipped at the borders


def patch_box(row: int, col: int, downsample: int, margin: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Pixel rows [top, bottom) and columns [left, right) of the block under code (row, col), widened by
    ``margin`` on each side and clipped to an image of ``size`` (H, W)."""
    H, W = size
    return (max(row * downsample - margin, 0), min((row + 1) * downsample + margin, H),
            max(col * downsample - margin, 0), min((col + 1) * downsample + margin, W))


def code_patches(indices: Tensor, data, code: int, downsample: int, margin: int | None = None,
                 max_patches: int = 16, distances: Tensor | None = None) -> list[CodePatch]:
    """Image patches where ``code`` occurs in code maps ``indices`` (N, h, w) of images (N, 1, H, W).

    With ``distances`` (N, h, w) the best matches (encoder output nearest the code) come first; without,
    the occurrences are sampled evenly in image order. ``margin`` defaults to ``downsample``.
    """
    images = _images(data)
    images = images[:, 0] if images.dim() == 4 else images  # (N, H, W)
    margin = downsample if margin is None else margin
    where = (indices == code).nonzero()  # (M, 3): image, row, col
    if distances is not None:
        where = where[distances[where.unbind(1)].argsort(stable=True)[:max_patches]]
    elif len(where) > max_patches:
        where = where[torch.linspace(0, len(where) - 1, max_patches).round().long()]
    patches = []
    for n, r, c in where.tolist():
        top, bottom, left, right = patch_box(r, c, downsample, margin, images.shape[-2:])
        patches.append(CodePatch(n, r, c, images[n, top:bottom, left:right].clone()))
    return patches


class Neighbours(NamedTuple):
    indices: Tensor    # (k,) int64: code ids, nearest first
    distances: Tensor  # (k,) float: Euclidean distances in embedding space


def nearest_codes(codebook: Tensor, code: int, k: int = 8) -> Neighbours:
    """The k codes nearest to ``code`` in the codebook (K, D), the code itself excluded."""
    codebook = codebook.detach().float().cpu()
    distances = (codebook - codebook[code]).pow(2).sum(1).sqrt()  # (K,)
    distances[code] = math.inf
    order = distances.argsort(stable=True)[:min(k, len(codebook) - 1)]
    return Neighbours(order, distances[order])


class Projection(NamedTuple):
    points: Tensor     # (K, 2) codes on the first two principal axes
    explained: Tensor  # (2,) fraction of the codebook's variance along each axis


def pca_2d(codebook: Tensor) -> Projection:
    """Project the codebook (K, D) on its first two principal axes (SVD of the centred codes).

    Signs are fixed (each axis' largest loading is positive), so repeated calls agree.
    """
    x = codebook.detach().float().cpu()
    x = x - x.mean(0)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)  # vh: (min(K, D), D)
    axes = vh[:2]
    largest = axes.gather(1, axes.abs().argmax(1, keepdim=True))  # (<=2, 1)
    axes = torch.where(largest < 0, -axes, axes)
    points, var = x @ axes.T, s[:2].pow(2)  # (K, <=2), (<=2,)
    total = s.pow(2).sum()
    explained = var / total if total > 0 else torch.zeros_like(var)
    pad = 2 - points.shape[1]  # a codebook with D = 1 or K = 1 has fewer than two axes
    return Projection(F.pad(points, (0, pad)), F.pad(explained, (0, pad)))


# ----------------------------------------------------------------------------- editing code maps

def replace_code(indices: Tensor, src: int, dst: int) -> Tensor:
    """A copy of ``indices`` with every ``src`` replaced by ``dst``."""
    return torch.where(indices == src, torch.full_like(indices, dst), indices)


def paint_region(indices: Tensor, rows: tuple[int, int], cols: tuple[int, int], code: int) -> Tensor:
    """A copy of ``indices`` (..., h, w) with grid rows [rows[0], rows[1]) x cols [cols[0], cols[1]) set
    to ``code`` (half-open ranges, as in slicing)."""
    edited = indices.clone()
    edited[..., rows[0]:rows[1], cols[0]:cols[1]] = code
    return edited


def decode_edit(model: nn.Module, indices: Tensor) -> Tensor:
    """Decode code maps (h, w) or (B, h, w) -> images (B, 1, H, W) float on CPU (not clamped)."""
    indices = indices.unsqueeze(0) if indices.dim() == 2 else indices
    with evaluating(model):
        with torch.inference_mode():
            images = model.decode_indices(indices.to(next(model.parameters()).device)).float().cpu()
    return images.clone()  # a normal tensor, usable outside inference mode


def decoder_footprint(model: nn.Module, row: int, col: int) -> tuple[int, int, int, int]:
    """Pixel rows [top, bottom) and columns [left, right) that a change of the code at (row, col) can
    reach, following the decoder's convolutions in order (unclipped: it may stick out of the image).

    A stride-1 conv (kernel k, padding p) spreads an input i to outputs [i + p - k + 1, i + p]; a
    transposed conv (k, stride s, padding p) to [i*s - p, i*s - p + k - 1]. A residual block's
    output reaches as far as its branch does.
    """
    (top, bottom), (left, right) = (row, row), (col, col)  # inclusive ranges
    for layer in model.decoder.modules():
        if isinstance(layer, nn.ConvTranspose2d):
            (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
            top, bottom = top * sh - ph, bottom * sh - ph + kh - 1
            left, right = left * sw - pw, right * sw - pw + kw - 1
        elif isinstance(layer, nn.Conv2d):
            (kh, kw), (ph, pw) = layer.kernel_size, layer.padding
            top, bottom, left, right = top + ph - kh + 1, bottom + ph, left + pw - kw + 1, right + pw
    return top, bottom + 1, left, right + 1


# ----------------------------------------------------------------------------- codebook-size lab

class SizeLabRuns(NamedTuple):
    stats: dict[str, CodebookStats]  # label -> code use on held-out slices
    histories: dict[str, dict]       # label -> training history (per-batch perplexity, active codes)


def codebook_size_runs(profile: Profile | str | None = None, source: str = "default",
                       sizes: Sequence[int] = (32, 128, 512), restart: Sequence[bool] = (True, False),
                       limit: int | None = 512, progress: bool = True) -> SizeLabRuns:
    """Train (or load) the profile's small variant for each codebook size and dead-code restart setting,
    and count its code use on up to ``limit`` held-out slices. This trains: minutes per run on a CPU."""
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    images = spread_images(pipeline.held_out(source, profile.demo_image_size), limit)
    stats, histories = {}, {}
    for K in sizes:
        for on in restart:
            name = f"K{K}" if on == profile.vqvae.restart_dead else f"K{K}-{'restart' if on else 'norestart'}"
            result = pipeline.load_or_train_variant(profile, source, name, progress=progress,
                                                    codebook_size=K, restart_dead=on)
            label = f"K={K}" + ("" if len(restart) == 1 else " restart" if on else " no restart")
            stats[label] = codebook_stats(result.model, images, groups=None)
            histories[label] = result.history
    return SizeLabRuns(stats, histories)
