"""Plotting functions: each returns a matplotlib Figure (widgets and notebooks only display them).

Figures are made with ``matplotlib.figure.Figure`` rather than pyplot, so a notebook shows each
once and nothing accumulates in pyplot's global state.
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from .data import TISSUE_NAMES, SliceDataset
from .utils import figures_dir

TISSUE_COLOURS = ListedColormap([(0, 0, 0, 0), (0.2, 0.5, 1.0, 0.45), (1.0, 0.55, 0.1, 0.45), (0.2, 0.9, 0.3, 0.45)])


def _gray(x) -> np.ndarray:
    """(1, H, W) or (H, W) tensor / array, uint8 or float -> (H, W) float array in [0, 1]."""
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    scale = 255.0 if array.dtype == np.uint8 else 1.0
    return np.clip(array.squeeze().astype(np.float32) / scale, 0.0, 1.0)


def save_figure(fig: Figure, name: str, dpi: int = 110) -> str:
    """Save under figures/ as ``name`` (.png added) and return the path."""
    path = figures_dir() / (name if name.endswith(".png") else f"{name}.png")
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return str(path)


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """The figure as PNG bytes (what the widgets display)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def image_grid(images: Sequence, titles: Sequence[str] | None = None, ncols: int = 8,
               size: float = 1.6, suptitle: str | None = None, cmap: str = "gray") -> Figure:
    """A grid of slices. ``images``: (N, 1, H, W) tensor or a list of (H, W) arrays."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < n:
            ax.imshow(_gray(images[i]), cmap=cmap, vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def slice_with_mask(image, mask=None, title: str = "", show_mask: bool = True) -> Figure:
    """One slice; with its tissue mask overlaid (CSF blue, grey matter orange, white matter green)."""
    panels = 2 if mask is not None and show_mask else 1
    fig = Figure(figsize=(3.2 * panels, 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, panels))
    axes[0].imshow(_gray(image), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(title, fontsize=9)
    if panels == 2:
        axes[1].imshow(_gray(image), cmap="gray", vmin=0, vmax=1)
        axes[1].imshow(np.asarray(mask), cmap=TISSUE_COLOURS, vmin=-0.5, vmax=3.5, interpolation="nearest")
        axes[1].set_title("tissue mask: " + ", ".join(
            f"{name} ({c})" for name, c in zip(TISSUE_NAMES[1:], ("blue", "orange", "green"))), fontsize=7)
    for ax in axes:
        ax.axis("off")
    return fig


def split_sizes(sizes: dict[str, int], title: str = "slices per split") -> Figure:
    fig = Figure(figsize=(4.5, 2.6), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar(list(sizes), list(sizes.values()), color=["#4c72b0", "#dd8452", "#55a868", "#8172b2"][:len(sizes)])
    ax.bar_label(bars)
    ax.set_ylabel("slices")
    ax.set_title(title)
    return fig


def intensity_histograms(datasets: dict[str, SliceDataset], by_tissue: SliceDataset | None = None) -> Figure:
    """Histograms of brain-pixel intensities per split; optionally per tissue class of one split."""
    panels = 2 if by_tissue is not None and by_tissue.masks is not None else 1
    fig = Figure(figsize=(5 * panels, 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, panels))
    bins = np.linspace(0, 1, 52)[1:]
    for name, ds in datasets.items():
        values = ds.images[ds.images > 0].float().numpy() / 255.0
        axes[0].hist(values, bins=bins, density=True, histtype="step", lw=1.5, label=f"{name} ({len(ds)})")
    axes[0].set(title="brain-pixel intensities per split", xlabel="intensity", ylabel="density")
    axes[0].legend(fontsize=8)
    if panels == 2:
        images, masks = by_tissue.images[:, 0], by_tissue.masks
        for cls, colour in zip((1, 2, 3), ("#3380ff", "#ff8c1a", "#33cc4d")):
            values = images[masks == cls].float().numpy() / 255.0
            axes[1].hist(values, bins=bins, density=True, alpha=0.5, color=colour, label=TISSUE_NAMES[cls])
        axes[1].set(title=f"intensity by tissue ({by_tissue.split})", xlabel="intensity")
        axes[1].legend(fontsize=8)
    return fig


def transform_steps(steps: dict[str, np.ndarray]) -> Figure:
    """Show a slice at each preprocessing step (title gives the shape)."""
    fig = Figure(figsize=(3 * len(steps), 3.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(steps)))
    for ax, (name, array) in zip(axes, steps.items()):
        ax.imshow(_gray(array), cmap="gray", vmin=0, vmax=1)
        h, w = np.asarray(array).shape[-2:]
        ax.set_title(f"{name}\n{h}x{w}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig
