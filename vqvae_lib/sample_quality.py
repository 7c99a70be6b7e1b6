"""How good are decoded samples? Realism, memorisation, diversity, intensities and brain area, against real slices.

- Nearest-neighbour SSIM: the SSIM (``metrics.ssim``, full resolution) of each sample to its most
  similar training slice: high means realistic. Exact SSIM against every training slice costs one SSIM
  per (sample, slice) pair, so we shortlist the ``candidates`` training slices nearest to each sample in
  pixel space (Euclidean, after average pooling to ``pool_size`` x ``pool_size``) and take the best SSIM
  among them. The share of samples above ``MEMORISED`` (0.95) flags possible copies of training slices;
  the share above ``REALISTIC`` (0.6) counts the samples that look like some real slice at all.
- Depth agreement: the share of samples whose nearest training slice carries the label (depth bucket)
  the sample was asked for: does the conditioning work?
- Border tissue: the "empty frame" is the set of pixels where no real training slice has tissue (above
  ``BRAIN_THRESHOLD``); a sample with more than a few pixels of tissue there has brain where brains never are.
- Pairwise SSIM: the mean SSIM between distinct samples: close to 1 means the samples are all alike
  (mode collapse); compare it with the pairwise SSIM of real slices.
- Two-sample test: a small CNN learns to tell samples from real slices; its cross-validated accuracy is
  0.5 when it cannot (the samples pass) and 1 when it always can. The score is the mean of ``CRITIC_REPEATS``
  critics (seeds), each trained ``CRITIC_EPOCHS`` epochs with a cosine-decayed learning rate.
- Intensities: the Wasserstein-1 distance between the intensities of the brain pixels (above
  ``BRAIN_THRESHOLD``) of the samples and of held-out real slices, in intensity units ([0, 1]).
- Brain area: the fraction of pixels above ``BRAIN_THRESHOLD`` per image, mean and std, vs the real ones.
- Mirror symmetry: the IoU of each brain mask with itself mirrored about its own centre column (1: a perfectly
  symmetric outline); compare it with the real slices'.
- What gives samples away, one simple measure at a time: ``slice_measures`` (outline size, position,
  roughness and symmetry, brain intensity mean and spread, per slice) and ``separability`` (the folded ROC area of
  one measure between two sets: 0.5 when it cannot tell them apart); benchmarks/critic_cues.py reports them.

``measure`` computes all of them but the last; ``real_ceiling`` computes the same for held-out real slices, the best a
generator can hope for. Do the same for samples of the independent-codes prior
(``prior.IndependentPrior.sample``) to see what the PixelCNN adds (``compare_priors`` does the first few).
Every measure works a chunk of images at a time: memory stays bounded for thousands of slices.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .data import to_grayscale
from .metrics import ssim
from .prior import IndependentPrior
from .sampling import decode, default_labels, sample

BRAIN_THRESHOLD = 0.05   # intensity above which a pixel counts as brain (skull-stripped: background ~0)
MEMORISED = 0.95         # nearest-neighbour SSIM above which a sample may be a copy of a training slice
REALISTIC = 0.6          # nearest-neighbour SSIM above which a sample looks like some real slice
CRITIC_REPEATS = 3       # two-sample critics (seeds) averaged per score
CRITIC_EPOCHS = 24       # epochs of each critic, learning rate cosine-decayed to 0
CRITIC = {"epochs": CRITIC_EPOCHS, "schedule": "cosine", "repeats": CRITIC_REPEATS}   # what records store
BORDER_SHARE = 16 / 128**2  # tissue pixels in the empty frame a sample may have (16 at 128 x 128)
FRAME_MARGIN = 4 / 128      # the empty frame starts this far (a share of the image size) from any real tissue
SAMPLES_JSON = "samples.json"  # what a folder of saved samples says about them (``save_samples``)


def as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] or float in [0, 1], (N, 1, S, S) -> float32 in [0, 1] on the CPU."""
    images = images.detach().cpu()
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float().clamp(0, 1)


def pooled(images: torch.Tensor, size: int, chunk: int = 512) -> torch.Tensor:
    """(N, 1, S, S) -> (N, size * size): average-pooled and flattened, a chunk at a time."""
    parts = [F.adaptive_avg_pool2d(as_float(images[s:s + chunk]), size).flatten(1)
             for s in range(0, len(images), chunk)]
    return torch.cat(parts)


class Neighbours(NamedTuple):
    ssim: torch.Tensor    # (n,) SSIM of each sample to its nearest training slice
    index: torch.Tensor   # (n,) long: which training slice that is


