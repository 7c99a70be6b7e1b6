"""Figures for codebook inspection (see :mod:`vqvae_lib.codebook`); each function returns a Figure.

Small ``_draw_*`` helpers draw into given axes or (sub)figures, so the code explorer can put several
panels into one figure.
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
import torch
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from .codebook import CodebookStats, CodePatch, Neighbours, Projection, pca_2d
from .plotting import _gray

DEAD_COLOUR = "#d62728"
HIGHLIGHT_COLOUR = "#ff7f0e"
CODE_CMAP = "viridis"  # code maps: one continuous colour scale, similar codes in similar colours


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def code_order(codebook: Tensor) -> np.ndarray:
    """(K,) a value in [0, 1] per code: its rank along the codebook's (K, D) first principal direction,
    divided by the number of distinct codes - 1. Codes close along that direction get close values, so a
    code map drawn through a continuous colormap shows similar codes in similar colours; identical codes
    share a value."""
    x = codebook.detach().float().cpu()
    distinct, inverse = torch.unique(x, dim=0, return_inverse=True)  # (U, D), (K,)
    pc1 = pca_2d(x).points[:, 0]  # (K,)
    pc1 = torch.zeros(len(distinct)).scatter_reduce(0, inverse, pc1, "amax", include_self=False)  # (U,)
    rank = pc1.argsort(stable=True).argsort()  # (U,)
    return (rank[inverse].double() / max(len(distinct) - 1, 1)).numpy()


def code_values(indices, codebook_size: int, order=None) -> np.ndarray:
    """A code map (h, w) as values in [0, 1] to draw through CODE_CMAP: ``order`` (K,) of each code (from
    :func:`code_order`), or without it the code id / (K - 1)."""
    order = np.arange(codebook_size) / max(codebook_size - 1, 1) if order is None else _numpy(order)
    return order[_numpy(indices).astype(np.int64)]  # (h, w)


def code_colorbar(fig, image, ax, codebook_size: int, ordered: bool) -> None:
    """The colour scale of a code map drawn from :func:`code_values`."""
    bar = fig.colorbar(image, ax=ax, shrink=0.8, ticks=[0, 1])
    if ordered:
        bar.ax.set_yticklabels(["low", "high"], fontsize=8)
        bar.set_label("colour: code's position along the\ncodebook's first principal direction", fontsize=8)
    else:
        bar.ax.set_yticklabels(["0", str(codebook_size - 1)], fontsize=8)
        bar.set_label("colour: code id", fontsize=8)


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


# ----------------------------------------------------------------------------- usage

def _draw_usage(ax, stats: CodebookStats, order: str = "sorted", highlight: int | None = None,
                log: bool = True) -> None:
    counts = _numpy(stats.counts).astype(np.float64)
    K, percent = len(counts), 100.0 * counts / counts.sum()
    ranks = np.argsort(-counts, kind="stable") if order == "sorted" else np.arange(K)
    ax.stairs(percent[ranks], np.arange(K + 1) - 0.5, fill=True, color="C0")
    dead = _numpy(stats.dead)
    if order == "sorted" and len(dead):
        ax.axvspan(stats.active - 0.5, K - 0.5, color=DEAD_COLOUR, alpha=0.15, lw=0)
        ax.text(K - 0.5, 0.95, f"{len(dead)} dead", color=DEAD_COLOUR, ha="right", va="top",
                transform=ax.get_xaxis_transform(), fontsize=8)
    elif len(dead):
        ax.plot(dead, np.full(len(dead), 0.02), "|", color=DEAD_COLOUR, ms=6, transform=ax.get_xaxis_transform(),
                label=f"dead ({len(dead)})")
        ax.legend(fontsize=7, loc="upper right")
    if highlight is not None:
        x = int(np.nonzero(ranks == highlight)[0][0])
        ax.axvline(x, color=HIGHLIGHT_COLOUR, lw=1.5)
        ax.text(x, 0.85, f" code {highlight}", color=HIGHLIGHT_COLOUR, fontsize=8, transform=ax.get_xaxis_transform())
    if log:
        ax.set_yscale("log")
    ax.set_xlim(-0.5, K - 0.5)
    ax.set(xlabel="codes by usage (rank)" if order == "sorted" else "code id", ylabel="% of positions",
           title=f"usage: perplexity {stats.perplexity:.1f}, {stats.active}/{K} active, "
                 f"{stats.entropy_bits:.2f} of {np.log2(K):.2f} bits")
    ax.title.set_fontsize(9)


def usage_histogram(stats: CodebookStats, order: str = "sorted", highlight: int | None = None, log: bool = True,
                    title: str = "") -> Figure:
    """Share of positions per code, sorted by frequency (dead codes shaded at the end) or by id (dead
    codes ticked in red); ``highlight`` marks one code."""
    fig = Figure(figsize=(6.5, 3), layout="constrained")
    _draw_usage(fig.subplots(), stats, order, highlight, log)
    if title:
        fig.suptitle(title)
    return fig


def usage_by_group(stats: CodebookStats, top: int = 48, title: str = "") -> Figure:
    """Where each of the ``top`` most used codes is used: a heatmap whose column for a code shows the share of its
    uses that fall in each group (rows: slice depth or class), so a code of one depth lights up in its rows and a
    code used everywhere (the background) spreads over all of them; beside it, the perplexity of each group's codes."""
    if stats.by_group is None:
        raise ValueError("these statistics have no groups: pass groups to codebook_stats / stats_from_indices")
    by_group = _numpy(stats.by_group).astype(np.float64)  # (G, K)
    codes = np.argsort(-_numpy(stats.counts), kind="stable")[:top]
    share = 100.0 * by_group[:, codes] / np.maximum(by_group[:, codes].sum(0, keepdims=True), 1)  # (G, top)
    p = by_group / np.maximum(by_group.sum(1, keepdims=True), 1)
    group_perplexity = np.exp2(-(p * np.log2(np.where(p > 0, p, 1))).sum(1))  # (G,)
    G = len(by_group)
    fig = Figure(figsize=(11, 2.2 + 0.22 * G), layout="constrained")
    ax_map, ax_ppl = fig.subplots(1, 2, width_ratios=[4, 1], sharey=True)
    image = ax_map.imshow(share, aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax_map, label="% of the code's uses", location="right", shrink=0.6, pad=0.01)
    step = max(1, len(codes) // 24)
    ax_map.set_xticks(np.arange(0, len(codes), step), [str(c) for c in codes[::step]], fontsize=7, rotation=90)
    ax_map.set_yticks(np.arange(G), stats.group_names, fontsize=7)
    ax_map.set(xlabel=f"the {len(codes)} most used codes (most used first)", ylabel=stats.group_by or "group")
    ax_ppl.barh(np.arange(G), group_perplexity, color="C0")
    ax_ppl.set(xlabel="perplexity", title="perplexity per group")
    fig.suptitle(title or f"where each code is used, by {stats.group_by or 'group'}")
    return fig


# ----------------------------------------------------------------------------- code maps and occurrences

def _draw_code_map(ax, indices, codebook_size: int, title: str = "", order=None) -> None:
    shown = ax.imshow(code_values(indices, codebook_size, order), cmap=CODE_CMAP, vmin=0, vmax=1,
                      interpolation="nearest")
    code_colorbar(ax.get_figure(), shown, ax, codebook_size, order is not None)
    ax.set_title(title, fontsize=9)
    _off(ax)


def code_map(indices, codebook_size: int, image=None, title: str = "", order=None) -> Figure:
    """A slice's code map (h, w), coloured by ``order`` (K,) (:func:`code_order`: similar codes in similar
    colours) or else by code id; with the slice beside it."""
    panels = 1 if image is None else 2
    fig = Figure(figsize=(3.2 * panels, 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, panels))
    if image is not None:
        axes[0].imshow(_gray(image), cmap="gray", vmin=0, vmax=1)
        axes[0].set_title("slice", fontsize=9)
        _off(axes[0])
    idx = _numpy(indices)
    _draw_code_map(axes[-1], idx, codebook_size, f"codes {idx.shape[0]}x{idx.shape[1]}: "
                                                  f"{len(np.unique(idx))} distinct", order)
    if title:
        fig.suptitle(title)
    return fig


def _overlay(ax, image, cells: np.ndarray, colour=HIGHLIGHT_COLOUR, alpha: float = 0.55) -> None:
    """Show ``image`` with the grid cells where ``cells`` (h, w) is true tinted in ``colour``."""
    gray = _gray(image)
    scale = gray.shape[0] // cells.shape[0], gray.shape[1] // cells.shape[1]
    mask = np.kron(cells.astype(np.float32), np.ones(scale, dtype=np.float32))  # (H, W)
    rgba = np.zeros(mask.shape + (4,), dtype=np.float32)
    rgba[..., :3] = to_rgb(colour)
    rgba[..., 3] = alpha * mask
    ax.imshow(gray, cmap="gray", vmin=0, vmax=1)
    ax.imshow(rgba, interpolation="nearest")
    _off(ax)


def _draw_occurrences(fig, images, indices, code: int, titles: Sequence[str] | None = None) -> None:
    axes = np.atleast_1d(fig.subplots(1, max(len(images), 1)))
    for i, ax in enumerate(axes):
        if i >= len(images):
            ax.axis("off")
            ax.text(0.5, 0.5, f"code {code} occurs\nnowhere here", ha="center", va="center", color=DEAD_COLOUR)
            continue
        cells = _numpy(indices[i]) == code
        _overlay(ax, images[i], cells)
        ax.set_title((titles[i] + "\n" if titles else "") + f"{int(cells.sum())} positions", fontsize=8)


def code_occurrences(images, indices, code: int, titles: Sequence[str] | None = None) -> Figure:
    """Slices (n, 1, H, W) with the grid cells of their code maps (n, h, w) holding ``code`` tinted."""
    fig = Figure(figsize=(2.4 * max(len(images), 1), 2.8), layout="constrained")
    _draw_occurrences(fig, images, indices, code, titles)
    fig.suptitle(f"where code {code} occurs")
    return fig


def _tile_steps(patches: list[CodePatch]) -> tuple[int, int, int, int]:
    """Tile height and width (the largest patch), and the steps between tiles: 1 pixel across, a third
    of a tile down (room for a label)."""
    th, tw = max(p.patch.shape[0] for p in patches), max(p.patch.shape[1] for p in patches)
    return th, tw, th + max(1, th // 3), tw + 1


def patch_mosaic(patches: list[CodePatch], ncols: int = 8) -> np.ndarray:
    """The patches tiled in rows of ``ncols`` into one (rows, cols) float array, NaN between tiles;
    patches clipped at an image border are centred in their tile."""
    th, tw, step_y, step_x = _tile_steps(patches)
    nrows = int(np.ceil(len(patches) / ncols))
    mosaic = np.full((nrows * step_y, min(ncols, len(patches)) * step_x - 1), np.nan, np.float32)
    for i, p in enumerate(patches):
        tile = _gray(p.patch).reshape(p.patch.shape)
        top = (i // ncols) * step_y + (th - tile.shape[0]) // 2
        left = (i % ncols) * step_x + (tw - tile.shape[1]) // 2
        mosaic[top:top + tile.shape[0], left:left + tile.shape[1]] = tile
    return mosaic


def _draw_patches(ax, patches: list[CodePatch], ncols: int = 8, distances=None) -> None:
    """All patches in one image (one axes is much faster to draw than one axes per patch)."""
    ax.axis("off")
    if not patches:
        ax.text(0.5, 0.5, "no patches: the code is never used", ha="center", va="center", color=DEAD_COLOUR)
        return
    cmap = matplotlib.colormaps["gray"].with_extremes(bad="white")
    ax.imshow(patch_mosaic(patches, ncols), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    th, tw, step_y, step_x = _tile_steps(patches)
    for i, p in enumerate(patches):
        label = f"#{p.image} ({p.row},{p.col})"
        if distances is not None:
            label += f"\nd={float(distances[p.image, p.row, p.col]):.2g}"   # second line: labels must not overlap
        ax.text((i % ncols) * step_x + tw / 2 - 0.5, (i // ncols) * step_y + th - 0.3, label, fontsize=7,
                ha="center", va="top")


def code_patches_grid(patches: list[CodePatch], code: int, ncols: int = 8, distances=None) -> Figure:
    """The image patches where a code occurs (from :func:`codebook.code_patches`), best matches first.
    Titles give image index and grid position (and the squared distance when ``distances`` is given)."""
    nrows = max(1, int(np.ceil(len(patches) / ncols)))
    fig = Figure(figsize=(1.3 * ncols, 1.45 * nrows + 0.4), layout="constrained")
    _draw_patches(fig.subplots(), patches, ncols, distances)
    fig.suptitle(f"patches under code {code}")
    return fig


# ----------------------------------------------------------------------------- codebook geometry

def _draw_pca(ax, projection: Projection, counts, highlight: int | None = None,
              neighbours: Neighbours | None = None):
    xy, counts = _numpy(projection.points), _numpy(counts)
    alive = counts > 0
    dots = ax.scatter(xy[alive, 0], xy[alive, 1], c=np.log10(counts[alive]), cmap="viridis", s=14, lw=0)
    ax.scatter(xy[~alive, 0], xy[~alive, 1], marker="x", color=DEAD_COLOUR, s=14, lw=1,
               label=f"dead ({int((~alive).sum())})")
    if neighbours is not None and highlight is not None:
        for n in _numpy(neighbours.indices):
            ax.plot(*xy[[highlight, n]].T, color=HIGHLIGHT_COLOUR, lw=0.8, alpha=0.7)
        ax.scatter(*xy[_numpy(neighbours.indices)].T, facecolors="none", edgecolors=HIGHLIGHT_COLOUR, s=60,
                   lw=1.3, label="nearest codes", zorder=6)   # above the star: neighbours often sit right beside it
    if highlight is not None:
        ax.scatter(*xy[highlight], marker="*", s=160, color=HIGHLIGHT_COLOUR, edgecolors="k", lw=0.6, alpha=0.6,
                   label=f"code {highlight}", zorder=5)
    explained = _numpy(projection.explained)
    ax.set(xlabel=f"PC 1 ({100 * explained[0]:.0f}% of variance)",
           ylabel=f"PC 2 ({100 * explained[1]:.0f}%)", title="codebook, first two principal axes")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, loc="best")
    return dots


def codebook_pca(projection: Projection, counts, highlight: int | None = None,
                 neighbours: Neighbours | None = None) -> Figure:
    """The codes on their first two principal axes (:func:`codebook.pca_2d`), coloured by log10 usage;
    dead codes as red crosses; ``highlight`` (a star) joined to its ``neighbours`` in the full space."""
    fig = Figure(figsize=(5, 4), layout="constrained")
    ax = fig.subplots()
    dots = _draw_pca(ax, projection, counts, highlight, neighbours)
    fig.colorbar(dots, ax=ax, label="log10 positions")
    return fig


def code_report(stats: CodebookStats, code: int, projection: Projection, neighbours: Neighbours,
                images, indices, patches: list[CodePatch], titles: Sequence[str] | None = None,
                distances=None) -> Figure:
    """Everything about one code: usage (by id) and the codebook map; the slices where it occurs most
    (``images`` (n, 1, H, W) with code maps ``indices`` (n, h, w)); its ``patches``."""
    count, dead = int(stats.counts[code]), bool(stats.counts[code] == 0)
    fig = Figure(figsize=(11, 9.5), layout="constrained")
    top, middle, bottom = fig.subfigures(3, 1, height_ratios=[1.15, 1, 1.05])
    ax_usage, ax_pca = top.subplots(1, 2, width_ratios=[1.6, 1])
    _draw_usage(ax_usage, stats, order="id", highlight=code)
    top.colorbar(_draw_pca(ax_pca, projection, stats.counts, code, neighbours), ax=ax_pca, label="log10 positions")
    _draw_occurrences(middle, images, indices, code, titles)
    _draw_patches(bottom.subplots(), patches, ncols=8, distances=distances)
    near = ", ".join(f"{int(n)} ({float(d):.3g})" for n, d in zip(neighbours.indices, neighbours.distances))
    status = "DEAD: never used here" if dead else f"{count} positions ({100 * count / stats.counts.sum():.2f}%)"
    fig.suptitle(f"code {code}: {status}\nnearest codes (distance): {near}",
                 color=DEAD_COLOUR if dead else "black", fontsize=10)
    return fig


# ----------------------------------------------------------------------------- editing

def edit_comparison(original, edited, reference=None, edited_indices=None, codebook_size: int | None = None,
                    region: tuple[int, int, int, int] | None = None, title: str = "", order=None) -> Figure:
    """original | (reference: the unedited reconstruction) | edited decode | edited - reference (or
    - original), of the images as shown (clipped to [0, 1]) | the edited code map (coloured by ``order``,
    see :func:`code_map`). ``region`` (top, bottom, left, right) in pixels is outlined on the difference,
    e.g. the decoder's footprint of the edit."""
    panels = [("original", _gray(original))]
    if reference is not None:
        panels.append(("reconstruction", _gray(reference)))
    panels.append(("edited decode", _gray(edited)))
    diff = panels[-1][1] - panels[-2][1]  # of the images as shown (clipped to [0, 1])
    n = len(panels) + 1 + (edited_indices is not None)
    fig = Figure(figsize=(2.7 * n, 3.2), layout="constrained")
    axes = fig.subplots(1, n)
    for ax, (name, image) in zip(axes, panels):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
        _off(ax)
    ax_diff = axes[len(panels)]
    limit = max(float(np.abs(diff).max()), 1e-3)
    shown = ax_diff.imshow(diff, cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.colorbar(shown, ax=ax_diff, shrink=0.8)
    ax_diff.set_title("edited - " + ("reconstruction" if reference is not None else "original"), fontsize=9)
    _off(ax_diff)
    if region is not None:
        top, bottom, left, right = region
        ax_diff.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                                    ec="k", ls="--", lw=1))
    if edited_indices is not None:
        if codebook_size is None:
            raise ValueError("pass codebook_size with edited_indices")
        _draw_code_map(axes[-1], edited_indices, codebook_size, "edited codes", order)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ----------------------------------------------------------------------------- codebook sizes

def _final(history: dict, key: str) -> float:
    values = np.asarray(history[key], dtype=np.float64)
    return float(values[-max(1, len(values) // 10):].mean())  # mean of the last 10% of steps


def codebook_size_comparison(results: dict, histories: dict[str, dict] | None = None, log: bool = True) -> Figure:
    """Runs with different codebooks side by side. ``results``: label -> CodebookStats (usage on
    held-out slices) or a training history (per-batch perplexity / active codes only). Left: usage
    sorted by frequency; middle: perplexity and active codes against K; right (with histories):
    per-batch perplexity during training."""
    histories = dict(histories or {})
    histories.update({k: v for k, v in results.items() if isinstance(v, dict)})
    stats = {k: v for k, v in results.items() if isinstance(v, CodebookStats)}
    n = 2 + bool(histories)
    fig = Figure(figsize=(4.6 * n, 3.4), layout="constrained")
    axes = fig.subplots(1, n)
    for i, (label, s) in enumerate(stats.items()):
        counts = np.sort(_numpy(s.counts))[::-1].astype(np.float64)[:s.active]  # used codes only
        axes[0].plot(np.arange(1, len(counts) + 1), 100 * counts / counts.sum(), color=f"C{i}", label=label)
        axes[0].axvline(s.active, color=f"C{i}", ls=":", lw=1)
    axes[0].set(xlabel="code rank (dotted: number of active codes)", ylabel="% of positions", title="sorted usage")
    if log:
        axes[0].set(xscale="log", yscale="log")
    labels = list(dict.fromkeys(list(stats) + list(histories)))
    x = np.arange(len(labels))
    perp = [stats[k].perplexity if k in stats else _final(histories[k], "perplexity") for k in labels]
    active = [stats[k].active if k in stats else _final(histories[k], "active_codes") for k in labels]
    size = [stats[k].codebook_size if k in stats else np.nan for k in labels]
    axes[1].bar(x - 0.2, size, 0.4, color="none", edgecolor="0.5", ls="--", label="K")
    from_history = [k not in stats for k in labels]
    for bars in (axes[1].bar(x - 0.2, active, 0.4, color="C1", alpha=0.8, label="active codes"),
                 axes[1].bar(x + 0.2, perp, 0.4, color="C0", label="perplexity")):
        for bar, hatched in zip(bars, from_history):
            bar.set_hatch("//" if hatched else None)
    axes[1].set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    hatch_note = " (hatched: last training batches)" if any(from_history) else ""
    axes[1].set(yscale="log" if log else "linear", title="held-out use" + hatch_note)
    if log:
        axes[1].set_ylim(bottom=1)
    axes[1].title.set_fontsize(9)
    axes[1].legend(fontsize=7)
    if histories:
        for label, history in histories.items():
            axes[2].plot(history["step"], history["perplexity"], lw=1, color=f"C{labels.index(label)}", label=label)
        axes[2].set(xlabel="step", ylabel="perplexity (batch)", title="during training")
        axes[2].legend(fontsize=7)
    if stats:
        axes[0].legend(fontsize=7)
    return fig
