"""ipywidgets shells over the plotting functions.

Each widget draws a matplotlib Figure from :mod:`vqvae_lib.plotting` into an
``ipywidgets.Image`` (PNG bytes), so it works the same in Jupyter Lab, the classic
notebook and headless tests: set a control's value and the image changes.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from . import codebook, plotting, plotting_codebook, plotting_prior, sampling
from .config import SUPPORTS
from .data import SliceDataset

try:
    import ipywidgets as widgets
except ImportError as err:  # the course's extra, not the library's dependency
    raise ImportError("vqvae_lib.widgets needs ipywidgets: pip install 'vqvae_lib[course]'") from err

PROMPT = -1  # the value of a dropdown's prompt entry (ipywidgets 8 shows value=None as a blank box)
WIDE = {"description_width": "initial"}  # descriptions at their full length, never cut to "temperat..."


def image_widget(width: str) -> widgets.Image:
    """The PNG a widget draws into, at a fixed width (height follows): not stretched to the output's width."""
    return widgets.Image(format="png", layout=widgets.Layout(width=width, height="auto"))


class SliceBrowser(widgets.VBox):
    """Browse a split by subject and slice, with a tissue-mask overlay toggle.

    Sources without subjects (ImageFolder, plain folders) get one slider over all slices.
    """

    def __init__(self, dataset: SliceDataset):
        self.dataset = dataset
        self.by_subject = _slices_by_subject(dataset)
        self.subject = widgets.SelectionSlider(options=list(self.by_subject), description="subject",
                                               continuous_update=False)
        self.slice = widgets.IntSlider(min=0, max=len(self.by_subject[self.subject.value]) - 1,
                                       description="slice", continuous_update=False)
        self.show_mask = widgets.Checkbox(value=dataset.masks is not None, description="tissue mask",
                                          disabled=dataset.masks is None)
        self.image = image_widget("380px")
        for control in (self.subject, self.slice, self.show_mask):
            control.observe(self._update, names="value")
        super().__init__([widgets.HBox([self.subject, self.slice, self.show_mask]), self.image])
        self._update()

    @property
    def index(self) -> int:
        """Index into the dataset of the slice on display."""
        return self.by_subject[self.subject.value][self.slice.value]

    def figure(self):
        ds, i = self.dataset, self.index
        mask = None if ds.masks is None else ds.masks[i].numpy()
        return plotting.slice_with_mask(ds.images[i], mask, title=_title(ds, i), show_mask=self.show_mask.value)

    def _update(self, change=None):
        if change is not None and change["owner"] is self.subject:
            self.slice.max = len(self.by_subject[self.subject.value]) - 1
        self.image.value = plotting.figure_png(self.figure())


def _slices_by_subject(dataset: SliceDataset) -> dict[str, list[int]]:
    if not dataset.subjects:
        return {"all": list(range(len(dataset)))}
    groups: dict[str, list[int]] = {}
    for i, subject in enumerate(dataset.subjects):
        groups.setdefault(subject, []).append(i)
    order = dataset.slice_index
    return {s: sorted(idx, key=lambda i: int(order[i])) for s, idx in sorted(groups.items())}


def _title(ds: SliceDataset, i: int) -> str:
    if ds.subjects:
        return f"subject {ds.subjects[i]}, slice {int(ds.slice_index[i])}"
    if ds.labels is not None:
        return f"{ds.class_names[int(ds.labels[i])]} #{i}"
    return f"slice #{i}"


# ----------------------------------------------------------------------------- codebook inspection

