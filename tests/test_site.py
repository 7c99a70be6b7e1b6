"""The course website and slides (tools/build_site.py, tools/build_slides.py): what they take from the committed
notebooks, and that the site builds. The browser check (tools/site_in_browser.py) needs Chromium: make site-check."""
import importlib
import inspect
import json
import sys
from pathlib import Path

import ipywidgets
import pytest

from vqvae_lib import widgets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
build_site = importlib.import_module("build_site")
build_slides = importlib.import_module("build_slides")


def notebooks() -> dict[str, dict]:
    return {nb.stem: json.loads(nb.read_text()) for nb in build_site.NOTEBOOKS}


def test_every_widget_has_a_picture_for_the_site():
    classes = {name for name, obj in inspect.getmembers(widgets, inspect.isclass)
               if issubclass(obj, ipywidgets.Box) and obj.__module__ == widgets.__name__}
    assert classes == set(build_site.WIDGET_FIGURES)
    for figure in build_site.WIDGET_FIGURES.values():
        assert (ROOT / "figures" / figure).is_file(), figure


def test_the_site_shows_each_widget_by_its_picture_and_hides_the_solutions():
    shown = set()
    for name, notebook in notebooks().items():
        page = build_site.site_notebook(notebook, ROOT / "figures")
        for before, after in zip(notebook["cells"], page["cells"]):
            if before.get("metadata", {}).get("jupyter", {}).get("source_hidden"):
                assert "hide-cell" in after["metadata"]["tags"]
            for output in after.get("outputs", []):
                assert build_site.WIDGET_VIEW not in output.get("data", {}), name
            widget = [build_site.widget_class(o) for o in before.get("outputs", []) if build_site.widget_class(o)]
            if widget:
                shown.update(widget)
                assert [o["data"].get("image/png") for o in after["outputs"] if "image/png" in o.get("data", {})]
    assert shown == set(build_site.WIDGET_FIGURES)   # every widget appears in some notebook


def test_a_widget_without_a_picture_is_refused():
    notebook = {"cells": [{"cell_type": "code", "metadata": {}, "source": "w", "outputs": [{
        "output_type": "display_data", "metadata": {},
        "data": {build_site.WIDGET_VIEW: {"model_id": "x"}, "text/plain": "Mystery(children=())"}}]}]}
    with pytest.raises(ValueError, match="Mystery"):
        build_site.site_notebook(notebook, ROOT / "figures")


def test_each_deck_has_its_title_and_a_slide_per_tagged_cell():
    for name, notebook in notebooks().items():
        tagged = [c for c in notebook["cells"] if build_slides.TAG in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) >= 4, name
        deck = build_slides.deck(notebook)
        slides = [c for c in deck["cells"] if c["metadata"].get("slideshow", {}).get("slide_type") == "slide"]
        assert len(slides) == 1 + len(tagged), name
        assert deck["cells"][0]["source"].startswith("# ")
        figures = [c for c in deck["cells"] if c["cell_type"] == "code"]
        assert all(c["outputs"] and c["metadata"]["transient"]["remove_source"] for c in figures), name
        titles = [c["source"] for c in deck["cells"] if c["cell_type"] == "markdown"]
        assert not any(build_slides.EXERCISE in t for t in titles), name   # figures keep their section's title
        for cell in tagged:   # an equation cell brings its equations, not its prose
            if cell["cell_type"] == "markdown":
                assert "$$" in "".join(cell["source"]), (name, cell["source"][:1])


def test_the_site_builds_from_the_committed_notebooks(tmp_path):
    pytest.importorskip("myst_nb")
    index = build_site.build(tmp_path / "src", tmp_path / "site", bundle=False)
    assert index.is_file()
    for nb in build_site.NOTEBOOKS:
        page = (tmp_path / "site" / "notebooks" / f"{nb.stem}.html").read_text()
        assert "<img" in page and "jupyter-widgets" not in page
    for page in build_site.PAGES:
        assert (tmp_path / "site" / page).with_suffix(".html").is_file()
