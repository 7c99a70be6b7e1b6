"""Build one reveal.js slide deck per notebook into build/site/slides/, from the cells tagged ``slide``.

    python tools/build_slides.py    # make slides runs this; open build/site/slides/02_vqvae.slides.html

The tagged cells are what ``docs/teaching.md``'s 90-minute plan shows: the key figures and the method's equations.
A deck opens with the notebook's title and its "You will learn to" list; then one slide per tagged cell: a figure
cell's images (its code and printed lines left out; a cell without images shows its text) under the title of the
section it belongs to, an equation cell's heading and its displayed equations (the prose stays in the notebook).
Nothing is executed: the outputs are the committed ones.

``jupyter nbconvert --to slides`` renders the decks. Its scripts (reveal.js, require.js, MathJax) are copied next to
them from the npm registry when ``npm`` is on the PATH, so that the decks work offline; without npm they load from
nbconvert's CDNs.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_site import NOTEBOOKS, OUT, ROOT, npm_package  # noqa: E402

SLIDES = OUT / "slides"
TAG = "slide"
EXERCISE = "Write it yourself"
SCRIPTS = {"reveal.js@4.0.2": "reveal.js", "requirejs@2.3.6": "requirejs", "mathjax@3.2.2": "mathjax",
           "jquery@2.2.4": "jquery"}
KEEP = {"reveal.js": ("dist", "plugin"), "requirejs": ("require.js",), "mathjax": ("es5",), "jquery": ("dist",)}
# nbconvert's lab template lays an output out as a table row (prompt, output), which grows to an image's natural width:
# on a slide the output is a block and the image is capped in pixels of the 1280 x 860 deck, keeping its aspect ratio.
# nbconvert's reveal template without its mermaid loader (no deck has a diagram; it would load from a CDN), and
# starting reveal.js with MathJax 3 (the template's start script calls MathJax 2's API on every slide change)
TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
<link rel="icon" href="data:,">
<style>
.reveal .slides section .jp-Cell, .reveal .slides section .jp-OutputArea-output { max-width: 100%; min-width: 0; }
.reveal .slides section .jp-OutputArea-child,
.reveal .slides section .jp-OutputArea-output { display: block; width: 100%; }
.reveal .slides section .jp-OutputPrompt { display: none; }
.reveal .slides section .jp-RenderedImage img {
  max-width: 1180px !important; max-height: 560px; width: auto; height: auto; }
</style>
{%- endblock html_head_css -%}
{% block footer_js %}
<script>
require({waitSeconds: 15}, ["{{ reveal_url_prefix }}/dist/reveal.js", "{{ reveal_url_prefix }}/plugin/notes/notes.js"],
  function (Reveal, RevealNotes) {
    window.Reveal = Reveal;
    Reveal.initialize({controls: true, progress: true, history: true, transition: "{{ reveal_transition }}",
                       slideNumber: "{{ reveal_number }}", plugins: [RevealNotes], width: {{ reveal_width }},
                       height: {{ reveal_height }}});
    Reveal.addEventListener('slidechanged', function () {
      var slide = Reveal.getCurrentSlide();
      if (window.MathJax && MathJax.typesetPromise) { MathJax.typesetPromise([slide]); }
      var tall = [].slice.call(slide.querySelectorAll('section')).concat([slide]).filter(function (s) {
        return s.scrollHeight > document.querySelector('.reveal').clientHeight * 0.95; });
      tall.forEach(function (s) { s.style.height = 'calc(95vh)'; s.style.overflowY = 'scroll'; });
    });
  });
</script>
{% endblock footer_js %}
"""
EQUATION = re.compile(r"\$\$.*?\$\$", re.S)
# MathJax 3 with the inline $...$ the notebooks use (nbconvert's own configuration is for MathJax 2)
MATHJAX_CONFIG = """window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']]}};
(function () {
  var script = document.createElement('script');
  script.src = document.currentScript.src.replace(/[^/]*$/, 'mathjax/es5/tex-chtml.js');
  document.head.appendChild(script);
})();
"""


def heading(source: str) -> str | None:
    """The last heading of a markdown cell (the section what follows it belongs to), or None."""
    titles = [line.lstrip("#").strip() for line in source.splitlines() if line.startswith("#")]
    return titles[-1] if titles else None


