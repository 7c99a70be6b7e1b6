"""Plotting functions return Figures; widgets build headless and respond to their controls."""
import numpy as np
import torch
from matplotlib.figure import Figure

from vqvae_lib import plotting
from vqvae_lib.data import SliceDataset
from vqvae_lib.widgets import SliceBrowser


def tiny_dataset(with_subjects=True) -> SliceDataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (6, 1, 16, 16), generator=g, dtype=torch.uint8)
    masks = torch.randint(0, 4, (6, 16, 16), generator=g, dtype=torch.uint8)
    kwargs = dict(subjects=["a", "a", "a", "b", "b", "b"], slice_index=torch.tensor([2, 0, 1, 0, 1, 2]))
    if not with_subjects:
        kwargs = dict(labels=torch.tensor([0, 1, 0, 1, 0, 1]), class_names=["x", "y"])
    return SliceDataset(images=images, masks=masks if with_subjects else None, paths=[""] * 6, source="t",
                        layout="oasis" if with_subjects else "imagefolder", split="train", fingerprint="f", **kwargs)


def test_plotting_functions_return_figures():
    ds = tiny_dataset()
    figs = [
        plotting.image_grid(ds.images, titles=[str(i) for i in range(6)], ncols=4),
        plotting.slice_with_mask(ds.images[0], ds.masks[0].numpy()),
        plotting.split_sizes({"train": 6, "test": 2}),
        plotting.intensity_histograms({"train": ds}, by_tissue=ds),
        plotting.transform_steps({"raw": np.zeros((10, 6)), "square": np.zeros((10, 10))}),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    assert len(figs[0].axes) == 8 and [ax.get_title() for ax in figs[0].axes[:6]] == [str(i) for i in range(6)]
    assert not figs[0].axes[7].get_images()                                 # the spare cells stay empty
    assert [p.get_height() for p in figs[2].axes[0].patches] == [6, 2]      # one bar per split, its size
    assert len(figs[1].axes) == 2 and len(plotting.slice_with_mask(ds.images[0]).axes) == 1
    assert plotting.figure_png(figs[0]).startswith(b"\x89PNG")


def test_edge_profiles_say_which_candidate_each_loss_prefers():
    target = [0, 0, 1, 1]
    candidates = {"A": ([0.1, 0.1, 0.9, 0.9], (0.01, 0.3)), "B": ([0, 0.4, 0.6, 1], (0.04, 0.2))}
    fig = plotting.edge_profiles(target, candidates, ["squared error", "l1+grad"])
    assert fig.axes[0].get_title() == "squared error prefers A; l1+grad prefers B"
    assert len(fig.axes[0].get_lines()) == 3                                # the target and two candidates


def test_gray_scales_uint8_and_clips_floats():
    assert plotting._gray(torch.full((1, 2, 2), 255, dtype=torch.uint8)).max() == 1.0
    assert plotting._gray(torch.full((2, 2), 1.2)).max() == 1.0


def test_slice_browser_orders_slices_and_responds():
    browser = SliceBrowser(tiny_dataset())
    assert list(browser.by_subject) == ["a", "b"]
    assert browser.index == 1  # subject a, slice_index 0 is dataset row 1
    first = browser.image.value
    browser.slice.value = 2
    assert browser.index == 0 and browser.image.value != first
    shown = browser.image.value
    browser.subject.value = "b"
    assert browser.index == 5 and browser.image.value != shown
    shown = browser.image.value
    browser.show_mask.value = False
    assert browser.image.value != shown


def test_slice_browser_without_subjects_or_masks():
    browser = SliceBrowser(tiny_dataset(with_subjects=False))
    assert list(browser.by_subject) == ["all"] and browser.show_mask.disabled
    browser.slice.value = 3
    assert browser.index == 3 and "y" in browser.figure().axes[0].get_title()
