import math

import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity
from torch import nn

from vqvae_lib.metrics import (
    ReconstructionEval,
    bits_per_code,
    brain_mask,
    brain_ssim,
    code_usage,
    evaluate_reconstruction,
    mse,
    perplexity,
    psnr,
    ssim,
    ssim_map,
)


def smooth_pair(size: int, noise: float = 0.05, seed: int = 0):
    """A smooth pattern and a noisy copy, (2, 1, size, size) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    target = torch.stack([0.5 + 0.4 * torch.sin(5 * x) * torch.cos(3 * y),
                          0.5 + 0.3 * torch.cos(4 * x + 2 * y)])[:, None]       # (2, 1, S, S)
    pred = (target + noise * torch.randn(target.shape, generator=g)).clamp(0, 1)
    return pred, target


def skimage_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.tensor([
        structural_similarity(t[0].double().numpy(), p[0].double().numpy(), data_range=1.0,
                              gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        for p, t in zip(pred, target)])


def test_ssim_matches_skimage_up_to_border_handling():
    pred, target = smooth_pair(64)
    # torchmetrics reflect-pads by 5 and averages the whole map; scikit-image crops 5 pixels per side.
    # Giving scikit-image the same reflect-padded images makes the two computations identical:
    padded = [F.pad(t, (5, 5, 5, 5), mode="reflect") for t in (pred, target)]
    assert torch.allclose(ssim(pred, target).double(), skimage_ssim(*padded), atol=1e-5)
    # on the raw images only the border pixels differ: a few 1e-3 on a 128 x 128 image
    pred, target = smooth_pair(128)
    assert torch.allclose(ssim(pred, target).double(), skimage_ssim(pred, target), atol=5e-3)


def test_ssim_of_identical_images_is_one_and_noise_lowers_it():
    pred, target = smooth_pair(32, noise=0.2)
    assert torch.allclose(ssim(target, target), torch.ones(2), atol=1e-6)
    assert (ssim(pred, target) < 0.9).all()
    assert ssim(pred, target).shape == (2,)


def test_predictions_are_clamped_into_unit_range():
    pred, target = smooth_pair(32, noise=0.3)
    wild = pred * 3 - 1                                   # values far outside [0, 1]
    for fn in (ssim, psnr, mse):
        assert torch.allclose(fn(wild, target), fn(wild.clamp(0, 1), target))


def test_chunked_ssim_equals_unchunked():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(37, 1, 24, 24, generator=g), torch.rand(37, 1, 24, 24, generator=g)
    whole = ssim(pred, target, chunk=37)
    for chunk in (1, 5, 36, 256):
        assert torch.allclose(ssim(pred, target, chunk=chunk), whole, atol=1e-6, rtol=0)
    one = ssim(target[:1].expand(37, -1, -1, -1), target, chunk=4)        # one image against many
    assert one[0] == pytest.approx(1.0, abs=1e-6) and (one[1:] < 0.5).all()
    assert ssim(pred[:0], target[:0]).shape == (0,)
    with pytest.raises(ValueError, match="chunk"):
        ssim(pred, target, chunk=0)


def brain_slice(size: int = 48):
    """A disc of smooth 'tissue' (intensities 0.2..0.8) on black: image (1, 1, S, S), tissue mask (1, S, S)."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    inside = x ** 2 + y ** 2 < 0.5                                       # about 40 % of the image
    image = torch.where(inside, 0.5 + 0.3 * torch.sin(6 * x) * torch.cos(4 * y), torch.zeros(()))
    return image[None, None], inside.long()[None] * 2                   # class 2: grey matter


def test_brain_ssim_of_a_perfect_reconstruction_is_one():
    image, mask = brain_slice()
    assert brain_ssim(image, image, mask).item() == pytest.approx(1.0, abs=1e-6)
    assert brain_ssim(image, image).item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(ssim_map(image, image).mean(dim=(1, 2, 3)), ssim(image, image))


def test_noise_inside_the_brain_shows_in_brain_ssim_not_in_the_background():
    image, mask = brain_slice()
    g = torch.Generator().manual_seed(0)
    noisy = (image + 0.15 * torch.randn(image.shape, generator=g) * (mask[:, None] > 0)).clamp(0, 1)
    assert torch.equal(noisy[mask[:, None] == 0], image[mask[:, None] == 0])   # background perfect
    whole = ssim(noisy, image).item()
    with_mask = brain_ssim(noisy, image, mask).item()
    by_threshold = brain_ssim(noisy, image).item()
    assert with_mask < whole - 0.15 and by_threshold < whole - 0.15
    assert with_mask == pytest.approx(float(ssim_map(noisy, image)[mask[:, None] > 0].mean()), abs=1e-6)
    assert with_mask < by_threshold < with_mask + 0.1   # the thresholded disc is 1 pixel wider: its rim scores higher


def test_brain_mask_from_masks_or_threshold():
    image, mask = brain_slice()
    inside = mask[:, None] > 0
    assert torch.equal(brain_mask(image, mask), inside)                  # tissue classes > 0, as they are
    grown = brain_mask(image)                                            # intensity > 0.05, grown by 1 pixel
    assert grown[inside].all() and grown.sum() > inside.sum()
    assert torch.equal(grown, F.max_pool2d(inside.float(), 3, stride=1, padding=1) > 0)
    assert not brain_mask(image, dilation=0)[~inside].any()
    with pytest.raises(ValueError, match="masks must be"):
        brain_mask(image, mask[:, :10])
    empty = torch.zeros(1, 1, 16, 16)
    assert torch.isnan(brain_ssim(empty, empty)).all()                   # no brain: NaN, not a perfect score