def title_slide(source: str) -> str:
    """The notebook's title and its learning objectives."""
    lines = source.splitlines()
    title = next((line for line in lines if line.startswith("# ")), None)
    if title is None:
        raise ValueError(f"a notebook's first cell must hold its title (a '# ' heading), got {source[:80]!r}")
    start = next((i for i, line in enumerate(lines) if "You will learn to" in line), None)
    goals = []
    if start is not None:
        for line in lines[start + 1:]:
            if not line.startswith("*"):
                break
            goals.append(line)
    return "\n".join([title, "", "**You will learn to**", *goals] if goals else [title])


def deck(notebook: dict) -> dict:
    """A notebook of slides: the title slide, then one slide per cell tagged ``slide``."""
    cells = notebook["cells"]
    slides = [_markdown(title_slide("".join(cells[0]["source"])))]
    section = heading("".join(cells[0]["source"]))   # the notebook's title, until its first section
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and heading(source) and not heading(source).startswith(EXERCISE):
            section = heading(source)   # a write-it-yourself exercise is not a section a figure belongs to
        if TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        if cell["cell_type"] == "markdown":
            equations = EQUATION.findall(source)
            slides.append(_markdown("\n\n".join([f"## {heading(source) or section}", *equations])))
        else:
            slides.append(_markdown(f"## {section}"))
            slides.append({"cell_type": "code", "execution_count": None, "source": "",
                           "metadata": {"slideshow": {"slide_type": "-"}, "transient": {"remove_source": True}},
                           "outputs": slide_outputs(cell.get("outputs", []))})
    for cell in slides:
        if cell["cell_type"] == "markdown":
            cell["metadata"]["slideshow"] = {"slide_type": "slide"}
    return {**notebook, "cells": slides}


def slide_outputs(outputs: list[dict]) -> list[dict]:
    """What a figure cell shows on its slide: its images alone when it has any (the printed lines beside them are
    for the notebook), else its text (a table)."""
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    return images or [o for o in outputs if o.get("output_type") != "stream" or o.get("name") != "stderr"]


def _markdown(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def scripts() -> dict:
    """Copy reveal.js, require.js and MathJax next to the decks; the exporter's settings that point to them."""
    found = {name: npm_package(spec) for spec, name in SCRIPTS.items()}
    if any(folder is None for folder in found.values()):
        print("slides: no npm, or a package did not install: the decks load their scripts from CDNs", file=sys.stderr)
        return {}
    lib = SLIDES / "lib"
    for name, folder in found.items():
        for part in KEEP[name]:
            source, target = folder / part, lib / name / part
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    (lib / "mathjax-config.js").write_text(MATHJAX_CONFIG)
    return {"reveal_url_prefix": "lib/reveal.js", "require_js_url": "lib/requirejs/require.js",
            "mathjax_url": "lib/mathjax-config.js", "jquery_url": "lib/jquery/dist/jquery.min.js"}


def build() -> list[Path]:
    from nbconvert.exporters import SlidesExporter
    from traitlets.config import Config

    shutil.rmtree(SLIDES, ignore_errors=True)
    SLIDES.mkdir(parents=True)
    settings = scripts()
    config = Config({"SlidesExporter": {**settings, "reveal_scroll": True, "reveal_theme": "white",
                                        "reveal_width": "1280", "reveal_height": "860",   # room for wide figures
                                        "exclude_input": True, "exclude_input_prompt": True,
                                        "exclude_output_prompt": True}})
    templates = ROOT / "build" / "slides-template"
    templates.mkdir(parents=True, exist_ok=True)
    (templates / "course_slides.html.j2").write_text(TEMPLATE)
    written = []
    for nb in NOTEBOOKS:
        notebook = deck(json.loads(nb.read_text()))
        exporter = SlidesExporter(config=config, extra_template_paths=[str(templates)],
                                  template_file="course_slides.html.j2")
        html, _ = exporter.from_notebook_node(_node(notebook))
        path = SLIDES / f"{nb.stem}.slides.html"
        path.write_text(html)
        written.append(path)
    return written


def _node(notebook: dict):
    """The deck as nbformat reads a file (sources and texts joined, cell ids given)."""
    import nbformat

    node = nbformat.reads(json.dumps(notebook), as_version=4)
    node.nbformat_minor = max(node.nbformat_minor, 5)
    for i, cell in enumerate(node.cells):
        cell.id = f"slide-{i}"
    return node


if __name__ == "__main__":
    for path in build():
        print(f"slides: {path.relative_to(ROOT)}")
