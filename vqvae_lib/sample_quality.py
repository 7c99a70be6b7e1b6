"""How good are decoded samples? Realism, memorisation, intensities and brain area, against real slices.

- Nearest-neighbour SSIM: the SSIM (``metrics.ssim``, full resolution) of each sample to its most
  similar training slice: high means realistic. Exact SSIM against every training slice costs one SSIM
  per (sample, slice) pair, so we shortlist the ``candidates`` training slices nearest to each sample in
  pixel space (Euclidean, after average pooling to ``pool_size`` x ``pool_size``) and take the best SSIM
  among them. The share of samples above ``MEMORISED`` (0.95) flags possible copies of training slices.
- Intensities: the Wasserstein-1 distance between the intensities of the brain pixels (above
  ``BRAIN_THRESHOLD``) of the samples and of held-out real slices, in intensity units ([0, 1]).
- Brain area: the fraction of pixels above ``BRAIN_THRESHOLD`` per image, mean and std, vs the real ones.

Do the same for samples of the independent-codes prior (``prior.IndependentPrior.sample``) to see what
the PixelCNN adds, and for held-out real slices themselves: the ceiling (``compare_priors`` does all three).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .metrics import ssim
from .prior import IndependentPrior
from .sampling import decode, sample

BRAIN_THRESHOLD = 0.05   # intensity above which a pixel counts as brain (skull-stripped: background ~0)
MEMORISED = 0.95         # nearest-neighbour SSIM above which a sample may be a copy of a training slice


def as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] or float in [0, 1], (N, 1, S, S) -> float32 in [0, 1] on the CPU."""
    images = images.detach().cpu()
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float().clamp(0, 1)


def pooled(images: torch.Tensor, size: int, chunk: int = 512) -> torch.Tensor:
    """(N, 1, S, S) -> (N, size * size): average-pooled and flattened, a chunk at a time."""
    parts = [F.adaptive_avg_pool2d(as_float(images[s:s + chunk]), size).flatten(1)
             for s in range(0, len(images), chunk)]
    return torch.cat(parts)


def nearest_neighbour_ssim(samples: torch.Tensor, train: torch.Tensor, candidates: int = 8,
                           pool_size: int = 32) -> torch.Tensor:
    """(n, 1, S, S) samples, (N, 1, S, S) training slices -> (n,) SSIM to the nearest training slice
    (best among the ``candidates`` nearest in pooled pixel space; see module docstring)."""
    distances = torch.cdist(pooled(samples, pool_size), pooled(train, pool_size))   # (n, N)
    shortlist = distances.topk(min(candidates, len(train)), largest=False).indices  # (n, c)
    n, c = shortlist.shape
    pairs = as_float(train[shortlist.flatten()])                                    # (n * c, 1, S, S)
    scores = ssim(as_float(samples).repeat_interleave(c, dim=0), pairs)              # (n * c,)
    return scores.view(n, c).max(dim=1).values


def brain_area(images: torch.Tensor, threshold: float = BRAIN_THRESHOLD) -> torch.Tensor:
    """(N, 1, S, S) -> (N,) fraction of pixels above ``threshold``."""
    return (as_float(images) > threshold).float().mean(dim=(1, 2, 3))


def intensity_distance(a: torch.Tensor, b: torch.Tensor, threshold: float = BRAIN_THRESHOLD,
                       n_quantiles: int = 1000) -> float:
    """Wasserstein-1 distance between the brain-pixel intensities of two image sets: the mean absolute
    difference of their quantile functions at ``n_quantiles`` levels. 0: the same distribution."""
    a, b = as_float(a), as_float(b)
    a, b = a[a > threshold], b[b > threshold]
    if a.numel() == 0 or b.numel() == 0:
        return float("nan")
    levels = (torch.arange(n_quantiles, dtype=torch.float64) + 0.5) / n_quantiles
    return float((quantiles(a, levels) - quantiles(b, levels)).abs().mean())


def quantiles(values: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Empirical quantiles of a 1-D tensor at ``levels`` in (0, 1) (any size; ``torch.quantile`` has a cap)."""
    ordered = values.double().sort().values
    return ordered[(levels * (len(ordered) - 1)).round().long()]


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


def quality_table(results: dict[str, SampleQuality]) -> dict[str, dict]:
    """{name: summary} for a few sample sets, e.g. {"pixelcnn": ..., "independent": ..., "real": ...}."""
    return {name: quality.summary() for name, quality in results.items()}


def compare_priors(vqvae, prior, train_maps, train_images: torch.Tensor, real_images: torch.Tensor, n: int = 16,
                   seed: int = 0, **sample_options) -> dict[str, dict]:
    """The quality table of ``n`` decoded samples of the PixelCNN ``prior`` (labels cycling through all of
    its labels unless ``sample_options`` gives them), of the independent-codes prior fitted on
    ``train_maps`` (``CodeMaps``) and, as the reference, of ``n`` real held-out slices picked at random
    (seeded; scored against the other held-out slices). ``real_images``: held-out slices, more than ``n``;
    ``train_images``: the training slices the samples are compared with."""
    if prior.config.n_labels and "labels" not in sample_options:
        sample_options["labels"] = torch.arange(n) % prior.config.n_labels
    pixelcnn = decode(vqvae, sample(prior, n, train_maps.shape, seed=seed, **sample_options))
    independent_codes = IndependentPrior.fit(train_maps.indices, train_maps.codebook_size).sample(n, train_maps.shape,
                                                                                                   seed)
    picks = torch.randperm(len(real_images), generator=torch.Generator().manual_seed(seed))
    return quality_table({
        "pixelcnn": sample_quality(pixelcnn, real_images, train_images),
        "independent": sample_quality(decode(vqvae, independent_codes), real_images, train_images),
        "real": sample_quality(real_images[picks[:n]], real_images[picks[n:]], train_images),
    })