class CodeExplorer(widgets.VBox):
    """Pick a code (slider, or the "most used / dead" list): its usage, the slices where it occurs most
    (tinted), the patches it covers (best matches first) and its nearest codes. The first ``limit``
    slices are encoded once, when the widget is made; an update only searches the stored code maps."""

    def __init__(self, model, data, *, limit: int | None = None, n_slices: int = 4, n_patches: int = 16,
                 margin: int | None = None, n_neighbours: int = 6, batch_size: int = 64):
        self.model, self.data = model, data
        self.images = (data.images if isinstance(data, SliceDataset) else data)[:limit]
        self.downsample, self.margin = model.config.downsample, margin
        self.n_slices, self.n_patches, self.n_neighbours = n_slices, n_patches, n_neighbours
        self.encoded = codebook.encode_with_distances(model, self.images, batch_size)
        self.stats = codebook.stats_from_indices(self.encoded.indices, model.config.codebook_size)
        self.codes = model.quantizer.codebook.detach().float().cpu()  # (K, D)
        self.projection = codebook.pca_2d(self.codes)
        most_used = self.stats.counts.argsort(descending=True, stable=True)
        self.code = widgets.IntSlider(value=int(most_used[0]), min=0, max=self.stats.codebook_size - 1,
                                      description="code", continuous_update=False)
        self.pick = widgets.Dropdown(options=_code_choices(self.stats, most_used), value=PROMPT,
                                     description="or pick")
        self.info = widgets.HTML()
        self.image = image_widget("900px")
        self.code.observe(self._update, names="value")
        self.pick.observe(self._picked, names="value")
        super().__init__([widgets.HBox([self.code, self.pick]), self.info, self.image])
        self._update()

    def slices_with(self, code: int) -> list[int]:
        """Up to n_slices images holding the code most often (most first)."""
        per_image = (self.encoded.indices == code).flatten(1).sum(1)  # (N,)
        order = per_image.argsort(descending=True, stable=True)[:self.n_slices]
        return [int(i) for i in order if per_image[i] > 0]

    def figure(self):
        code, enc = self.code.value, self.encoded
        rows = self.slices_with(code)
        titles = [_title(self.data, i) for i in rows] if isinstance(self.data, SliceDataset) else None
        patches = codebook.code_patches(enc.indices, self.images, code, self.downsample, self.margin,
                                        self.n_patches, enc.distances)
        return plotting_codebook.code_report(
            self.stats, code, self.projection, codebook.nearest_codes(self.codes, code, self.n_neighbours),
            self.images[rows], enc.indices[rows], patches, titles, enc.distances)

    def _picked(self, change):
        if change["new"] != PROMPT:
            self.code.value = change["new"]
            self.pick.value = PROMPT  # back to the prompt, so the same entry can be picked again

    def _update(self, change=None):
        code, count = self.code.value, int(self.stats.counts[self.code.value])
        where = int(((self.encoded.indices == code).flatten(1).sum(1) > 0).sum())
        self.info.value = (f"<b style='color:#d62728'>code {code} is dead: never used on these "
                           f"{len(self.images)} slices</b>" if count == 0 else
                           f"code {code}: {count} positions on {where} of {len(self.images)} slices")
        self.image.value = plotting.figure_png(self.figure())


def _code_choices(stats: codebook.CodebookStats, most_used, n: int = 10) -> list[tuple[str, int]]:
    share = stats.usage
    choices = [("most used / dead codes ...", PROMPT)]
    choices += [(f"{int(c)}: most used #{r + 1} ({100 * float(share[c]):.1f}%)", int(c))
                for r, c in enumerate(most_used[:n]) if stats.counts[c] > 0]
    choices += [(f"{int(c)}: dead", int(c)) for c in stats.dead[:n]]
    return choices


