"""The image transforms of benchmarks/critic_cues.py (each removes one cue the two-sample critic could use)."""
import importlib.util
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
spec = importlib.util.spec_from_file_location("critic_cues", ROOT / "benchmarks" / "critic_cues.py")
critic_cues = importlib.util.module_from_spec(spec)
spec.loader.exec_module(critic_cues)


def test_blur_keeps_constant_images_and_the_mean_and_spreads_a_point():
    flat = torch.full((2, 1, 16, 16), 0.3)
    assert torch.allclose(critic_cues.blur(flat, 1.0), flat)
    point = torch.zeros(1, 1, 16, 16)
    point[0, 0, 8, 8] = 1.0
    out = critic_cues.blur(point, 1.0)
    assert out.shape == point.shape and abs(float(out.sum()) - 1) < 1e-5      # no mass lost away from the edges
    assert out[0, 0, 8, 8] < 0.2 and out[0, 0, 8, 9] > 0.05 and out[0, 0, 9, 8] == out[0, 0, 8, 9]
    assert critic_cues.blur(point, 3.0)[0, 0, 8, 8] < out[0, 0, 8, 8]         # wider sigma, flatter peak


def test_intensity_matched_takes_the_reference_histogram_and_keeps_order_and_background():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 1, 8, 8, generator=g) * 0.5                        # 0 .. 0.5: brain above 0.1
    images[:, :, :2] = 0.0                                                    # background
    reference = 0.5 + torch.rand(4, 1, 8, 8, generator=g) * 0.5              # brighter, other spread
    out = critic_cues.intensity_matched(images, reference, threshold=0.1)
    brain = images > 0.1
    assert torch.equal(out[~brain], images[~brain])                           # background untouched
    assert out[brain].min() >= reference.min() and out[brain].max() <= reference.max()
    src, dst = images[brain], out[brain]
    order = src.argsort()
    assert (dst[order].diff() >= 0).all()                                     # a monotone map
    ref = reference[reference > 0.1]
    assert abs(float(dst.median() - ref.median())) < 0.03                     # the reference's quantiles


def test_slice_standardised_moves_each_slice_to_a_reference_slice_of_its_band():
    from vqvae_lib.sample_quality import brain_intensity

    g = torch.Generator().manual_seed(0)
    images = 0.2 + torch.rand(6, 1, 8, 8, generator=g) * 0.6                  # brain everywhere but ...
    images[:, :, :2] = 0.0                                                    # ... the top rows: background
    reference = torch.zeros(4, 1, 8, 8)
    reference[:2, :, 2:] = torch.tensor([0.35, 0.45]).repeat(6, 4)            # band 0: mean 0.4, spread 0.05
    reference[2:, :, 2:] = torch.tensor([0.6, 0.8]).repeat(6, 4)              # band 1: mean 0.7, spread 0.1
    labels, reference_labels = torch.tensor([0, 1, 0, 1, 0, 1]), torch.tensor([0, 0, 1, 1])
    out = critic_cues.slice_standardised(images, labels, reference, reference_labels, threshold=0.1)
    mean, spread = brain_intensity(out[:, 0], out[:, 0] > 0.1)
    assert torch.allclose(mean, torch.where(labels == 0, 0.4, 0.7), atol=1e-5)
    assert torch.allclose(spread, torch.where(labels == 0, 0.05, 0.1), atol=1e-5)
    assert torch.equal(out[:, :, :2], images[:, :, :2])                       # background untouched
    ranks = lambda x: x[0, 0, 2:].flatten().argsort()                          # noqa: E731
    assert torch.equal(ranks(out), ranks(images))                             # brighter stays brighter
    uint8 = critic_cues.slice_standardised((images * 255).to(torch.uint8), labels, reference, reference_labels, 0.1)
    assert torch.allclose(brain_intensity(uint8[:, 0], uint8[:, 0] > 0.1)[0], mean, atol=1e-5)   # uint8 in, floats out
