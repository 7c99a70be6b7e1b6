"""The course website in a real browser: every page of build/site/ in headless Chromium, driven by Playwright.

    make site && python tools/site_in_browser.py          # make site-check runs both

Like ``benchmarks/widgets_in_browser.py`` (whose Chromium and Playwright it finds the same way: ``--chromium`` /
``$CHROMIUM`` / a system Chromium / Playwright's own; Playwright may live in another environment, e.g.
``/tmp/pw/bin/python``), and skipped (exit 0) without them. The site is served from a loopback port and every other
request is refused, so a page that needs the network fails here as it would offline.

For every HTML page (the search and index pages aside) and every slide deck of ``make slides`` it fails on: a
console error, a page error, a request that failed or answered 4xx / 5xx, an image that did not load
(``naturalWidth`` 0), a notebook page without figures, a widget left as an empty area (a ``jupyter-widgets``
element, or a widget's stand-in without its picture), or
math left as raw TeX; a deck also when reveal.js does not start. It saves a full-page screenshot of each page to
build/site-screens/<page>.png and one of each slide to build/site-screens/slides/. Exit code 1 on any failure.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from widgets_in_browser import CHROMIUM_ARGS, find_chromium, skip  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "site"
SCREENS = ROOT / "build" / "site-screens"
SKIP_PAGES = {"genindex.html", "search.html"}

PAGE_STATE = """() => ({
  images: [...document.images].map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0})),
  widgets: document.querySelectorAll('.jupyter-widgets, .widget-area').length,
  standIns: [...document.querySelectorAll('.cell_output')].filter(o => o.textContent.includes('needs a running kernel'))
              .map(o => o.querySelectorAll('img').length),
  rawTex: (document.querySelector('article') || document.body).innerText
            .match(/\\$\\$|\\\\begin\\{|\\\\frac\\{/g) || [],
  math: document.querySelectorAll('mjx-container').length,
})"""


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def watch(page) -> list[str]:
    """The list every console error, page error, failed request and 4xx / 5xx answer of ``page`` goes to."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    return problems


def check_page(page, url: str, name: str) -> list[str]:
    problems = watch(page)
    page.goto(url, wait_until="networkidle")
    page.wait_for_timeout(1500)   # MathJax typesets after load
    state = page.evaluate(PAGE_STATE)
    problems += [f"image did not load: {i['src']}" for i in state["images"] if not i["ok"]]
    if name.startswith("notebooks/") and not state["images"]:
        problems.append("a notebook page without figures")
    if state["widgets"]:
        problems.append(f"{state['widgets']} empty widget area(s): a live widget the site cannot run")
    problems += ["a widget's stand-in without its picture" for n in state["standIns"] if n == 0]
    if state["rawTex"]:
        problems.append(f"math left as raw TeX ({len(state['rawTex'])} places), {state['math']} typeset")
    shot = SCREENS / (name.replace("/", "_").removesuffix(".html") + ".png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"{'ok  ' if not problems else 'FAIL'} {name}: {len(state['images'])} images, {state['math']} equations, "
          f"{len(state['standIns'])} widget pictures -> {shot.relative_to(ROOT)}")
    return problems


def check_deck(page, url: str, name: str) -> list[str]:
    """A slide deck: it loads offline, reveal.js starts, and every slide is shown once (a screenshot each); fails
    as a page does, and on a slide whose image did not load, reaches past the slide's edge or whose math stayed raw
    TeX."""
    problems = watch(page)
    page.goto(url, wait_until="networkidle")
    try:
        page.wait_for_function("() => window.Reveal && Reveal.isReady && Reveal.isReady()", timeout=15000)
    except Exception:   # noqa: BLE001  (Playwright's timeout: reveal.js never started)
        return problems + ["reveal.js did not start"]
    count = page.evaluate("() => Reveal.getTotalSlides()")
    stem = name.split("/")[-1].removesuffix(".slides.html")
    for i in range(count):
        page.evaluate(f"() => Reveal.slide({i})")
        page.wait_for_timeout(900)   # the slide transition ends before anything is measured
        state = page.evaluate(SLIDE_STATE)
        problems += [f"slide {i + 1}: image did not load" for ok in state["images"] if not ok]
        problems += [f"slide {i + 1}: an image reaches past the slide's edge" for ok in state["inside"] if not ok]
        if state["rawTex"]:
            problems.append(f"slide {i + 1}: math left as raw TeX")
        page.screenshot(path=str(SCREENS / "slides" / f"{stem}_{i + 1:02d}.png"))
    print(f"{'ok  ' if not problems else 'FAIL'} {name}: {count} slides -> {(SCREENS / 'slides').relative_to(ROOT)}/")
    return problems


SLIDE_STATE = r"""() => {
  const s = Reveal.getCurrentSlide();
  const box = document.querySelector('.reveal').getBoundingClientRect();
  return {images: [...s.querySelectorAll('img')].map(i => i.complete && i.naturalWidth > 0),
          inside: [...s.querySelectorAll('img')].map(i => { const r = i.getBoundingClientRect();
            return r.left >= box.left - 1 && r.right <= box.right + 1 && r.bottom <= box.bottom + 1; }),
          rawTex: (s.innerText.match(/\$\$|\\frac\{|\\begin\{/g) || []).length};
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chromium", help="a Chromium binary (default: $CHROMIUM, then a system one)")
    args = parser.parse_args()
    if not (SITE / "index.html").is_file():
        print("no site in build/site/: run make site first", file=sys.stderr)
        return 1
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip("Playwright is not installed (pip install playwright, in any environment)")
    chromium = find_chromium(args.chromium)   # None: Playwright's own Chromium, if it has one
    SCREENS.mkdir(parents=True, exist_ok=True)
    pages = sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html")
                   if p.name not in SKIP_PAGES and "_static" not in p.parts and "slides" not in p.parts)
    decks = sorted(p.relative_to(SITE).as_posix() for p in (SITE / "slides").glob("*.slides.html"))
    if not decks:
        failures_note = "no slide decks in build/site/slides/: run make slides"
        print(failures_note, file=sys.stderr)
        return 1
    (SCREENS / "slides").mkdir(parents=True, exist_ok=True)
    server, base = serve(SITE)
    failures = {}
    try:
        with sync_playwright() as p:
            try:
                browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            except Exception as err:   # noqa: BLE001  (Playwright has no Chromium of its own either)
                skip(f"no Chromium to launch ({str(err).splitlines()[0]}): apt-get install chromium, or --chromium")
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            # offline, as a classroom without network: anything not served from the site's own port fails
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                          else route.abort("internetdisconnected"))
            for name in pages:
                page = context.new_page()
                if problems := check_page(page, f"{base}/{name}", name):
                    failures[name] = problems
                page.close()
            for name in decks:
                page = context.new_page()
                if problems := check_deck(page, f"{base}/{name}", name):
                    failures[name] = problems
                page.close()
            browser.close()
    finally:
        server.shutdown()
    for name, problems in failures.items():
        print(f"\n{name}:\n  " + "\n  ".join(problems[:20]))
    total = len(pages) + len(decks)
    print(f"\n{total - len(failures)} of {total} pages and decks passed; screenshots in {SCREENS.relative_to(ROOT)}/")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