class LatentPainter(widgets.VBox):
    """Edit a slice's code map and decode it: replace one code everywhere, or paint a rectangle of grid
    cells with a code. Shows original | reconstruction | edited decode | difference | edited codes; the
    dashed box on the difference is the decoder's reach (:func:`codebook.decoder_footprint`)."""

    MODES = ("replace code everywhere", "paint region")

    def __init__(self, model, data):
        self.model, self.data = model, data
        self.images = data.images if isinstance(data, SliceDataset) else data
        self.K = model.config.codebook_size
        self.order = plotting_codebook.code_order(model.quantizer.codebook)  # (K,) colours of the code map
        h, w = model.latent_shape(tuple(self.images.shape[-2:]))
        self._cache: dict[int, tuple] = {}  # slice -> (code map, reconstruction)
        self._refreshing = False
        self.slice = widgets.IntSlider(min=0, max=len(self.images) - 1, description="slice",
                                       continuous_update=False)
        self.mode = widgets.ToggleButtons(options=self.MODES, style={"button_width": "auto"})
        self.source = widgets.Dropdown(description="replace")
        self.target = widgets.IntSlider(min=0, max=self.K - 1, description="by code", continuous_update=False)
        self.rows = widgets.IntRangeSlider(value=(h // 2 - 1, h // 2), min=0, max=h - 1, description="rows",
                                           continuous_update=False)
        self.cols = widgets.IntRangeSlider(value=(w // 2 - 1, w // 2), min=0, max=w - 1, description="cols",
                                           continuous_update=False)
        self.image = image_widget("900px")
        self._set_sources()
        for control in (self.slice, self.mode, self.source, self.target, self.rows, self.cols):
            control.observe(self._update, names="value")
        super().__init__([widgets.HBox([self.slice, self.mode]), widgets.HBox([self.source, self.target]),
                          widgets.HBox([self.rows, self.cols]), self.image])
        self._update()

    def encoded(self, i: int) -> tuple:
        """(code map (h, w), reconstruction (1, H, W)) of slice i, computed once."""
        if i not in self._cache:
            indices = codebook.encode_split(self.model, self.images[i:i + 1])[0]
            self._cache[i] = indices, codebook.decode_edit(self.model, indices)[0]
        return self._cache[i]

    def edited_indices(self):
        indices = self.encoded(self.slice.value)[0]
        if self.mode.value == self.MODES[0]:
            return codebook.replace_code(indices, self.source.value, self.target.value)
        (r0, r1), (c0, c1) = self.rows.value, self.cols.value
        return codebook.paint_region(indices, (r0, r1 + 1), (c0, c1 + 1), self.target.value)

    def footprint(self, edited) -> tuple[int, int, int, int] | None:
        """Pixel box that the decoder lets the changed cells reach, clipped to the image."""
        changed = (edited != self.encoded(self.slice.value)[0]).nonzero()
        if len(changed) == 0:
            return None
        top, _, left, _ = codebook.decoder_footprint(self.model, *changed.min(0).values.tolist())
        _, bottom, _, right = codebook.decoder_footprint(self.model, *changed.max(0).values.tolist())
        H, W = self.images.shape[-2:]
        return max(top, 0), min(bottom, H), max(left, 0), min(right, W)

    def figure(self):
        i = self.slice.value
        indices, reconstruction = self.encoded(i)
        edited = self.edited_indices()
        decoded = codebook.decode_edit(self.model, edited)[0]
        n_changed = int((edited != indices).sum())
        return plotting_codebook.edit_comparison(
            self.images[i], decoded, reconstruction, edited, self.K, region=self.footprint(edited), order=self.order,
            title=f"{_title(self.data, i) if isinstance(self.data, SliceDataset) else f'slice #{i}'}: "
                  f"{n_changed} of {edited.numel()} codes changed" + self._hint(n_changed))

    def _hint(self, n_changed: int) -> str:
        """Why nothing changed, when the student can fix it: a code replaced by itself."""
        if n_changed == 0 and self.mode.value == self.MODES[0] and self.source.value == self.target.value:
            return f" (code {self.target.value} replaced by itself: choose another 'by code')"
        return ""

    def _set_sources(self):
        indices = self.encoded(self.slice.value)[0]
        codes, counts = indices.flatten().unique(return_counts=True)
        order = counts.argsort(descending=True, stable=True)
        self.source.options = [(f"{int(codes[j])} ({int(counts[j])}x)", int(codes[j])) for j in order]
        self.source.value = int(codes[order[0]])  # the slice's most common code

    def _update(self, change=None):
        if self._refreshing:
            return
        if change is not None and change["owner"] is self.slice:
            self._refreshing = True  # new options reset the source's value: draw once, below
            try:
                self._set_sources()
            finally:
                self._refreshing = False
        painting = self.mode.value == self.MODES[1]
        self.source.disabled, self.rows.disabled, self.cols.disabled = painting, not painting, not painting
        self.image.value = plotting.figure_png(self.figure())


class CodebookSizeLab(widgets.VBox):
    """Compare runs with different codebooks: ``results`` maps a label to CodebookStats or a training
    history (e.g. from :func:`codebook.codebook_size_runs`); a toggle per run shows or hides it."""

    def __init__(self, results: dict, histories: dict[str, dict] | None = None):
        if not results:
            raise ValueError("CodebookSizeLab needs at least one result")
        self.results, self.histories = dict(results), dict(histories or {})
        self.toggles = {label: widgets.ToggleButton(value=True, description=label, tooltip=label,
                                                    layout={"width": f"{10 * len(label) + 40}px"})
                        for label in self.results}   # each button as wide as its label: no "K=32 res..."
        self.log_scale = widgets.Checkbox(value=True, description="log scales", style=WIDE)
        self.image = image_widget("820px")
        for control in (*self.toggles.values(), self.log_scale):
            control.observe(self._update, names="value")
        super().__init__([widgets.HBox([*self.toggles.values(), self.log_scale]), self.image])
        self._update()

    @property
    def selected(self) -> list[str]:
        return [label for label, toggle in self.toggles.items() if toggle.value]

    def figure(self):
        chosen = self.selected
        if not chosen:
            fig = Figure(figsize=(5, 1))
            fig.text(0.5, 0.5, "switch on at least one run", ha="center", va="center")
            return fig
        return plotting_codebook.codebook_size_comparison(
            {k: self.results[k] for k in chosen}, {k: v for k, v in self.histories.items() if k in chosen},
            log=self.log_scale.value)

    def _update(self, change=None):
        self.image.value = plotting.figure_png(self.figure())


class RasterScanPlayer(widgets.VBox):
    """Play autoregressive sampling position by position: the code map filling in raster order, the
    decoded sample, and the softmax the prior draws from at the current position. Temperature, top-k, the
    support (``sampling.support_for``; for a prior with a saved ``code_support``), seed and (for a conditional
    prior) the label change the sample; each sample is drawn once and kept."""

    def __init__(self, prior, vqvae, *, seed: int = 0, label: int | None = None):
        self.prior, self.vqvae = prior, vqvae
        self.h, self.w = prior.latent_shape
        self.K = prior.config.codebook_size
        self.order = plotting_codebook.code_order(vqvae.quantizer.codebook)  # (K,) colours of the code map
        self._samples: dict[tuple, tuple] = {}
        self.position = widgets.IntSlider(value=self.h * self.w // 2, min=0, max=self.h * self.w - 1,
                                          description="position", continuous_update=False)
        self.play = widgets.Play(value=self.position.value, min=0, max=self.h * self.w - 1,
                                 step=max(1, self.w // 2), interval=400)
        # the slider leads: a link copies its source's value into its target when the browser creates it, so
        # linking from Play (value 0) would reset the position the notebook set; the kernel-side observer keeps
        # Play in step when Python moves the slider
        self.link = widgets.jslink((self.position, "value"), (self.play, "value"))
        self.position.observe(lambda change: setattr(self.play, "value", change["new"]), names="value")
        self.temperature = widgets.FloatSlider(value=1.0, min=0.3, max=1.5, step=0.1, description="temperature",
                                               continuous_update=False, style=WIDE)
        self.top_k = widgets.IntSlider(value=0, min=0, max=min(self.K, 64), description="top-k (0: all)",
                                       continuous_update=False, style={"description_width": "initial"})
        has_support = getattr(prior, "code_support", None) is not None
        self.support = widgets.Dropdown(options=list(SUPPORTS) if has_support else ["none"], value="none",
                                        description="support", disabled=not has_support, layout={"width": "200px"})
        self.seed = widgets.IntText(value=seed, description="seed", layout={"width": "160px"})
        names = list(getattr(prior, "label_names", []) or [])
        self.label = widgets.Dropdown(options=[(n, i) for i, n in enumerate(names)] or [("none", None)],
                                      value=(label if label is not None else 0) if names else None,
                                      description="label", disabled=not names)
        self.image = image_widget("760px")
        for control in (self.position, self.temperature, self.top_k, self.support, self.seed, self.label):
            control.observe(self._update, names="value")
        super().__init__([widgets.HBox([self.play, self.position, self.seed]),
                          widgets.HBox([self.temperature, self.top_k, self.support, self.label]), self.image])
        self._update()

    def settings(self) -> dict:
        return {"temperature": self.temperature.value, "top_k": self.top_k.value or None,
                "labels": self.label.value, "seed": self.seed.value, "support": self.support.value}

    def _sampler_options(self) -> dict:
        """``settings`` as ``sampling.sample`` takes them: the support's name becomes its mask."""
        s = self.settings()
        return {**s, "support": sampling.support_for(self.prior, s["support"])}

    def current_sample(self) -> tuple:
        """(code map (h, w), decoded image (1, H, W)) for the current settings, sampled once."""
        key = tuple(self.settings().values())
        if key not in self._samples:
            codes = sampling.sample(self.prior, 1, **self._sampler_options())
            self._samples[key] = codes[0].cpu(), sampling.decode(self.vqvae, codes)[0].cpu()
        return self._samples[key]

    def figure(self):
        codes, image = self.current_sample()
        p = self.position.value
        i, j = divmod(p, self.w)
        probs = sampling.next_code_distribution(self.prior, codes, (i, j), **{
            k: v for k, v in self._sampler_options().items() if k != "seed"})
        return plotting_prior.raster_step(codes, p, probs, int(codes[i, j]), image, self.K, order=self.order)

    def strip(self, positions: Sequence[int] | None = None) -> Figure:
        """The current sample veiled where not yet sampled, after each of ``positions`` raster steps
        (default: 5 evenly spaced, from none to all h*w)."""
        _, image = self.current_sample()
        if positions is None:
            positions = np.linspace(0, self.h * self.w, 5).round().astype(int).tolist()
        s = self.settings()
        title = (f"raster-scan sampling, temperature {s['temperature']:g}, top-k {s['top_k'] or 'all'}"
                 + ("" if s["support"] == "none" else f", support by {s['support']}") + f", seed {s['seed']}"
                 + ("" if s["labels"] is None else f", label {self.label.label}"))
        return plotting_prior.raster_strip(image, (self.h, self.w), positions, title=title)

    def _update(self, change=None):
        self.image.value = plotting.figure_png(self.figure())