def nearest_neighbours(samples: torch.Tensor, train: torch.Tensor, candidates: int = 8, pool_size: int = 32,
                       chunk: int = 64) -> Neighbours:
    """(n, 1, S, S) samples, (N, 1, S, S) training slices -> the nearest training slice of each sample and
    its SSIM (best among the ``candidates`` nearest in pooled pixel space; see module docstring).
    ``chunk`` samples at a time: at most ``chunk * candidates`` full-size images in memory."""
    if len(train) == 0 or samples.shape[1:] != train.shape[1:]:
        raise ValueError(f"samples and train must be (N, 1, S, S) images of one size with N >= 1, got "
                         f"{tuple(samples.shape)} and {tuple(train.shape)}")
    train_pooled = pooled(train, pool_size)                                           # (N, p * p)
    scores, indices = [], []
    for s in range(0, len(samples), chunk):
        part = samples[s:s + chunk]
        distances = torch.cdist(pooled(part, pool_size), train_pooled)               # (b, N)
        shortlist = distances.topk(min(candidates, len(train)), largest=False).indices  # (b, c)
        b, c = shortlist.shape
        pairs = as_float(train[shortlist.flatten()])                                  # (b * c, 1, S, S)
        score = ssim(as_float(part).repeat_interleave(c, dim=0), pairs).view(b, c)   # (b, c)
        best = score.max(dim=1)
        scores.append(best.values)
        indices.append(shortlist.gather(1, best.indices[:, None])[:, 0])
    if not scores:
        return Neighbours(torch.zeros(0), torch.zeros(0, dtype=torch.long))
    return Neighbours(torch.cat(scores), torch.cat(indices))


def nearest_neighbour_ssim(samples: torch.Tensor, train: torch.Tensor, candidates: int = 8,
                           pool_size: int = 32) -> torch.Tensor:
    """(n, 1, S, S) samples, (N, 1, S, S) training slices -> (n,) SSIM to the nearest training slice
    (``nearest_neighbours(...).ssim``)."""
    return nearest_neighbours(samples, train, candidates, pool_size).ssim


def share_above(nn_ssim: torch.Tensor, threshold: float = REALISTIC) -> float:
    """The share of samples whose nearest-neighbour SSIM is above ``threshold`` (NaN for no samples)."""
    return float((nn_ssim > threshold).float().mean()) if nn_ssim.numel() else float("nan")


def depth_agreement(nn_index: torch.Tensor, train_labels: torch.Tensor, requested_labels: torch.Tensor) -> float:
    """The share of samples whose nearest training slice (``nn_index`` (n,)) carries the label the sample was
    asked for (``requested_labels`` (n,)); ``train_labels`` (N,): the label (depth bucket) of each slice."""
    nn_index, requested = torch.as_tensor(nn_index).long(), torch.as_tensor(requested_labels).long()
    if nn_index.shape != requested.shape or nn_index.dim() != 1 or len(nn_index) == 0:
        raise ValueError(f"nn_index and requested_labels must be two (n,) tensors with n >= 1, got "
                         f"{tuple(nn_index.shape)} and {tuple(requested.shape)}")
    return float((torch.as_tensor(train_labels).long()[nn_index] == requested).float().mean())


def chunks(images: torch.Tensor, chunk: int = 512):
    """(N, 1, S, S) uint8 or float -> float (b, 1, S, S) pieces in [0, 1], ``chunk`` images each."""
    for s in range(0, len(images), chunk):
        yield as_float(images[s:s + chunk])


def brain_area(images: torch.Tensor, threshold: float = BRAIN_THRESHOLD) -> torch.Tensor:
    """(N, 1, S, S) -> (N,) fraction of pixels above ``threshold``."""
    parts = [(part > threshold).float().mean(dim=(1, 2, 3)) for part in chunks(images)]
    return torch.cat(parts) if parts else torch.zeros(0)


def mirror_symmetry(images: torch.Tensor, threshold: float = BRAIN_THRESHOLD) -> torch.Tensor:
    """Left-right symmetry of each brain outline: (N, 1, S, S) -> (N,) the IoU of the brain mask (pixels above
    ``threshold``) with the same mask mirrored about its own centre column (the mean column of its brain pixels,
    to the nearest half pixel), so that a brain off the image's centre is not penalised: 1 for a mirror-symmetric
    outline; 0 for an image without brain pixels."""
    parts = []
    for part in chunks(images):
        mask = part[:, 0] > threshold                                              # (c, S, S)
        S = mask.shape[-1]
        columns = torch.arange(S, dtype=torch.float32)
        centre = (mask * columns).sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp(min=1)   # (c,)
        shift = torch.round(2 * centre - (S - 1)).long()                           # x -> 2 centre - x
        source = torch.arange(S)[None] - shift[:, None]                            # (c, S) column of the flip
        inside = (source >= 0) & (source < S)
        mirrored = mask.flip(-1).gather(2, source.clamp(0, S - 1)[:, None].expand(-1, S, -1)) & inside[:, None]
        union = (mask | mirrored).sum(dim=(1, 2))
        parts.append(torch.where(union > 0, (mask & mirrored).sum(dim=(1, 2)) / union.clamp(min=1), 0.0))
    return torch.cat(parts) if parts else torch.zeros(0)


