"""ipywidgets shells over the plotting functions.

Each widget draws a matplotlib Figure from :mod:`vqvae_lib.plotting` into an
``ipywidgets.Image`` (PNG bytes), so it works the same in Jupyter Lab, the classic
notebook and headless tests: set a control's value and the image changes.
"""
from __future__ import annotations

import ipywidgets as widgets

from . import plotting
from .data import SliceDataset


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
        self.image = widgets.Image(format="png")
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