def test_psnr_is_ten_log10_of_inverse_mse():
    pred, target = smooth_pair(32, noise=0.1)
    expected = 10 * torch.log10(1 / ((pred - target) ** 2).mean(dim=(1, 2, 3)))
    assert torch.allclose(psnr(pred, target), expected, atol=1e-4)
    assert torch.allclose(mse(pred, target), ((pred - target) ** 2).mean(dim=(1, 2, 3)))
    assert torch.isinf(psnr(target, target)).all()


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="one shape"):
        ssim(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 8))


def test_perplexity_of_uniform_and_single_code():
    for k in (1, 2, 7, 512):
        counts = torch.zeros(1024, dtype=torch.long)
        counts[:k] = 5
        assert perplexity(counts) == pytest.approx(k)
    assert perplexity(torch.tensor([0, 0, 9, 0])) == pytest.approx(1.0)
    assert 1 < perplexity(torch.tensor([1, 9])) < 2
    with pytest.raises(ValueError, match="empty"):
        perplexity(torch.zeros(4))


def test_code_usage_counts_and_range():
    counts = code_usage(torch.tensor([[0, 3], [3, 3]]), 5)
    assert counts.tolist() == [1, 0, 0, 3, 0]
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        code_usage(torch.tensor([5]), 5)


def test_bits_per_code():
    assert bits_per_code(math.log(2)) == pytest.approx(1.0)
    assert bits_per_code(math.log(512)) == pytest.approx(9.0)
    assert torch.allclose(bits_per_code(torch.tensor([math.log(4)])), torch.tensor([2.0]))


class LevelCodec(nn.Module):
    """Identity-ish toy 'VQ-VAE': each pixel's code is its intensity rounded to one of K levels."""

    def __init__(self, levels: int):
        super().__init__()
        self.config = type("Config", (), {"codebook_size": levels})()
        self.scale = nn.Parameter(torch.tensor(float(levels - 1)))
        self.seen_modes = []

    def encode_indices(self, x):                         # (B, 1, S, S) -> (B, S, S)
        self.seen_modes.append((self.training, torch.is_inference_mode_enabled()))
        return torch.round(x[:, 0] * self.scale).long()

    def decode_indices(self, idx):                       # (B, S, S) -> (B, 1, S, S)
        return (idx.float() / self.scale)[:, None]


def test_evaluate_reconstruction_on_a_toy_codec():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 1, 16, 16), generator=g, dtype=torch.uint8)
    model = LevelCodec(levels=8).train()
    result = evaluate_reconstruction(model, images, batch_size=4)   # 3 batches, the last one short

    assert isinstance(result, ReconstructionEval)
    assert model.training and model.seen_modes == [(False, True)] * 3
    x = images.float() / 255
    recon = torch.round(x * 7) / 7
    assert torch.allclose(result.mse, ((recon - x) ** 2).mean(dim=(1, 2, 3)), atol=1e-7)
    assert torch.allclose(result.ssim, ssim(recon, x), atol=1e-6)
    assert torch.equal(result.usage, torch.bincount(torch.round(x * 7).long().flatten(), minlength=8))

    summary = result.summary()
    assert list(summary) == ["ssim_mean", "ssim_brain_mean", "psnr_mean", "mse", "perplexity", "active_codes",
                             "n_images"]
    assert torch.allclose(result.ssim_brain, brain_ssim(recon, x), atol=1e-6, equal_nan=True)
    assert summary["n_images"] == 10 and summary["active_codes"] == 8
    assert summary["mse"] == pytest.approx(float(((recon - x) ** 2).mean()), rel=1e-5)
    assert summary["psnr_mean"] == pytest.approx(float(psnr(recon, x).mean()), rel=1e-5)
    assert summary["perplexity"] == pytest.approx(perplexity(result.usage))
    assert all(type(v) is float for k, v in summary.items() if k not in ("active_codes", "n_images"))
    assert type(summary["active_codes"]) is int and type(summary["n_images"]) is int


def test_evaluate_reconstruction_uses_masks_for_brain_ssim():
    image, mask = brain_slice(32)
    images = (image.repeat(3, 1, 1, 1) * 255).round().to(torch.uint8)   # (3, 1, S, S)
    masks = mask.repeat(3, 1, 1)
    masks[:, :, 16:] = 0                                                  # the left half of the brain only
    model = LevelCodec(levels=4)
    with_masks = evaluate_reconstruction(model, images, batch_size=2, masks=masks)
    without = evaluate_reconstruction(model, images, batch_size=2)
    x = images.float() / 255
    recon = torch.round(x * 3) / 3
    assert torch.allclose(with_masks.ssim_brain, brain_ssim(recon, x, masks), atol=1e-6)
    assert torch.allclose(without.ssim_brain, brain_ssim(recon, x), atol=1e-6)
    assert not torch.allclose(with_masks.ssim_brain, without.ssim_brain)
    assert torch.equal(with_masks.ssim, without.ssim)
    assert with_masks.summary()["ssim_brain_mean"] < with_masks.summary()["ssim_mean"]
    with pytest.raises(ValueError, match="masks must be"):
        evaluate_reconstruction(model, images, masks=masks[:2])


def test_evaluate_reconstruction_refuses_float_images():
    with pytest.raises(ValueError, match="uint8"):
        evaluate_reconstruction(LevelCodec(4), torch.rand(2, 1, 8, 8))
