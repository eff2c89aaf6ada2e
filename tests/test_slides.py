"""The lecture slides open offline: ``make slides`` output needs no network.

``coursetools.slides`` copies reveal.js, MathJax 2, require.js and jQuery (npm
packages pinned in ``tools/slides/package-lock.json``; ``make slides`` and
``make test`` install them with ``npm ci`` in set-up) next to the decks and
points the HTML at them by relative URLs.  Checked here:

* fast: a rendered deck loads nothing from another host (no remote
  ``src``/``href`` on a script, link, image or frame, no remote URL handed to
  require.js, no remote ``@import`` or ``url()`` in the copied style sheets),
  and every relative file it names exists;
* in Debian's Chromium, from ``file://`` after the folder is moved elsewhere,
  with every non-file request aborted
  (and recorded): reveal.js initialises (``.reveal.ready``, one slide shown, the
  course theme applied), MathJax typesets every formula of the deck, and the
  slide with the first displayed equation shows it typeset, with no raw
  ``$...$``, ``$$...$$`` or ``\\(...\\)`` TeX left in its text; no
  request was aborted or failed and the page raised no error.  A screenshot
  goes to ``test-artifacts/slides/``.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from coursetools.slides import ASSETS, URLS, build_slides
from _labserver import offline_context
from test_browser import browser  # noqa: F401  (the Chromium fixture of the student browser test)

REPO = Path(__file__).resolve().parents[1]
LECTURE = REPO / "course" / "01-linear-regression.ipynb"
ARTIFACTS = REPO / "test-artifacts" / "slides"

# Attributes that make a browser fetch something (an <a href> is a link the reader may follow).
FETCHING = re.compile(
    r"<(script|link|img|iframe|source|video|audio|embed)\b[^>]*?\b(src|href)\s*=\s*[\"']([^\"']*)[\"']",
    re.I | re.S,
)
REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)  # http://, https://, //host
REMOTE_CSS = re.compile(r"(@import|url\()\s*[\"']?\s*(?:https?:)?//", re.I)


@pytest.fixture(scope="module")
def deck(tmp_path_factory):
    """Lecture 1 rendered into a fresh folder, as `make slides` renders every lecture."""
    if not (ASSETS / "reveal.js" / "package.json").is_file():
        pytest.fail(f"the slides' npm packages are not in {ASSETS}: run `make slides-js` "
                    "(make test and make slides install them)")
    out = tmp_path_factory.mktemp("slides")
    (html,) = build_slides(LECTURE, out)
    return html


def _fetched(html: str) -> list[str]:
    return [m.group(3) for m in FETCHING.finditer(html)]


def test_deck_loads_nothing_remote(deck):
    html = deck.read_text(encoding="utf-8")
    fetched = _fetched(html)
    remote = [url for url in fetched if REMOTE.match(url)]
    assert not remote, f"the deck loads from the network: {remote}"
    # The scripts nbconvert would take from CDNs come from the folder instead.
    for url in URLS.values():
        path = url if url != URLS["reveal_url_prefix"] else url + "/dist/reveal.js"
        assert path in html, f"{path} is not referenced by the deck"
        assert (deck.parent / path.split("?")[0]).is_file(), f"{path} is missing from the folder"
    # Every relative file the deck fetches is there (data: URIs excepted).
    local = [u.split("?")[0] for u in fetched if not u.startswith(("data:", "#"))]
    assert len(local) >= 5, local
    missing = [u for u in local if not (deck.parent / u).is_file()]
    assert not missing, f"the deck names files that are not in its folder: {missing}"
    # require.js gets relative module paths, and no ES module import from a URL is left.
    (required,) = re.findall(r"require\(\s*\{[^}]*\}\s*,\s*\[([^\]]*)\]", html, re.S)
    assert '"reveal.js/dist/reveal.js"' in required and "//" not in required, required
    assert not re.search(r"import\s+\w+\s+from\s+['\"](?:https?:)?//", html)
    # No remote widget renderer.
    assert "unpkg" not in html and "cdnjs" not in html and "jsdelivr" not in html


def test_copied_style_sheets_import_nothing_remote(deck):
    sheets = list(deck.parent.rglob("*.css"))
    assert any(p.name == "simple.css" for p in sheets), "the course theme is not in the folder"
    remote = [f"{p.relative_to(deck.parent)}: {m.group(0)}" for p in sheets
              for m in REMOTE_CSS.finditer(p.read_text(encoding="utf-8"))]
    assert not remote, remote


def test_mathjax_copy_has_what_the_configuration_loads(deck):
    mathjax = deck.parent / "mathjax"
    for rel in ("MathJax.js", "config/TeX-AMS_CHTML-full.js", "config/Safe.js",
                "jax/output/CommonHTML/jax.js", "jax/input/TeX/config.js",
                "fonts/HTML-CSS/TeX/woff/MathJax_Math-Italic.woff"):
        assert (mathjax / rel).is_file(), rel
    version = re.search(r'MathJax\.version\s*=\s*"([^"]+)"', (mathjax / "MathJax.js").read_text())
    assert version and version.group(1).startswith("2.7"), "nbconvert's template calls MathJax 2's API"


def test_missing_packages_are_reported(tmp_path):
    from coursetools.slides import main

    assert main([str(LECTURE), str(tmp_path / "out"), "--assets", str(tmp_path / "none")]) == 2
    assert not list((tmp_path / "out").glob("*.html"))


# --------------------------------------------------------------------------- in a browser


@pytest.mark.browser
def test_deck_runs_offline_in_chromium(deck, browser, tmp_path):  # noqa: F811
    # Move the folder first: the deck must not depend on where it was built.
    moved = tmp_path / "moved"
    shutil.copytree(deck.parent, moved)
    url = (moved / deck.name).as_uri()

    context, aborted = offline_context(browser, height=800)
    failed, errors = [], []
    page = context.new_page()
    page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        started = time.monotonic()
        page.goto(url)
        page.wait_for_selector(".reveal.ready", state="attached", timeout=20_000)
        page.wait_for_function(
            "() => window.MathJax && MathJax.Hub && MathJax.Hub.queue && MathJax.Hub.queue.pending === 0"
            " && document.querySelector('.MathJax_CHTML')", timeout=20_000)
        seconds = time.monotonic() - started

        state = page.evaluate(
            """() => {
                const Reveal = require('reveal.js/dist/reveal.js');
                const leaves = [...document.querySelectorAll('.reveal .slides section')]
                    .filter(s => !s.querySelector('section'));
                const first = leaves.findIndex(s => s.querySelector('script[type="math/tex; mode=display"]'));
                const state = {ready: Reveal.isReady(), total: Reveal.getTotalSlides(), leaves: leaves.length,
                               first: first, at: Reveal.getIndices(leaves[first]),
                               font: getComputedStyle(document.querySelector('.reveal')).fontFamily,
                               rawScripts: document.querySelectorAll('script[type^="math/tex"]').length,
                               typeset: document.querySelectorAll('.MathJax_CHTML').length,
                               texErrors: [...document.querySelectorAll('.mjx-noError, .mjx-merror, .MathJax_Error')]
                                   .map(e => e.textContent)};
                // (the template's slidechanged handler re-renders the new slide's math)
                Reveal.slide(state.at.h, state.at.v);
                return state;
            }""")
        time.sleep(0.8)  # the slide transition
        page.wait_for_function("() => MathJax.Hub.queue.pending === 0")
        slide = page.evaluate(
            """() => {
                const present = [...document.querySelectorAll('.reveal .slides section.present')]
                    .filter(s => !s.querySelector('section'));
                const s = present[0];
                const math = s.querySelectorAll('.MathJax_CHTML');
                const visible = [...math].filter(m => m.getBoundingClientRect().width > 0);
                return {count: present.length, text: s.innerText, math: math.length,
                        visible: visible.length, display: s.querySelectorAll('.MJXc-display').length,
                        tex: [...s.querySelectorAll('script[type^="math/tex"]')].map(x => x.textContent)};
            }""")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "first-equation-offline.png"
        page.screenshot(path=str(shot))
        print(f"\nslides screenshot: {shot} (ready and typeset in {seconds:.1f} s)")
    except Exception as exc:
        raise AssertionError(f"the deck did not come up offline: {exc}\naborted (network): {aborted}\n"
                             f"failed: {failed}\nerrors: {errors}") from exc
    finally:
        context.close()

    assert not aborted, f"the deck tried to reach the network: {aborted}"
    assert not failed, f"files the deck needs are missing: {failed}"
    assert not errors, f"JavaScript errors: {errors}"
    assert state["ready"] and state["total"] == state["leaves"] >= 10, state
    assert "Lato" in state["font"], f"the reveal.js theme is not applied: {state['font']}"
    assert state["first"] >= 0 and state["typeset"] == state["rawScripts"] > 0, state
    assert not state["texErrors"], f"MathJax could not typeset: {state['texErrors']}"
    # Only the slide with the first displayed equation is shown, and its math is typeset, not raw TeX.
    assert slide["count"] == 1 and slide["math"] == len(slide["tex"]) >= 1 and slide["display"] >= 1, slide
    assert slide["visible"] == slide["math"], slide
    assert "$" not in slide["text"] and "\\(" not in slide["text"] and "\\[" not in slide["text"], slide["text"]
