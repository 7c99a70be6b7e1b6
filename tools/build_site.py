"""Build the course website into build/site/: the README as the home page, the five notebooks as committed (nothing
is executed), the teacher's guide, the glossary, the data, command-line and scaling guides, the results and the course
models' README, with Sphinx and myst-nb.

    python tools/build_site.py      # make site runs this; open build/site/index.html

What it changes, in a copy (build/site-src/), never in the repository:
- solution cells (collapsed in Jupyter: ``tools/tidy_notebooks.py``) get the tag ``hide-cell``: behind a toggle;
- a widget's live view needs a kernel, so where a notebook shows one the site shows that widget's first picture
  (the figure the notebook saves of it, ``WIDGET_FIGURES``) with a line saying how to play with it;
- the slide decks of ``make slides`` (build/site/slides/), when built, get a page of links.

MathJax is bundled from the npm registry when ``npm`` is on the PATH, so that the equations render offline;
without npm the pages load it from a CDN.
"""
from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "build" / "site-src"
OUT = ROOT / "build" / "site"
NPM = ROOT / "build" / "npm"        # packages from the npm registry (MathJax, reveal.js), kept between builds
MATHJAX = "mathjax@3.2.2"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PAGES = {"docs/teaching.md": "For teachers", "docs/glossary.md": "For teachers",
         "docs/data.md": "Going further", "docs/cli.md": "Going further", "docs/scaling.md": "Going further",
         "benchmarks/RESULTS.md": "Results", "pretrained/README.md": "Results"}
