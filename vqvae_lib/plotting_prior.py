"""Figures for the PixelCNN prior and its samples (notebooks 04 and 05); each returns a Figure."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from .plotting import _gray, _smooth
from .plotting_codebook import CODE_CMAP, code_colorbar, code_values

VEIL = 0.85  # the grey of positions not sampled yet
UNSAMPLED = ListedColormap([(VEIL, VEIL, VEIL, 1.0)])


def receptive_fields(fields: dict[str, torch.Tensor], position: tuple[int, int]) -> Figure:
    """Gradient maps |d logits(position) / d input| of several models side by side. The current
    position is outlined; positions after it in raster order must be zero (white)."""
    fig = Figure(figsize=(3.3 * len(fields) + 0.8, 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(fields)))
    i, j = position
    logs, seen = {}, {}
    for name, field in fields.items():
        field = np.asarray(field, dtype=np.float64)
        seen[name] = field > 1e-12 * max(field.max(), 1e-30)
        logs[name] = np.where(seen[name], np.log10(field + 1e-30), np.nan)  # (h, w), NaN: no influence
    finite = np.concatenate([v[np.isfinite(v)] for v in logs.values()])
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (None, None)  # one scale for all panels
    for ax, name in zip(axes, fields):
        shown = ax.imshow(logs[name], cmap="viridis", vmin=vmin, vmax=vmax)
        ax.add_patch(_square(i, j, "red"))
        ax.set_title(f"{name}\n{int(seen[name].sum())} positions influence ({i}, {j})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=axes, shrink=0.8, label="log10 |d logits / d input|")
    fig.suptitle("where the prediction at the red square looks (log gradient; white: no influence)", fontsize=10)
    return fig


def _square(i: int, j: int, colour: str):
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=colour, lw=1.5)


def prior_curves(history: dict, baselines: dict[str, float], title: str = "") -> Figure:
    """Training and validation bits per code of the PixelCNN against baselines (horizontal lines)."""
    fig = Figure(figsize=(6.5, 3.4), layout="constrained")
    ax = fig.subplots()
    steps = np.asarray(history["step"])
    if "bits_per_code" in history:
        window = max(1, len(steps) // 50)
        ax.plot(steps, history["bits_per_code"], color="0.8", lw=0.7)
        ax.plot(steps, _smooth(history["bits_per_code"], window), color="C0", label="PixelCNN, training batches")
    if history.get("val_step"):
        ax.plot(history["val_step"], history["val_bits_per_code"], "o-", color="C2", label="PixelCNN, validation split")
    for (name, value), colour in zip(baselines.items(), ("C3", "C1", "C4")):
        ax.axhline(value, color=colour, ls="--", lw=1.2, label=f"{name}: {value:.2f}")
    ax.set(xlabel="step", ylabel="bits per code", title=title or "negative log-likelihood")
    ax.legend(fontsize=8)
    return fig


def sample_rows(rows: dict[str, torch.Tensor], size: float = 1.5,
                col_titles: Sequence[str] | None = None) -> Figure:
    """One row of decoded images per setting (e.g. temperatures or slice-depth labels); ``col_titles``
    (one per column, e.g. depth labels or "sample 1", ...) go over the top row."""
    ncols = max(len(v) for v in rows.values())
    if col_titles is not None and len(col_titles) != ncols:
        raise ValueError(f"{len(col_titles)} column titles for {ncols} columns")
    fig = Figure(figsize=(size * ncols + 1.2, size * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(images):
                ax.imshow(_gray(images[c]), cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_ylabel(name, fontsize=9)
    for ax, name in zip(axes[0], col_titles or []):
        ax.set_title(name, fontsize=8)
    return fig


def completions(originals, kept_rows: int, downsample: int, completed: Sequence) -> Figure:
    """Each row: the real slice with the kept part marked, then several completions."""
    n, m = len(originals), len(completed)
    fig = Figure(figsize=(1.7 * (m + 1), 1.8 * n), layout="constrained")
    axes = fig.subplots(n, m + 1, squeeze=False)
    cut = kept_rows * downsample - 0.5
    for r in range(n):
        axes[r, 0].imshow(_gray(originals[r]), cmap="gray", vmin=0, vmax=1)
        axes[r, 0].axhline(cut, color="red", lw=1)
        for c in range(m):
            axes[r, c + 1].imshow(_gray(completed[c][r]), cmap="gray", vmin=0, vmax=1)
            axes[r, c + 1].axhline(cut, color="red", lw=0.8, ls=":")
    axes[0, 0].set_title("real (kept above the line)", fontsize=8)
    for c in range(m):
        axes[0, c + 1].set_title(f"completion {c + 1}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def _sampled(shape: tuple[int, int], position: int) -> np.ndarray:
    """(h, w) bool: the grid cells before ``position`` in raster order (already sampled)."""
    h, w = shape
    return np.arange(h * w).reshape(h, w) < position


def _veiled(image, filled: np.ndarray) -> np.ndarray:
    """The image (H, W) in [0, 1] with the pixels under the grid cells not ``filled`` (h, w) set to VEIL."""
    picture = _gray(image)  # (H, W)
    scale = picture.shape[0] // filled.shape[0], picture.shape[1] // filled.shape[1]
    veil = np.kron(~filled, np.ones(scale)).astype(bool)  # (H, W)
    return np.where(veil, VEIL, picture)


def raster_step(codes: torch.Tensor, position: int, probs: torch.Tensor, chosen: int, image=None,
                codebook_size: int | None = None, top: int = 20, order=None) -> Figure:
    """One step of autoregressive sampling: the code map filled up to ``position`` (raster order), the
    decoded final sample (optional) and the softmax over codes at ``position`` (the ``top`` likeliest).
    The code map is coloured by ``order`` (K,) (:func:`plotting_codebook.code_order`) or else by code id."""
    h, w = codes.shape
    i, j = divmod(position, w)
    filled = _sampled((h, w), position)
    K = codebook_size or (len(order) if order is not None else int(codes.max()) + 1)
    panels = 3 if image is not None else 2
    fig = Figure(figsize=(4.0 * panels + 0.8, 3.6), layout="constrained")
    axes = fig.subplots(1, panels)
    shown = np.where(filled, code_values(codes, K, order), np.nan)  # (h, w)
    axes[0].imshow(np.ones((h, w)), cmap=UNSAMPLED, vmin=0, vmax=1)
    colours = axes[0].imshow(shown, cmap=CODE_CMAP, interpolation="nearest", vmin=0, vmax=1)
    code_colorbar(fig, colours, axes[0], K, order is not None)
    axes[0].add_patch(_square(i, j, "red"))
    axes[0].set_title(f"code map: {position} of {h * w} positions sampled", fontsize=9)
    if image is not None:
        axes[1].imshow(_veiled(image, filled), cmap="gray", vmin=0, vmax=1)
        axes[1].set_title("decoded (grey: not sampled yet)", fontsize=9)
    for ax in axes[:-1]:
        ax.set_xticks([])
        ax.set_yticks([])
    p = probs.double()
    order = p.argsort(descending=True)[:top]
    colours = ["C3" if int(k) == chosen else "C0" for k in order]
    axes[-1].bar(range(len(order)), p[order].numpy(), color=colours)
    axes[-1].set_xticks(range(len(order)), [str(int(k)) for k in order], rotation=90, fontsize=7)
    entropy = float(-(p[p > 0] * p[p > 0].log2()).sum())
    axes[-1].set(ylabel="probability", title=f"softmax at ({i}, {j}): entropy {entropy:.2f} bits; "
                 f"red: the code drawn", xlabel=f"the {len(order)} likeliest codes")
    axes[-1].title.set_fontsize(9)
    return fig


def raster_strip(image, codes_shape: tuple[int, int], positions: Sequence[int], size: float = 2.2,
                 title: str = "") -> Figure:
    """The decoded final sample (1, H, W) veiled in grey where its code map (``codes_shape`` (h, w)) is not
    sampled yet, after each of ``positions`` steps of raster-order sampling: one panel per position."""
    h, w = codes_shape
    if any(not 0 <= p <= h * w for p in positions):
        raise ValueError(f"positions must lie in [0, {h * w}], got {list(positions)}")
    fig = Figure(figsize=(size * len(positions), size + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(positions)))
    for ax, p in zip(axes, positions):
        ax.imshow(_veiled(image, _sampled((h, w), p)), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{p} of {h * w} sampled", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or "raster-scan sampling (grey: not sampled yet)", fontsize=10)
    return fig