def extent(occupied: torch.Tensor) -> torch.Tensor:
    """(N, S) bool, which rows (or columns) hold brain -> (N,) the span from the first to the last, as a fraction
    of S (0 where none does)."""
    S = occupied.shape[1]
    first = occupied.float().argmax(1)
    last = S - 1 - occupied.flip(1).float().argmax(1)
    return torch.where(occupied.any(1), (last - first + 1) / S, 0.0)


def brain_intensity(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, S, S) float slices and their (N, S, S) bool brain masks -> (N,) mean and (N,) spread (standard
    deviation) of each slice's brain pixels (0 and 0 without any)."""
    pixels = mask.sum(dim=(1, 2)).clamp(min=1)
    mean = (x * mask).sum(dim=(1, 2)) / pixels
    spread = ((((x - mean[:, None, None]) ** 2) * mask).sum(dim=(1, 2)) / pixels).sqrt()
    return mean, spread


def outline_pixels(mask: torch.Tensor) -> torch.Tensor:
    """(N, S, S) bool brain masks -> (N, S, S) bool: the brain pixels with a non-brain 4-neighbour (or the image's
    edge)."""
    padded = F.pad(mask, (1, 1, 1, 1))                                             # (N, S + 2, S + 2)
    inner = (mask & padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1]                     # its 4 neighbours are brain too
             & padded[:, 1:-1, :-2] & padded[:, 1:-1, 2:])
    return mask & ~inner


def slice_measures(images: torch.Tensor, threshold: float = BRAIN_THRESHOLD) -> dict[str, torch.Tensor]:
    """Simple measures of each slice, to see which one tells two sets apart (``separability``): (N, 1, S, S) ->
    name -> (N,). Of the brain mask (pixels above ``threshold``): its area (fraction of the image), width and
    height (fraction of the image side), centre row and column (fraction of the side, 0.5 = the image's centre),
    outline roughness (brain pixels with a non-brain 4-neighbour over the square root of all brain pixels: about
    3.2 for a disc, 3.8 for a square, more for a ragged outline) and mirror symmetry (``mirror_symmetry``); of
    the brain pixels' intensities: mean and spread (standard deviation). An image without brain pixels measures 0
    everywhere."""
    names = ("brain area", "width", "height", "centre row", "centre column", "outline roughness", "mirror symmetry",
             "brain intensity mean", "brain intensity spread")
    parts: dict[str, list[torch.Tensor]] = {name: [torch.zeros(0)] for name in names}   # no images: (0,) each
    for part in chunks(images):
        x = part[:, 0]                                                             # (c, S, S)
        mask = x > threshold
        S = x.shape[-1]
        pixels = mask.sum(dim=(1, 2)).clamp(min=1)                                 # (c,)
        position = torch.arange(S, dtype=torch.float32)
        mean, spread = brain_intensity(x, mask)
        measures = {"brain area": mask.float().mean(dim=(1, 2)), "width": extent(mask.any(1)),
                    "height": extent(mask.any(2)),
                    "centre row": (mask * (position[:, None] + 0.5)).sum(dim=(1, 2)) / pixels / S,
                    "centre column": (mask * (position + 0.5)).sum(dim=(1, 2)) / pixels / S,
                    "outline roughness": outline_pixels(mask).sum(dim=(1, 2)) / pixels.sqrt(),
                    "mirror symmetry": mirror_symmetry(part, threshold),
                    "brain intensity mean": mean, "brain intensity spread": spread}
        for name in names:
            parts[name].append(measures[name])
    return {name: torch.cat(values) for name, values in parts.items()}


def separability(a: torch.Tensor, b: torch.Tensor, chunk: int = 4096) -> float:
    """How well one measure alone tells two sets apart: the area under the ROC curve of a threshold on it,
    folded to at least 0.5 (0.5: not at all, whichever side is higher; 1: perfectly). (N,) and (M,) -> float;
    ties count half."""
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"separability needs two non-empty sets, got {len(a)} and {len(b)} values")
    b = b.double()
    above = sum(float((part.double()[:, None] > b).sum() + 0.5 * (part.double()[:, None] == b).sum())
                for part in a.split(chunk))
    auc = above / (len(a) * len(b))
    return max(auc, 1 - auc)