# the figure each widget's notebook saves of the widget's first view: the site's stand-in for the live widget
WIDGET_FIGURES = {"SliceBrowser": "01_slice_browser.png", "CodeExplorer": "03_code_explorer.png",
                  "LatentPainter": "03_latent_painter.png", "CodebookSizeLab": "03_codebook_sizes.png",
                  "RasterScanPlayer": "05_raster_step.png"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ("The live widget needs a running kernel: open this notebook in Jupyter (`make lab`) and run it to "
               "move its controls. Its first picture:")

CONF = '''
project = "VQ-VAE on brain MRI: a hands-on course"
author = "the vqvae_lib authors"
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_theme_options = {{"show_toc_level": 2, "home_page_in_toc": True}}
html_context = {{"default_mode": "light"}}
html_favicon = "_static/favicon.png"
nb_execution_mode = "off"            # the committed outputs, as executed in the class profile
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]
suppress_warnings = ["myst.xref_missing", "myst.header", "misc.highlighting_failure"]
{mathjax}
'''


def widget_class(output: dict) -> str | None:
    """The widget class of a widget's output (from its plain-text fallback, "SliceBrowser(children=..."), or None."""
    data = output.get("data", {})
    if WIDGET_VIEW not in data:
        return None
    text = "".join(data.get("text/plain", ""))
    return text.split("(", 1)[0].strip() or None


def site_notebook(notebook: dict, figures: Path) -> dict:
    """A copy of ``notebook`` for the site: solution cells behind a toggle, widgets shown by their first picture."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        if cell.get("metadata", {}).get("jupyter", {}).get("source_hidden"):
            tags = cell["metadata"].setdefault("tags", [])
            if "hide-cell" not in tags:
                tags.append("hide-cell")
        outputs = []
        for output in cell.get("outputs", []):
            name = widget_class(output)
            if name is None:
                outputs.append(output)
                continue
            if name not in WIDGET_FIGURES:
                raise ValueError(f"a {name} widget has no picture for the site: add it to WIDGET_FIGURES")
            png = (figures / WIDGET_FIGURES[name]).read_bytes()
            outputs.append({"output_type": "display_data", "metadata": {},
                            "data": {"text/markdown": f"*{name}: {WIDGET_NOTE}*"}})
            outputs.append({"output_type": "display_data", "metadata": {},
                            "data": {"image/png": base64.b64encode(png).decode(),
                                     "text/plain": f"<{name}: first picture>"}})
        cell["outputs"] = outputs
    return notebook


def npm_package(spec: str) -> Path | None:
    """``spec`` (name@version) unpacked under build/npm/ from the npm registry; None without npm or network."""
    name = spec.rsplit("@", 1)[0]
    prefix = NPM / spec.replace("/", "_")   # one prefix per package: npm install --no-save prunes the others
    folder = prefix / "node_modules" / name
    if folder.is_dir():
        return folder
    if shutil.which("npm") is None:
        return None
    prefix.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(prefix), spec],
                          capture_output=True, text=True)
    if done.returncode != 0 or not folder.is_dir():
        print(f"site: npm install {spec} failed ({done.stderr.strip()[-300:]})", file=sys.stderr)
        return None
    return folder


def favicon(figure: Path, out: Path) -> None:
    """The site's icon: the top-left quarter of notebook 05's samples figure (its first samples), 32 x 32."""
    from PIL import Image

    with Image.open(figure) as image:
        side = min(image.size) // 2
        tile = image.convert("L").crop((0, 0, side, side)).resize((32, 32))
    tile.save(out)


def index_page(readme: str, slides: list[Path]) -> str:
    """The README with the site's navigation: a hidden table of contents for the sidebar."""
    groups = {"Notebooks": [f"notebooks/{nb.stem}" for nb in NOTEBOOKS]}
    for page, group in PAGES.items():
        groups.setdefault(group, []).append(page.removesuffix(".md"))
    if slides:
        groups["For teachers"].append("slides")
    toc = "".join(f"\n```{{toctree}}\n:hidden:\n:caption: {caption}\n\n" + "\n".join(entries) + "\n```\n"
                  for caption, entries in groups.items())
    return readme + "\n" + toc


def slides_page(slides: list[Path]) -> str:
    links = "\n".join(f"- [{deck.name.split('.')[0].replace('_', ' ')}](slides/{deck.name})" for deck in slides)
    return ("# Slides\n\nOne reveal.js deck per notebook, built by `make slides` from the cells tagged `slide`: the "
            "figures and equations of the teacher's guide's 90-minute plan (`docs/teaching.md`). Open one, then "
            "use the arrow keys; `f` for full screen.\n\n" + links + "\n")


def build(src: Path = SRC, out: Path = OUT, bundle: bool = True) -> Path:
    """Write the site's sources to ``src`` and build it into ``out``; ``bundle``: MathJax from npm (else a CDN).
    A deck folder ``out/slides`` (``make slides``) survives the rebuild and gets a page."""
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    figures = ROOT / "figures"
    shutil.copytree(figures, src / "figures", ignore=shutil.ignore_patterns("full"))
    for nb in NOTEBOOKS:
        notebook = site_notebook(json.loads(nb.read_text()), figures)
        (src / "notebooks" / nb.name).write_text(json.dumps(notebook, indent=1, ensure_ascii=False))
    for page in PAGES:
        (src / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / page, src / page)
    decks = out / "slides"
    slides = sorted(decks.glob("*.slides.html")) if decks.is_dir() else []
    (src / "index.md").write_text(index_page((ROOT / "README.md").read_text(), slides))
    if slides:
        (src / "slides.md").write_text(slides_page(slides))
    (src / "_static").mkdir()
    favicon(figures / "05_samples.png", src / "_static" / "favicon.png")
    mathjax = npm_package(MATHJAX) if bundle else None
    if mathjax is not None:
        shutil.copytree(mathjax / "es5", src / "_static" / "mathjax")
        setting = 'mathjax_path = "mathjax/tex-chtml.js"   # bundled: the equations render offline'
    else:
        setting = "# MathJax from Sphinx's default CDN"
        if bundle:
            print("site: no npm, or MathJax did not install: the pages load MathJax from a CDN", file=sys.stderr)
    (src / "conf.py").write_text(CONF.format(mathjax=setting))
    saved = None
    if slides:   # make slides' decks survive the rebuild
        saved = src.parent / f"{src.name}-slides"
        shutil.rmtree(saved, ignore_errors=True)
        shutil.copytree(decks, saved)
    shutil.rmtree(out, ignore_errors=True)
    try:
        subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", str(src), str(out)], check=True)
    finally:   # the decks come back also when the build fails
        if saved is not None:
            shutil.copytree(saved, decks, dirs_exist_ok=True)
            shutil.rmtree(saved)
    return out / "index.html"


if __name__ == "__main__":
    print(f"site: {build().relative_to(ROOT)}")
