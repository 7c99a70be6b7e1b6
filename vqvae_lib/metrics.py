"""Reconstruction and codebook metrics: SSIM / PSNR / MSE per image, code usage, perplexity, bits.

SSIM and PSNR come from torchmetrics (no hand-written SSIM: the constants are easy to get wrong).
SSIM uses the Wang et al. (2004) settings: an 11-tap Gaussian window with sigma 1.5, K1 = 0.01,
K2 = 0.03, data range 1. torchmetrics pads each image by reflection and averages the SSIM map over the
whole image; scikit-image averages only the interior (5 pixels from each side are cropped). Inside the
border both maps agree to rounding, so the two means differ by a few 1e-3 at most (tests/test_metrics.py).
torchmetrics is imported inside the functions that call it: importing it loads scipy.signal and more (about a
second on 2 CPU cores), which code that scores no image (the quantizer's perplexity, ``sample``) need not pay.

Brain-only SSIM: about half of a skull-stripped slice is black background that any model reconstructs
almost perfectly, which lifts the whole-image mean. ``brain_ssim`` averages torchmetrics' SSIM map
(``return_full_image=True``) over the brain only: the tissue mask (classes > 0) where the data has one,
else the pixels of the original slice above ``BRAIN_THRESHOLD`` (0.05, as ``sample_quality``), grown by
``BRAIN_DILATION`` pixel so the brain's outline counts too. A slice without brain pixels scores NaN and
is left out of the mean.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .utils import evaluating, exact_dtype

BRAIN_THRESHOLD = 0.05  # intensity of the original slice above which a pixel is brain (no tissue mask)
BRAIN_DILATION = 1      # pixels by which that thresholded brain grows (a 3 x 3 max filter)


def _check_pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    return pred.float().clamp(0.0, 1.0), target.float()


def ssim(pred: Tensor, target: Tensor, *, chunk: int = 256) -> Tensor:
    """SSIM of each image, (B, 1, H, W) in [0, 1] -> (B,). ``pred`` is clamped into [0, 1].

    Computed ``chunk`` images at a time, so memory stays bounded however large B is (an expanded view
    of one image against thousands of slices costs ``chunk`` images of work space, not B).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if pred.shape != target.shape or pred.dim() != 4:
        _check_pair(pred, target)  # raises the shape error
    from torchmetrics.functional.image import structural_similarity_index_measure  # here: see the docstring
    scores = [structural_similarity_index_measure(
        *_check_pair(pred[s:s + chunk], target[s:s + chunk]), gaussian_kernel=True, sigma=1.5, kernel_size=11,
        data_range=1.0, reduction="none") for s in range(0, len(pred), chunk)]
    return torch.cat(scores) if scores else pred.new_zeros(0, dtype=torch.float32)


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB of each image, 10 log10(1 / MSE): (B, 1, H, W) in [0, 1] -> (B,). Identical images: inf."""
    pred, target = _check_pair(pred, target)
    from torchmetrics.functional.image import peak_signal_noise_ratio  # here: see the docstring
    return peak_signal_noise_ratio(pred, target, data_range=1.0, dim=(1, 2, 3), reduction="none")


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of each image, (B, 1, H, W) in [0, 1] -> (B,)."""
    pred, target = _check_pair(pred, target)
    return (pred - target).pow(2).mean(dim=(1, 2, 3))