def empty_frame(train_images: torch.Tensor, threshold: float = BRAIN_THRESHOLD, max_share: float = 0.0,
                margin: int | None = None) -> torch.Tensor:
    """Where real slices never have tissue: (N, 1, S, S) training slices -> (S, S) bool, True at the pixels
    where at most ``max_share`` of the slices are above ``threshold`` (0: not a single one) and that lie more
    than ``margin`` pixels from any such pixel (default ``FRAME_MARGIN`` of the image size: 4 pixels at 128).
    On skull-stripped, centred slices this is a frame around the brain: the corners and the image border.
    The margin keeps registered data fair, where every slice has nearly the same outline and the frame
    would otherwise start right at the brain's edge (a sample a pixel wider would have "tissue in the border")."""
    if train_images.dim() != 4 or len(train_images) == 0:
        raise ValueError(f"train_images must be (N, 1, S, S) with N >= 1, got {tuple(train_images.shape)}")
    counts = sum((part > threshold).sum(dim=(0, 1)) for part in chunks(train_images))  # (S, S)
    tissue = (counts > max_share * len(train_images)).float()[None, None]               # (1, 1, S, S)
    margin = round(FRAME_MARGIN * tissue.shape[-1]) if margin is None else margin
    if margin > 0:
        tissue = F.max_pool2d(tissue, 2 * margin + 1, stride=1, padding=margin)
    return tissue[0, 0] == 0


def border_tissue(images: torch.Tensor, frame: torch.Tensor, threshold: float = BRAIN_THRESHOLD,
                  min_pixels: int | None = None) -> torch.Tensor:
    """Which images have tissue where real slices never do: (N, 1, S, S), the (S, S) ``empty_frame`` ->
    (N,) bool, True when more than ``min_pixels`` pixels inside the frame are above ``threshold``.
    Default ``min_pixels``: ``BORDER_SHARE`` of the image area (16 pixels at 128 x 128, 4 at 64 x 64): a few
    stray pixels at the brain's edge are not tissue in the border."""
    if frame.shape != images.shape[-2:]:
        raise ValueError(f"frame must be (S, S) = {tuple(images.shape[-2:])} like the images, got {tuple(frame.shape)}")
    if min_pixels is None:
        min_pixels = round(BORDER_SHARE * frame.numel())
    parts = [((part[:, 0] > threshold) & frame).sum(dim=(1, 2)) > min_pixels for part in chunks(images)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool)


