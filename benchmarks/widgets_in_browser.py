"""The course's five widgets in a real browser: JupyterLab in headless Chromium, driven by Playwright.

    python benchmarks/widgets_in_browser.py               # notebooks 01, 03 and 05, smoke profile
    python benchmarks/widgets_in_browser.py --notebooks 05 --keep-open   # one notebook; leave lab up to look

A developer's check, not part of ``make test``: it needs Playwright (the Python package) and a Chromium, neither
of which the project installs. Playwright's own ``playwright install chromium`` downloads from a CDN; a system
Chromium works as well (on Debian: ``apt-get install chromium``, found at /usr/bin/chromium, or name one with
``--chromium PATH`` / ``$CHROMIUM``). Playwright may live in another environment than the course's:

    python -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    /tmp/pw/bin/python benchmarks/widgets_in_browser.py

JupyterLab itself is the course's: ``.venv/bin/python -m jupyter lab`` (``--python`` or ``$COURSE_PYTHON`` to
choose another). Without Playwright, a browser or JupyterLab the script says so and exits 0 (skipped).

What it does: copies the notebooks to a temporary folder (the package still finds the repository's data/ and
runs/, so the smoke runs already trained are reused, or trained quickly), starts ``jupyter lab --no-browser`` on
a free loopback port with a random token and ``VQVAE_PROFILE=smoke``, opens each notebook, runs all cells, and
for each widget view: checks it rendered (no "Error displaying widget", its controls present), screenshots it
to build/widgets/<notebook>_<Widget>_before.png, moves one control as a person would (a slider key press, a
click, a dropdown choice), waits for the kernel to send back a new picture, and screenshots it again
(..._after.png). Exit code 1 when a cell raised, a widget is missing or shows an error, or a control did not
change the picture; 0 when all passed or the check was skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "widgets"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome",
                       "/usr/bin/google-chrome-stable")
# Chromium on a machine with no network: no background fetches, no sandbox as root, software rendering
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class Widget:
    name: str      # the class in vqvae_lib/widgets.py
    label: str     # text only this widget's controls show: how its view is found in the page
    action: str    # how a person moves one control: "key:<slider description>", "click:<text>",
    #                "select:<dropdown description>", "toggle:<anything>" (the other choice of a ToggleButtons)


NOTEBOOKS = {
    "01": ("01_data.ipynb", [Widget("SliceBrowser", "tissue mask", "key:slice")]),
    "03": ("03_codebook.ipynb", [Widget("CodeExplorer", "or pick", "select:or pick"),
                                 Widget("LatentPainter", "by code", "toggle:mode"),
                                 Widget("CodebookSizeLab", "log scales", "click:log scales")]),
    "05": ("05_sampling.ipynb", [Widget("RasterScanPlayer", "temperature", "key:position")]),
}


def skip(reason: str) -> None:
    print(f"SKIPPED: {reason}")
    sys.exit(0)


def find_chromium(asked: str | None) -> str | None:
    """A Chromium binary: --chromium, $CHROMIUM, a system one, else None (then Playwright's own, if installed)."""
    for path in (asked, os.environ.get("CHROMIUM"), *CHROMIUM_CANDIDATES):
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    return None


def course_python(asked: str | None) -> str | None:
    for path in (asked, os.environ.get("COURSE_PYTHON"), str(ROOT / ".venv" / "bin" / "python"), sys.executable):
        if path and Path(path).is_file():
            probe = subprocess.run([path, "-c", "import jupyterlab, ipywidgets, vqvae_lib"], capture_output=True)
            if probe.returncode == 0:
                return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(python: str, folder: Path, port: int, token: str) -> subprocess.Popen:
    """JupyterLab on loopback, its config, settings and runtime files in ``folder``: nothing of the user's."""
    settings = folder / "lab-settings"
    for plugin, values in {
        # every cell in the DOM (the default windowing leaves far-off cells unrendered)
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        package, name = plugin.rsplit("/", 1)
        (settings / package).mkdir(parents=True, exist_ok=True)
        (settings / package / f"{name}.jupyterlab-settings").write_text(json.dumps(values))
    env = {**os.environ, "VQVAE_PROFILE": "smoke", "JUPYTER_CONFIG_DIR": str(folder / "config"),
           "JUPYTER_RUNTIME_DIR": str(folder / "runtime"), "PYTHONUNBUFFERED": "1"}
    cmd = [python, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={folder / 'notebooks'}", "--LabApp.expose_app_in_browser=True",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={folder / 'workspaces'}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:  # containers and CI machines run as root
        cmd.append("--allow-root")
    log = open(folder / "lab.log", "w")
    return subprocess.Popen(cmd, env=env, cwd=folder / "notebooks", stdout=log, stderr=subprocess.STDOUT)


def wait_for_lab(proc: subprocess.Popen, log: Path, port: int, token: str, timeout: float = 120) -> None:
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"jupyter lab did not answer on port {port} within {timeout:.0f} s")


NOTEBOOK_STATE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.content || !w.sessionContext) return null;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  const prompts = [...w.node.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());
  const counts = w.content.widgets.filter(c => c.model.type === 'code').map(c => c.model.executionCount);
  return {kernel: kernel ? kernel.status : null, prompts, counts,
          errors: [...w.node.querySelectorAll('[data-mime-type="application/vnd.jupyter.error"]')]
                    .map(e => e.innerText.slice(0, 2000))};
}"""


def run_notebook(page, timeout: float) -> dict:
    """Wait for the kernel, run all cells, wait until none is queued or running and the kernel is idle."""
    end = time.time() + timeout
    state = None
    while time.time() < end:
        state = page.evaluate(NOTEBOOK_STATE)
        if state and state["kernel"] == "idle":
            break
        time.sleep(0.5)
    else:
        raise RuntimeError(f"the kernel did not start: {state}")
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    time.sleep(2)
    quiet = 0
    while time.time() < end:
        state = page.evaluate(NOTEBOOK_STATE)
        busy = state["kernel"] != "idle" or any("*" in p for p in state["prompts"])
        quiet = 0 if busy else quiet + 1
        if quiet >= 3:
            return state
        time.sleep(1)
    raise RuntimeError(f"the notebook was still running after {timeout:.0f} s")


def widget_views(page):
    """Each widget view's output, in notebook order (the outputs that hold a jupyter-widgets view)."""
    return page.locator(".jp-OutputArea-output:has(.jupyter-widgets)")