def ssim_with_map(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """One torchmetrics pass, two results: the SSIM of each image (B,) as :func:`ssim` gives it, and the SSIM
    of each pixel (its local window), (B, 1, H, W), for pairs (B, 1, H, W) in [0, 1]."""
    pred, target = _check_pair(pred, target)
    from torchmetrics.functional.image import structural_similarity_index_measure  # here: see the docstring
    return structural_similarity_index_measure(
        pred, target, gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=1.0, reduction="none",
        return_full_image=True)


def ssim_map(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM of each pixel (its local window), (B, 1, H, W) in [0, 1] -> (B, 1, H, W): torchmetrics' full SSIM
    image with the settings of :func:`ssim` (its mean over the pixels is the image's SSIM)."""
    return ssim_with_map(pred, target)[1]                                 # (B, 1, H, W)


def brain_mask(target: Tensor, masks: Tensor | None = None, threshold: float = BRAIN_THRESHOLD,
               dilation: int = BRAIN_DILATION) -> Tensor:
    """Where the brain is, (B, 1, H, W) bool: ``masks`` > 0 when given (tissue classes, (B, H, W) or
    (B, 1, H, W)), else the pixels of ``target`` (the original slices, in [0, 1]) above ``threshold``,
    grown by ``dilation`` pixels."""
    if masks is not None:
        masks = masks[:, None] if masks.dim() == 3 else masks
        if masks.shape[0] != target.shape[0] or masks.shape[-2:] != target.shape[-2:] or masks.shape[1] != 1:
            raise ValueError(f"masks must be (B, H, W) = {(target.shape[0], *target.shape[-2:])} like the "
                             f"images, got {tuple(masks.shape)}")
        return masks.to(target.device) > 0
    brain = (target.float() > threshold).float()                         # (B, 1, H, W)
    if dilation > 0:
        brain = F.max_pool2d(brain, 2 * dilation + 1, stride=1, padding=dilation)
    return brain > 0


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of each image's ``values`` (B, 1, H, W) over its ``mask`` (B, 1, H, W) bool -> (B,); NaN where the
    mask is empty."""
    mask = mask.to(values.dtype)
    total = (values * mask).sum(dim=(1, 2, 3))
    count = mask.sum(dim=(1, 2, 3))
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def brain_ssim(pred: Tensor, target: Tensor, masks: Tensor | None = None) -> Tensor:
    """SSIM over the brain only, (B, 1, H, W) in [0, 1] -> (B,): the SSIM map averaged over
    :func:`brain_mask` (``masks`` > 0, else the thresholded ``target``); NaN for a slice without brain."""
    return masked_mean(ssim_map(pred, target), brain_mask(target, masks))


def code_usage(indices: Tensor, codebook_size: int) -> Tensor:
    """How often each code occurs in ``indices`` (any shape, integer): (K,) int64 counts."""
    indices = indices.flatten().long()
    if indices.numel() and (indices.min() < 0 or indices.max() >= codebook_size):
        raise ValueError(f"code indices must lie in [0, {codebook_size}), got "
                         f"[{int(indices.min())}, {int(indices.max())}]")
    return torch.bincount(indices, minlength=codebook_size)


def histogram_perplexity(counts: Tensor) -> Tensor:
    """exp(entropy) of a code histogram (K,), as a tensor (the quantizer logs it at every training step)."""
    p = counts.float() / counts.sum()
    return torch.exp(-(p * torch.log(p.clamp(min=1e-10))).sum())


def perplexity(counts: Tensor) -> float:
    """exp(entropy) of a code histogram: the number of equally used codes it is worth.

    Uniform use of k codes gives k; a single code gives 1.
    """
    counts = counts.to(exact_dtype(counts.device)).flatten()
    if counts.sum() <= 0:
        raise ValueError("perplexity of an empty histogram: no code was counted")
    return float(histogram_perplexity(counts))


def bits_per_code(nll_nats):
    """Convert a negative log-likelihood per code from nats to bits (divide by ln 2)."""
    return nll_nats / math.log(2.0)


@dataclass
class ReconstructionEval:
    ssim: Tensor   # (N,) per image
    ssim_brain: Tensor  # (N,) per image, over the brain only (NaN for a slice without brain)
    psnr: Tensor   # (N,) per image, dB
    mse: Tensor    # (N,) per image
    usage: Tensor  # (K,) how often each code was chosen over all images

    @property
    def perplexity(self) -> float:
        return perplexity(self.usage)

    @property
    def active_codes(self) -> int:
        return int((self.usage > 0).sum())

    def summary(self) -> dict:
        return {
            "ssim_mean": float(self.ssim.mean()),
            "ssim_brain_mean": float(self.ssim_brain.nanmean()),
            "psnr_mean": float(self.psnr.mean()),
            "mse": float(self.mse.mean()),
            "perplexity": self.perplexity,
            "active_codes": self.active_codes,
            "n_images": int(self.ssim.numel()),
        }


def evaluate_reconstruction(model, images: Tensor, batch_size: int = 64,
                            masks: Tensor | None = None) -> ReconstructionEval:
    """Encode to codes and decode every image (N, 1, S, S) uint8; score each reconstruction.

    ``masks`` (N, S, S), tissue classes (> 0: brain), say where the brain is for the brain-only SSIM;
    without them the brain is the thresholded original slice (see module docstring).
    Runs in eval mode under ``torch.inference_mode`` on the model's device and restores the
    model's train / eval mode afterwards.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or len(images) == 0:
        raise ValueError(f"expected uint8 images (N, 1, S, S) with N >= 1, got {images.dtype} "
                         f"{tuple(images.shape)}")
    if masks is not None and (len(masks) != len(images) or masks.shape[-2:] != images.shape[-2:]):
        raise ValueError(f"masks must be (N, S, S) = {(len(images), *images.shape[-2:])} like the images, "
                         f"got {tuple(masks.shape)}")
    device = next(model.parameters()).device
    codebook_size = model.config.codebook_size
    scores = {"ssim": [], "ssim_brain": [], "psnr": [], "mse": []}
    usage = torch.zeros(codebook_size, dtype=torch.long)
    with evaluating(model):
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                x = images[start:start + batch_size].to(device).float() / 255.0  # (B, 1, S, S)
                indices = model.encode_indices(x)                                 # (B, h, w)
                recon = model.decode_indices(indices)                             # (B, 1, S, S)
                for name, fn in (("psnr", psnr), ("mse", mse)):
                    scores[name].append(fn(recon, x).cpu())
                whole, per_pixel = ssim_with_map(recon, x)                          # (B,), (B, 1, S, S)
                batch_masks = None if masks is None else masks[start:start + batch_size]  # (B, S, S)
                scores["ssim"].append(whole.cpu())
                scores["ssim_brain"].append(masked_mean(per_pixel, brain_mask(x, batch_masks)).cpu())
                usage += code_usage(indices, codebook_size).cpu()
    return ReconstructionEval(ssim=torch.cat(scores["ssim"]), ssim_brain=torch.cat(scores["ssim_brain"]),
                             psnr=torch.cat(scores["psnr"]), mse=torch.cat(scores["mse"]), usage=usage)


def reconstruction_validator(images: Tensor, batch_size: int = 64) -> Callable[[nn.Module], dict]:
    """A ``validate`` callback for ``fit``: SSIM, PSNR and code use on held-out uint8 images."""
    def validate(model: nn.Module) -> dict:
        summary = evaluate_reconstruction(model, images, batch_size).summary()
        return {name: summary[name] for name in ("ssim_mean", "psnr_mean", "perplexity", "active_codes")}
    return validate
