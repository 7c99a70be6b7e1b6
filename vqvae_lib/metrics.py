"""Reconstruction and codebook metrics: SSIM / PSNR / MSE per image, code usage, perplexity, bits.

SSIM and PSNR come from torchmetrics (no hand-written SSIM: the constants are easy to get wrong).
SSIM uses the Wang et al. (2004) settings: an 11-tap Gaussian window with sigma 1.5, K1 = 0.01,
K2 = 0.03, data range 1. torchmetrics pads each image by reflection and averages the SSIM map over the
whole image; scikit-image averages only the interior (5 pixels from each side are cropped). Inside the
border both maps agree to rounding, so the two means differ by a few 1e-3 at most (tests/test_metrics.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from .quantizer import perplexity as quantizer_perplexity


def _check_pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    return pred.float().clamp(0.0, 1.0), target.float()


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM of each image, (B, 1, H, W) in [0, 1] -> (B,). ``pred`` is clamped into [0, 1]."""
    pred, target = _check_pair(pred, target)
    return structural_similarity_index_measure(
        pred, target, gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=1.0, reduction="none")


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB of each image, 10 log10(1 / MSE): (B, 1, H, W) in [0, 1] -> (B,). Identical images: inf."""
    pred, target = _check_pair(pred, target)
    return peak_signal_noise_ratio(pred, target, data_range=1.0, dim=(1, 2, 3), reduction="none")


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of each image, (B, 1, H, W) in [0, 1] -> (B,)."""
    pred, target = _check_pair(pred, target)
    return (pred - target).pow(2).mean(dim=(1, 2, 3))


def code_usage(indices: Tensor, codebook_size: int) -> Tensor:
    """How often each code occurs in ``indices`` (any shape, integer): (K,) int64 counts."""
    indices = indices.flatten().long()
    if indices.numel() and (indices.min() < 0 or indices.max() >= codebook_size):
        raise ValueError(f"code indices must lie in [0, {codebook_size}), got "
                         f"[{int(indices.min())}, {int(indices.max())}]")
    return torch.bincount(indices, minlength=codebook_size)


def perplexity(counts: Tensor) -> float:
    """exp(entropy) of a code histogram: the number of equally used codes it is worth.

    Uniform use of k codes gives k; a single code gives 1.
    """
    counts = counts.double().flatten()
    if counts.sum() <= 0:
        raise ValueError("perplexity of an empty histogram: no code was counted")
    return float(quantizer_perplexity(counts))


def bits_per_code(nll_nats):
    """Convert a negative log-likelihood per code from nats to bits (divide by ln 2)."""
    return nll_nats / math.log(2.0)


@dataclass
class ReconstructionEval:
    ssim: Tensor   # (N,) per image
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
            "psnr_mean": float(self.psnr.mean()),
            "mse": float(self.mse.mean()),
            "perplexity": self.perplexity,
            "active_codes": self.active_codes,
            "n_images": int(self.ssim.numel()),
        }


def evaluate_reconstruction(model, images: Tensor, batch_size: int = 64) -> ReconstructionEval:
    """Encode to codes and decode every image (N, 1, S, S) uint8; score each reconstruction.

    Runs in eval mode under ``torch.inference_mode`` on the model's device and restores the
    model's train / eval mode afterwards.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or len(images) == 0:
        raise ValueError(f"expected uint8 images (N, 1, S, S) with N >= 1, got {images.dtype} "
                         f"{tuple(images.shape)}")
    device = next(model.parameters()).device
    codebook_size = model.config.codebook_size
    was_training = model.training
    model.eval()
    scores = {"ssim": [], "psnr": [], "mse": []}
    usage = torch.zeros(codebook_size, dtype=torch.long)
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                x = images[start:start + batch_size].to(device).float() / 255.0  # (B, 1, S, S)
                indices = model.encode_indices(x)                                 # (B, h, w)
                recon = model.decode_indices(indices)                             # (B, 1, S, S)
                for name, fn in (("ssim", ssim), ("psnr", psnr), ("mse", mse)):
                    scores[name].append(fn(recon, x).cpu())
                usage += code_usage(indices, codebook_size).cpu()
    finally:
        model.train(was_training)
    return ReconstructionEval(ssim=torch.cat(scores["ssim"]), psnr=torch.cat(scores["psnr"]),
                             mse=torch.cat(scores["mse"]), usage=usage)