def image_src(view) -> str:
    images = view.locator("img")
    return images.first.get_attribute("src") or "" if images.count() else ""


def move_control(page, view, action: str) -> None:
    kind, text = action.split(":", 1)
    if kind == "key":     # a slider: focus its handle, one step right
        slider = view.locator(".widget-slider", has=page.locator(f"label:text-is('{text}')")).first
        handle = slider.locator(".noUi-handle").first
        handle.click()
        handle.press("ArrowRight")
    elif kind == "click":  # a checkbox, toggle button or one of a row of toggle buttons
        view.get_by_text(text, exact=True).first.click()
    elif kind == "toggle":  # a row of toggle buttons: the first one not chosen now (whatever the notebook chose)
        view.locator(".widget-toggle-buttons button:not(.mod-active)").first.click()
    elif kind == "select":  # a dropdown: the option after the selected one
        select = view.locator(".widget-dropdown", has=page.locator(f"label:text-is('{text}')")).locator("select")
        options = select.locator("option")
        current = select.evaluate("s => s.selectedIndex")
        select.select_option(index=(current + 1) % options.count())
    else:
        raise ValueError(action)


def check_notebook(page, base: str, key: str, timeout: float) -> list[str]:
    """Open one notebook, run it, check and exercise its widgets; return the problems found."""
    filename, expected = NOTEBOOKS[key]
    stem = filename.removesuffix(".ipynb")
    problems: list[str] = []
    start = time.time()
    page.goto(f"{base}/lab/tree/{filename}?reset")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    state = run_notebook(page, timeout)
    unrun = sum(1 for count in state["counts"] if count is None)
    print(f"  {filename}: ran in {time.time() - start:.0f} s; {len(state['counts'])} code cells, {unrun} not run")
    for error in state["errors"]:
        problems.append(f"{filename}: a cell raised:\n{error}")
    if unrun:
        problems.append(f"{filename}: {unrun} code cells did not run")
    time.sleep(2)  # let the widget manager render the views
    page.screenshot(path=str(OUT / f"{stem}_page.png"))
    text = page.locator(".jp-Notebook").inner_text()
    if "Error displaying widget" in text:
        problems.append(f"{filename}: 'Error displaying widget' in the page")
    views = widget_views(page)
    print(f"  {views.count()} widget views in the page")
    for widget in expected:
        view = views.filter(has_text=widget.label).first
        if not view.count():
            problems.append(f"{filename}: no {widget.name} view (no control labelled {widget.label!r})")
            continue
        view.scroll_into_view_if_needed()
        try:
            view.locator("img").first.wait_for(state="visible", timeout=30_000)
        except Exception:  # noqa: BLE001 - reported as a problem below
            pass
        view_text = view.inner_text()
        if "Error displaying widget" in view_text or "Loading widget" in view_text:
            problems.append(f"{filename}: {widget.name} shows {view_text[:200]!r}")
        before = image_src(view)
        if not before:
            problems.append(f"{filename}: {widget.name} shows no picture")
        view.screenshot(path=str(OUT / f"{stem}_{widget.name}_before.png"))
        try:
            move_control(page, view, widget.action)
        except Exception as error:  # noqa: BLE001
            problems.append(f"{filename}: {widget.name}: could not {widget.action}: {error}")
            continue
        changed, t0 = False, time.time()
        while time.time() - t0 < 60:
            if image_src(view) not in ("", before):
                changed = True
                break
            time.sleep(0.25)
        took = time.time() - t0
        time.sleep(0.5)
        view.screenshot(path=str(OUT / f"{stem}_{widget.name}_after.png"))
        if changed:
            print(f"  {widget.name}: rendered; {widget.action} -> new picture in {took:.1f} s")
        else:
            problems.append(f"{filename}: {widget.name}: {widget.action} did not change the picture in 60 s")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", nargs="+", default=list(NOTEBOOKS), choices=list(NOTEBOOKS))
    parser.add_argument("--chromium", help="a Chromium/Chrome binary (default: $CHROMIUM, /usr/bin/chromium, ...)")
    parser.add_argument("--python", help="the course's Python, with jupyterlab (default: $COURSE_PYTHON, .venv)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for one notebook to run (default 600)")
    parser.add_argument("--keep-open", action="store_true", help="leave JupyterLab running at the end")
    args = parser.parse_args()

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip("Playwright is not installed in this Python (pip install playwright; see the docstring)")
    python = course_python(args.python)
    if python is None:
        skip("no Python with jupyterlab, ipywidgets and vqvae_lib (make install, or --python)")
    chromium = find_chromium(args.chromium)

    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    folder = Path(tempfile.mkdtemp(prefix="widgets-in-browser-"))
    (folder / "notebooks").mkdir()
    for key in args.notebooks:
        shutil.copy2(ROOT / "notebooks" / NOTEBOOKS[key][0], folder / "notebooks")
    port, token = free_port(), secrets.token_hex(16)
    start = time.time()
    lab = start_lab(python, folder, port, token)
    problems: list[str] = []
    try:
        wait_for_lab(lab, folder / "lab.log", port, token)
        print(f"JupyterLab on port {port} ({python}); files in {folder}")
        with sync_playwright() as p:
            try:
                browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            except Exception as error:  # noqa: BLE001 - no system Chromium and none of Playwright's
                skip(f"no browser: {str(error).splitlines()[0]} (apt-get install chromium, or --chromium PATH)")
            print(f"browser: {chromium or 'Playwright chromium'} {browser.version}")
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/lab?token={token}")  # sets the login cookie
            page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
            for key in args.notebooks:
                try:
                    problems += check_notebook(page, f"http://127.0.0.1:{port}", key, args.timeout)
                except Exception as error:  # noqa: BLE001 - one broken notebook does not hide the others
                    problems.append(f"{NOTEBOOKS[key][0]}: {type(error).__name__}: {error}")
                    page.screenshot(path=str(OUT / f"{NOTEBOOKS[key][0].removesuffix('.ipynb')}_failed.png"))
            browser.close()
        if args.keep_open:
            print(f"JupyterLab stays up: http://127.0.0.1:{port}/lab?token={token} (pid {lab.pid})")
    finally:
        if not args.keep_open:
            lab.terminate()
            try:
                lab.wait(20)
            except subprocess.TimeoutExpired:
                lab.kill()
            shutil.rmtree(folder, ignore_errors=True)
    shots = sorted(OUT.glob("*.png"))
    print(f"{len(shots)} screenshots in {OUT.relative_to(ROOT)}/; {time.time() - start:.0f} s in all")
    if problems:
        print("FAILED:\n- " + "\n- ".join(problems))
        return 1
    print("OK: every widget rendered and answered a control")
    return 0


if __name__ == "__main__":
    sys.exit(main())
