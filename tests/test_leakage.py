"""Leakage diagnostic: test slices that are copies of training slices are found, unrelated ones are not."""
import pytest
import torch
import torch.nn.functional as F

from vqvae_lib.leakage import leakage_share, nearest_train_ssim


def smooth_slices(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """``n`` independent smooth random images, (n, 1, S, S) uint8: coarse noise, upsampled."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, 6, 6, generator=g)
    return (F.interpolate(coarse, size=size, mode="bicubic", align_corners=True).clamp(0, 1) * 255).to(torch.uint8)


def test_copies_of_training_slices_leak_and_unrelated_slices_do_not():
    train = smooth_slices(40, seed=0)
    copies = train[[3, 17, 25, 39]].clone()
    unrelated = smooth_slices(4, seed=1)
    assert leakage_share(copies, train) == 1.0
    assert leakage_share(unrelated, train) == 0.0
    assert leakage_share(torch.cat([copies, unrelated]), train) == 0.5
    nearest = nearest_train_ssim(torch.cat([copies, unrelated]), train)               # (8,)
    assert torch.allclose(nearest[:4], torch.ones(4), atol=1e-5) and (nearest[4:] < 0.9).all()


def test_chunks_and_float_input_give_the_same_answer():
    train, test = smooth_slices(30, seed=2), smooth_slices(7, seed=3)
    whole = nearest_train_ssim(test, train, chunk=64)
    assert torch.allclose(nearest_train_ssim(test, train, chunk=2), whole)
    assert torch.allclose(nearest_train_ssim(test.float() / 255, train.float() / 255), whole, atol=1e-6)


def test_bad_input_is_named():
    train = smooth_slices(5)
    with pytest.raises(ValueError, match="test_images and train_images"):
        leakage_share(smooth_slices(2, size=16), train)
    with pytest.raises(ValueError, match="N >= 1"):
        leakage_share(train[:0], train)
    with pytest.raises(ValueError, match="chunk"):
        leakage_share(train, train, chunk=0)