def random_pairs(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` distinct unordered pairs (i < j) of range(n), uniformly at random: (k, 2) long."""
    codes = torch.zeros(0, dtype=torch.long)
    while len(codes) < k:  # draw more than needed, drop repeats, keep a random k of them
        i = torch.randint(n, (k,), generator=generator)
        j = (i + torch.randint(1, n, (k,), generator=generator)) % n                 # j != i
        codes = torch.cat([codes, torch.minimum(i, j) * n + torch.maximum(i, j)]).unique()
    codes = codes[torch.randperm(len(codes), generator=generator)[:k]]
    return torch.stack([codes // n, codes % n], dim=1)


def pairwise_ssim(images: torch.Tensor, max_pairs: int = 2000, seed: int = 0, chunk: int = 256) -> float:
    """The mean SSIM over distinct pairs of ``images`` (N, 1, S, S): all N (N - 1) / 2 pairs when there are
    at most ``max_pairs``, else ``max_pairs`` of them drawn at random (seeded). Diversity: 1 means all alike."""
    n = len(images)
    if n < 2 or max_pairs < 1:
        raise ValueError(f"pairwise_ssim needs at least 2 images and max_pairs >= 1, got {n} and {max_pairs}")
    if n * (n - 1) // 2 <= max_pairs:
        pairs = torch.triu_indices(n, n, offset=1).T                                  # (P, 2)
    else:
        pairs = random_pairs(n, max_pairs, torch.Generator().manual_seed(seed))      # (max_pairs, 2)
    scores = [ssim(as_float(images[part[:, 0]]), as_float(images[part[:, 1]])) for part in pairs.split(chunk)]
    return float(torch.cat(scores).double().mean())


def intensity_distance(a: torch.Tensor, b: torch.Tensor, threshold: float = BRAIN_THRESHOLD,
                       n_quantiles: int = 1000) -> float:
    """Wasserstein-1 distance between the brain-pixel intensities of two image sets: the mean absolute
    difference of their quantile functions at ``n_quantiles`` levels. 0: the same distribution."""
    a, b = (torch.cat([part[part > threshold] for part in chunks(x)] or [torch.zeros(0)]) for x in (a, b))
    if a.numel() == 0 or b.numel() == 0:
        return float("nan")
    levels = (torch.arange(n_quantiles, dtype=torch.float64) + 0.5) / n_quantiles
    return float((quantiles(a, levels) - quantiles(b, levels)).abs().mean())


def quantiles(values: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Empirical quantiles of a 1-D tensor at ``levels`` in (0, 1) (any size; ``torch.quantile`` has a cap)."""
    ordered = values.double().sort().values
    return ordered[(levels * (len(ordered) - 1)).round().long()]


def critic(widths: tuple[int, int, int] = (16, 32, 48)) -> nn.Module:
    """The two-sample test's classifier: three stride-2 3x3 convolutions (batch norm, ReLU), average pooled to
    4 x 4, one linear logit (about 20k parameters). (B, 1, s, s) -> (B,) logit of "is a sample"."""
    layers, channels = [], 1
    for width in widths:
        layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(channels * 16, 1), nn.Flatten(0))


def fit_critic(x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, lr: float,
               generator: torch.Generator) -> nn.Module:
    """A fresh ``critic`` trained on images ``x`` (B, 1, s, s) with labels ``y`` (B,) in {0, 1}, in eval mode.
    Adam with the learning rate decayed from ``lr`` to 0 along a cosine over all steps: at a constant rate the
    last weights land anywhere, and a fold's accuracy swings with them (RESULTS.md).
    Shuffles come from ``generator``; the initial weights from torch's global generator."""
    model = critic()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batches = [b for _ in range(epochs) for b in torch.randperm(len(x), generator=generator).split(batch_size)
               if len(b) >= 2]                                    # batch norm needs two images
    with torch.enable_grad():
        for step, batch in enumerate(batches):
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / len(batches)))
            loss = F.binary_cross_entropy_with_logits(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def two_sample_accuracies(samples: torch.Tensor, real: torch.Tensor, repeats: int, seed: int = 0,
                          **options) -> list[float]:
    """``two_sample_accuracy`` with seeds ``seed``, ``seed + 1``, ... (``repeats`` of them): a score is the mean of
    several: one critic's score moves a little with its seed."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    return [two_sample_accuracy(samples, real, seed=seed + r, **options) for r in range(repeats)]


def two_sample_accuracy(samples: torch.Tensor, real: torch.Tensor, folds: int = 5, seed: int = 0,
                        image_size: int = 64, epochs: int = CRITIC_EPOCHS, batch_size: int = 16,
                        lr: float = 3e-3) -> float:
    """Classifier two-sample test: can a small CNN (``critic``) tell ``samples`` (label 1) from ``real``
    slices (label 0)? Both (N, 1, S, S), average-pooled to ``image_size``; min(n_samples, n_real) images of
    each (a seeded pick), ``folds``-fold cross-validated -> the mean held-out accuracy over the folds.
    0.5: indistinguishable; 1: always told apart. Deterministic given ``seed``: the shuffles use a local
    generator and the weights are initialised under ``torch.random.fork_rng`` (the global RNG state is left
    as it was). Runs on the CPU: about 15 s for 256 vs 256 at 64 x 64 on 2 threads."""
    m = min(len(samples), len(real))
    if folds < 2 or m < folds:
        raise ValueError(f"two_sample_accuracy needs folds >= 2 and at least `folds` images of each kind, "
                         f"got folds={folds}, {len(samples)} samples and {len(real)} real images")
    generator = torch.Generator().manual_seed(seed)
    size = min(image_size, samples.shape[-1])

    def pick(images: torch.Tensor) -> torch.Tensor:  # m images at random, pooled: (m, size * size)
        return pooled(images[torch.randperm(len(images), generator=generator)[:m]], size)

    x = torch.cat([pick(samples), pick(real)]).view(2 * m, 1, size, size)               # (2m, 1, s, s)
    y = torch.cat([torch.ones(m), torch.zeros(m)])                                      # (2m,)
    accuracies = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for held in torch.arange(m).tensor_split(folds):
            test = torch.zeros(2 * m, dtype=torch.bool)
            test[held], test[held + m] = True, True                                    # the same share of each
            model = fit_critic(x[~test], y[~test], epochs, batch_size, lr, generator)
            with torch.no_grad():
                accuracies.append(float(((model(x[test]) > 0).float() == y[test]).float().mean()))
    return sum(accuracies) / folds


@dataclass
class SampleQuality:
    nn_ssim: torch.Tensor      # (n,) SSIM of each sample to its nearest training slice
    memorised: float           # share of samples with nn_ssim above MEMORISED
    intensity_w1: float        # Wasserstein-1 distance of brain-pixel intensities, samples vs real
    area: torch.Tensor         # (n,) brain fraction of each sample
    real_area: torch.Tensor    # (m,) brain fraction of each real held-out slice

    def summary(self) -> dict:
        return {
            "nn_ssim_mean": float(self.nn_ssim.mean()), "memorised_share": self.memorised,
            "intensity_w1": self.intensity_w1,
            "area_mean": float(self.area.mean()), "area_std": float(self.area.std(correction=0)),
            "real_area_mean": float(self.real_area.mean()),
            "real_area_std": float(self.real_area.std(correction=0)), "n": int(self.area.numel()),
        }


def sample_quality(samples: torch.Tensor, real: torch.Tensor, train: torch.Tensor, *, candidates: int = 8,
                   pool_size: int = 32) -> SampleQuality:
    """Score decoded ``samples`` (n, 1, S, S) against held-out ``real`` slices and the ``train`` slices
    (uint8 or float in [0, 1], the same size S)."""
    nn_ssim = nearest_neighbour_ssim(samples, train, candidates, pool_size)
    return SampleQuality(nn_ssim=nn_ssim, memorised=float((nn_ssim > MEMORISED).float().mean()),
                         intensity_w1=intensity_distance(samples, real), area=brain_area(samples),
                         real_area=brain_area(real))


@dataclass
class SampleReport:
    """Every measure of ``measure`` for one set of images (samples, or real slices for the ceiling)."""
    nn_ssim: torch.Tensor               # (n,) SSIM of each image to its nearest training slice
    nn_index: torch.Tensor              # (n,) long: which training slice that is
    border_tissue: torch.Tensor         # (n,) bool: tissue where real slices never have any (``empty_frame``)
    pairwise_ssim: float | None         # mean SSIM between distinct images; None with fewer than 2
    intensity_w1: float                 # Wasserstein-1 distance of brain-pixel intensities, images vs real
    area: torch.Tensor                  # (n,) brain fraction of each image
    real_area: torch.Tensor             # (m,) brain fraction of each real reference slice
    two_sample_accuracy: float | None = None  # held-out accuracy of a CNN telling images from real; 0.5 is best
    two_sample_runs: list[float] | None = None  # ... the accuracy of each critic seed (the mean is the one above)
    depth_agreement: float | None = None      # share whose nearest training slice has the requested label
    symmetry: torch.Tensor | None = None      # (n,) left-right symmetry of each brain outline (``mirror_symmetry``)

    @property
    def share_realistic(self) -> float:
        return share_above(self.nn_ssim, REALISTIC)

    @property
    def memorised(self) -> float:
        return share_above(self.nn_ssim, MEMORISED)

    def summary(self) -> dict:
        """A flat dict of numbers; the optional measures only when they were computed."""
        numbers = {
            "n": int(self.nn_ssim.numel()), "nn_ssim_mean": float(self.nn_ssim.mean()),
            f"nn_ssim_share_above_{REALISTIC:g}": self.share_realistic, "memorised_share": self.memorised,
            "border_tissue_samples": int(self.border_tissue.sum()), "pairwise_ssim": self.pairwise_ssim,
            "intensity_w1": self.intensity_w1,
            "area_mean": float(self.area.mean()), "area_std": float(self.area.std(correction=0)),
            "real_area_mean": float(self.real_area.mean()), "real_area_std": float(self.real_area.std(correction=0)),
            "two_sample_accuracy": self.two_sample_accuracy, "two_sample_accuracy_runs": self.two_sample_runs,
            "depth_agreement": self.depth_agreement,
            "mirror_symmetry": None if self.symmetry is None else float(self.symmetry.mean()),
        }
        return {name: value for name, value in numbers.items() if value is not None}


def measure(samples: torch.Tensor, real: torch.Tensor, train: torch.Tensor, *, train_labels=None,
            requested_labels=None, two_sample: bool = True, seed: int = 0, candidates: int = 8, pool_size: int = 32,
            max_pairs: int = 2000, critic_repeats: int = CRITIC_REPEATS) -> SampleReport:
    """Every measure of the module docstring for ``samples`` (n, 1, S, S), against held-out ``real`` slices
    (intensities, brain area, the two-sample test) and the ``train`` slices (nearest neighbours, the empty
    frame); uint8 or float in [0, 1], one size S. Depth agreement when ``train_labels`` (N,) and
    ``requested_labels`` (n,) are given; the two-sample test when ``two_sample`` and there are at least 2
    images of each kind (with ``min(5, n, m)`` folds), the mean of ``critic_repeats`` critics (seeds ``seed``,
    ``seed + 1``, ...)."""
    one_size = samples.shape[1:] == real.shape[1:] == train.shape[1:] and samples.dim() == 4
    if not one_size or len(samples) == 0 or len(real) == 0:
        raise ValueError(f"samples, real and train must be (N, 1, S, S) images of one size, N >= 1; got "
                         f"{tuple(samples.shape)}, {tuple(real.shape)} and {tuple(train.shape)}")
    neighbours = nearest_neighbours(samples, train, candidates, pool_size)
    agreement = None
    if train_labels is not None and requested_labels is not None:
        agreement = depth_agreement(neighbours.index, train_labels, requested_labels)
    m = min(len(samples), len(real))
    runs = two_sample_accuracies(samples, real, critic_repeats, folds=min(5, m), seed=seed) if two_sample and m >= 2 \
        else None
    return SampleReport(
        nn_ssim=neighbours.ssim, nn_index=neighbours.index, border_tissue=border_tissue(samples, empty_frame(train)),
        pairwise_ssim=pairwise_ssim(samples, max_pairs, seed) if len(samples) > 1 else None,
        intensity_w1=intensity_distance(samples, real), area=brain_area(samples), real_area=brain_area(real),
        two_sample_accuracy=None if runs is None else sum(runs) / len(runs),
        two_sample_runs=None if runs is None or len(runs) == 1 else runs, depth_agreement=agreement,
        symmetry=mirror_symmetry(samples))


def real_ceiling(real: torch.Tensor, train: torch.Tensor, n: int | None = None, *, train_labels=None,
                 real_labels=None, stand_ins: torch.Tensor | None = None, two_sample: bool = True, seed: int = 0,
                 **options) -> SampleReport:
    """The same measures for real held-out slices, the best samples can do: ``n`` of ``real`` (a seeded pick;
    default half of them) play the samples, scored against the ``train`` slices, with their own labels
    (``real_labels``) as the requested ones; the other held-out slices are the real reference (intensities,
    area, and the two-sample test of real vs other real). ``options``: those of ``measure``.

    ``stand_ins`` (one image per real slice, e.g. their VQ-VAE reconstructions) play the chosen slices instead,
    against the same real reference: with reconstructions, the best a perfect prior can do through this decoder
    (it would draw the real slices' own code maps)."""
    n = len(real) // 2 if n is None else n
    if not 1 <= n < len(real):
        raise ValueError(f"n must lie in [1, {len(real) - 1}] to keep real slices to compare with, got {n}")
    if stand_ins is not None and stand_ins.shape[0] != real.shape[0]:
        raise ValueError(f"stand_ins needs one image per real slice ({len(real)}), got {tuple(stand_ins.shape)}")
    picks = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))
    chosen, rest = picks[:n], picks[n:]
    requested = None if real_labels is None else torch.as_tensor(real_labels)[chosen]
    players = real[chosen] if stand_ins is None else stand_ins[chosen]
    return measure(players, real[rest], train, train_labels=train_labels, requested_labels=requested,
                   two_sample=two_sample, seed=seed, **options)


REPORT_ROWS = (  # (summary key, row title, format) of ``report_table``
    ("nn_ssim_mean", "NN SSIM", "{:.3f}"),
    (f"nn_ssim_share_above_{REALISTIC:g}", f"share above {REALISTIC:g}", "{:.0%}"),
    ("memorised_share", f"memorised (> {MEMORISED:g})", "{:.0%}"),
    ("border_tissue_samples", "border tissue", "{:.0f}"),
    ("pairwise_ssim", "pairwise SSIM", "{:.3f}"),
    ("two_sample_accuracy", "two-sample accuracy", "{:.2f}"),
    ("depth_agreement", "depth agreement", "{:.0%}"),
    ("intensity_w1", "intensity W1", "{:.4f}"),
    ("area_mean", "brain area (share)", "{:.3f}"),
)


def report_table(summaries: dict[str, dict], width: int = 14) -> str:
    """``SampleReport.summary()`` of a few image sets, {column name: summary}, as a text table of ``REPORT_ROWS``
    (a measure a set lacks shows "-")."""
    lines = [f"{'':>20} | " + " | ".join(f"{name:>{width}}" for name in summaries)]
    for key, title, fmt in REPORT_ROWS:
        cells = [fmt.format(s[key]) if s.get(key) is not None else "-" for s in summaries.values()]
        lines.append(f"{title:>20} | " + " | ".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)


class SampleFolder(NamedTuple):
    images: torch.Tensor   # (n, 1, S, S) uint8
    records: list[dict]    # what samples.json says about each image (its label, seed, ...); {} without it
    meta: dict             # the rest of samples.json ({} without it)


def save_samples(folder: str | Path, images: torch.Tensor, records: list[dict], **meta) -> list[Path]:
    """Write each image (n, 1, S, S) float in [0, 1] as its own 8-bit grayscale PNG, ``folder/sample_0000.png``,
    ..., and ``folder/samples.json``: ``meta`` and, under "samples", one record per image (its "file" added),
    e.g. the label it was sampled with, seed, temperature, top_k: what a later scorer needs to know."""
    if len(records) != len(images):
        raise ValueError(f"need one record per image, got {len(records)} records for {len(images)} images")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pixels = images.detach().cpu().float().mul(255).add(0.5).clamp(0, 255).to(torch.uint8)[:, 0]  # (n, S, S)
    files = [folder / f"sample_{i:04d}.png" for i in range(len(images))]
    for path, image in zip(files, pixels):
        Image.fromarray(image.numpy()).save(path)
    listing = [{"file": path.name, **record} for path, record in zip(files, records)]
    (folder / SAMPLES_JSON).write_text(json.dumps({**meta, "samples": listing}, indent=1))
    return files


def load_samples(folder: str | Path) -> SampleFolder:
    """The images of a folder of samples (``save_samples``): the files samples.json lists, in its order, else
    every PNG in name order; square and of one size, read as 8-bit grayscale."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"samples folder {folder} does not exist")
    meta = json.loads((folder / SAMPLES_JSON).read_text()) if (folder / SAMPLES_JSON).is_file() else {}
    listed = meta.pop("samples", None)
    if listed and not all(isinstance(r, dict) and "file" in r for r in listed):
        raise ValueError(f"{folder / SAMPLES_JSON}: every entry of 'samples' must name its 'file'")
    files = [folder / r["file"] for r in listed] if listed else sorted(folder.glob("*.png"))
    records = listed or [{} for _ in files]
    if not files:
        raise ValueError(f"samples folder {folder} holds no PNG images (expected sample_0000.png, ... as "
                         f"written by `python -m vqvae_lib sample --save-dir`)")
    arrays = []
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{folder / SAMPLES_JSON} lists {path.name}, but {path} does not exist")
        with Image.open(path) as image:
            arrays.append(np.asarray(to_grayscale(image)))
    sizes = sorted({array.shape for array in arrays})
    if len(sizes) != 1 or sizes[0][0] != sizes[0][1]:
        raise ValueError(f"the PNGs in samples folder {folder} must be square and of one size, got sizes {sizes}")
    if meta.get("image_size") not in (None, sizes[0][0]):
        raise ValueError(f"{folder / SAMPLES_JSON} says image_size {meta['image_size']}, but the PNGs in {folder} "
                         f"are {sizes[0][0]} x {sizes[0][0]}")
    return SampleFolder(torch.from_numpy(np.stack(arrays))[:, None], records, meta)


def quality_table(results: dict[str, SampleQuality]) -> dict[str, dict]:
    """{name: summary} for a few sample sets, e.g. {"pixelcnn": ..., "independent": ..., "real": ...}."""
    return {name: quality.summary() for name, quality in results.items()}


def compare_priors(vqvae, prior, train_maps, train_images: torch.Tensor, real_images: torch.Tensor, n: int = 16,
                   seed: int = 0, **sample_options) -> dict[str, dict]:
    """The quality table of ``n`` decoded samples of the PixelCNN ``prior`` (labels in the training slices'
    proportions, ``sampling.default_labels``, unless ``sample_options`` gives them), of the independent-codes prior
    fitted on ``train_maps`` (``CodeMaps``) and, as the reference, of ``n`` real held-out slices picked at random
    (seeded; scored against the other held-out slices). ``real_images``: held-out slices, more than ``n``;
    ``train_images``: the training slices the samples are compared with."""
    if prior.config.n_labels and "labels" not in sample_options:
        sample_options["labels"] = default_labels(prior, n)
    pixelcnn = decode(vqvae, sample(prior, n, train_maps.shape, seed=seed, **sample_options))
    independent_codes = IndependentPrior.fit(train_maps.indices, train_maps.codebook_size).sample(n, train_maps.shape,
                                                                                                   seed)
    picks = torch.randperm(len(real_images), generator=torch.Generator().manual_seed(seed))
    return quality_table({
        "pixelcnn": sample_quality(pixelcnn, real_images, train_images),
        "independent": sample_quality(decode(vqvae, independent_codes), real_images, train_images),
        "real": sample_quality(real_images[picks[:n]], real_images[picks[n:]], train_images),
    })
