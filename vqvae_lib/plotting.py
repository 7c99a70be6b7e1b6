"""Plotting functions: each returns a matplotlib Figure (widgets and notebooks only display them).

Figures are made with ``matplotlib.figure.Figure`` rather than pyplot, so a notebook shows each
once and nothing accumulates in pyplot's global state.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from .config import profile_name
from .data import TISSUE_NAMES, SliceDataset
from .utils import figures_dir, project_root, run_commit

TISSUE_COLOURS = ListedColormap([(0, 0, 0, 0), (0.2, 0.5, 1.0, 0.45), (1.0, 0.55, 0.1, 0.45), (0.2, 0.9, 0.3, 0.45)])


def _gray(x) -> np.ndarray:
    """(1, H, W) or (H, W) tensor / array, uint8 or float -> (H, W) float array in [0, 1]."""
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    scale = 255.0 if array.dtype == np.uint8 else 1.0
    return np.clip(array.squeeze().astype(np.float32) / scale, 0.0, 1.0)


FIGURE_PROFILES = ("class", "benchmark")   # the only makers of the committed figures/


def figure_folder(profile: str | None = None) -> Path:
    """Where a figure made in ``profile`` goes: figures/ for the class profile and the benchmarks (what the
    README shows and git tracks), figures/full/ for the full profile, build/figures/ (git-ignored) for smoke
    runs, so ``make test`` never overwrites a committed figure."""
    name = profile if profile == "benchmark" else profile_name(profile)
    if name in FIGURE_PROFILES:
        return figures_dir()
    folder = figures_dir() / "full" if name == "full" else project_root() / "build" / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def figure_metadata(profile: str | None = None) -> dict[str, str]:
    """PNG text chunks saying which profile and which commit made a figure (tests/test_figures.py reads them)."""
    name = profile if profile == "benchmark" else profile_name(profile)
    return {"Software": "vqvae_lib", "vqvae_lib.profile": name, "vqvae_lib.commit": run_commit()}


def save_figure(fig: Figure, name: str, profile: str | None = None, dpi: int = 110) -> str:
    """Save ``fig`` as ``name`` (.png added) in the profile's folder (``figure_folder``), its profile and commit
    in the PNG's metadata; return the path. ``profile``: a profile name, "benchmark", or None for
    ``$VQVAE_PROFILE`` (else class)."""
    path = figure_folder(profile) / (name if name.endswith(".png") else f"{name}.png")
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white", metadata=figure_metadata(profile))
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


# ----------------------------------------------------------------------------- training and reconstruction

def _smooth(values: Sequence[float], window: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(np.pad(values, (window - 1, 0), mode="edge"), kernel, mode="valid")


def training_curves(history: dict, codebook_size: int | None = None, title: str = "") -> Figure:
    """Loss (log scale), codebook perplexity / active codes, and validation SSIM against steps."""
    steps = np.asarray(history["step"])
    window = max(1, len(steps) // 50)
    fig = Figure(figsize=(13, 3.3), layout="constrained")
    ax_loss, ax_codes, ax_ssim = fig.subplots(1, 3)
    ax_loss.plot(steps, history["loss"], color="0.8", lw=0.8, label="loss (per step)")
    ax_loss.plot(steps, _smooth(history["loss"], window), color="C0", label="loss (smoothed)")
    if "recon" in history:
        ax_loss.plot(steps, _smooth(history["recon"], window), color="C1", label="reconstruction term")
    ax_loss.set(yscale="log", xlabel="step", title="training loss")
    ax_loss.legend(fontsize=8)
    if "perplexity" in history:
        ax_codes.plot(steps, _smooth(history["perplexity"], window), label="perplexity (batch)")
        ax_codes.plot(steps, _smooth(history["active_codes"], window), label="active codes (batch)")
    if codebook_size:
        ax_codes.axhline(codebook_size, color="0.5", ls="--", lw=1, label=f"K = {codebook_size}")
    ax_codes.set(xlabel="step", title="codebook use")
    ax_codes.legend(fontsize=8)
    if history.get("val_step"):
        ax_ssim.plot(history["val_step"], history["val_ssim_mean"], "o-", color="C2")
        ax_ssim.set(xlabel="step", ylabel="mean SSIM", title="validation SSIM")
    if title:
        fig.suptitle(title)
    return fig


def reconstruction_grid(originals, reconstructions, n: int = 6, titles: Sequence[str] | None = None) -> Figure:
    """Rows: original, reconstruction, absolute error (hot colour map, 0..0.25)."""
    n = min(n, len(originals))
    fig = Figure(figsize=(2.0 * n, 6.4), layout="constrained")
    axes = fig.subplots(3, n, squeeze=False)
    for j in range(n):
        x, y = _gray(originals[j]), _gray(reconstructions[j])
        axes[0, j].imshow(x, cmap="gray", vmin=0, vmax=1)
        axes[1, j].imshow(y, cmap="gray", vmin=0, vmax=1)
        err = axes[2, j].imshow(np.abs(x - y), cmap="hot", vmin=0, vmax=0.25)
        if titles is not None:
            axes[0, j].set_title(titles[j], fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for row, label in enumerate(("original", "reconstruction", "|error|")):
        axes[row, 0].set_ylabel(label)
    fig.colorbar(err, ax=axes[2, :].tolist(), shrink=0.8, label="absolute error")
    return fig


def score_histogram(values, label: str = "SSIM", title: str = "") -> Figure:
    values = np.asarray(values, dtype=np.float64)
    fig = Figure(figsize=(5, 3), layout="constrained")
    ax = fig.subplots()
    ax.hist(values, bins=40, color="C2", alpha=0.8)
    ax.axvline(values.mean(), color="k", ls="--", lw=1, label=f"mean {values.mean():.4f}")
    ax.set(xlabel=label, ylabel="slices", title=title or f"{label} per held-out slice")
    ax.legend(fontsize=8)
    return fig


def score_by_group(groups, values, label: str = "SSIM", group_name: str = "slice index") -> Figure:
    """Mean and spread of a per-image score in each group (e.g. slice depth)."""
    groups, values = np.asarray(groups), np.asarray(values, dtype=np.float64)
    keys = np.unique(groups)
    means = np.array([values[groups == k].mean() for k in keys])
    lows = np.array([np.percentile(values[groups == k], 10) for k in keys])
    highs = np.array([np.percentile(values[groups == k], 90) for k in keys])
    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.subplots()
    ax.fill_between(keys, lows, highs, alpha=0.25, color="C0", label="10th-90th percentile")
    ax.plot(keys, means, "o-", color="C0", ms=3, label="mean")
    ax.set(xlabel=group_name, ylabel=label, title=f"{label} by {group_name}")
    ax.legend(fontsize=8)
    return fig


def edge_profiles(target, candidates: dict[str, tuple], loss_names: Sequence[str]) -> Figure:
    """One row of pixels across an edge: the ``target`` (n,) and each candidate reconstruction, ``candidates`` =
    {name: (row (n,), losses)} with ``losses`` one value per name in ``loss_names``; below the plot, which candidate
    each loss prefers (the lowest value)."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(target))
    ax.step(x, np.asarray(target, dtype=float), where="mid", color="black", ls="--", lw=1.5, label="target")
    for k, (name, (row, losses)) in enumerate(candidates.items()):
        scores = ", ".join(f"{loss} {value:.3f}" for loss, value in zip(loss_names, losses))
        ax.step(x, np.asarray(row, dtype=float), where="mid", lw=2.2, color=f"C{k}", label=f"{name}: {scores}")
    ax.set(xlabel="pixel", ylabel="intensity", ylim=(-0.05, 1.1))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2))   # below the plot: no line hidden
    names = list(candidates)
    prefers = [f"{loss} prefers {names[int(np.argmin([candidates[n][1][i] for n in names]))]}"
               for i, loss in enumerate(loss_names)]
    ax.set_title("; ".join(prefers), fontsize=9)
    return fig


def compare_runs(histories: dict[str, dict], metric: str = "active_codes", ylabel: str = "active codes (batch)",
                 reference: float | None = None, reference_label: str | None = None) -> Figure:
    """One metric of several training runs against steps (e.g. EMA vs plain codebook)."""
    fig = Figure(figsize=(6, 3.2), layout="constrained")
    ax = fig.subplots()
    styles = ("-", "--", ":", "-.")    # runs that coincide stay visible: one line style each
    for k, (name, history) in enumerate(histories.items()):
        window = max(1, len(history["step"]) // 40)
        ax.plot(history["step"], _smooth(history[metric], window), label=name, ls=styles[k % len(styles)],
                lw=2.2 - 0.4 * (k % len(styles)))
    if reference is not None:
        ax.axhline(reference, color="0.5", ls="--", lw=1, label=reference_label or f"reference: {reference:g}")
    ax.set(xlabel="step", ylabel=ylabel)
    ax.legend(fontsize=8)
    return fig
