"""What a student sees of lecture 3 in a real browser, before and after running it.

One JupyterLab in student mode on a fresh student edition (the ``lab`` and
``browser`` fixtures and the ``Student`` helper of ``tests/test_browser.py``:
Debian's Chromium, headless; the test fails, never skips, when it is missing).
The student opens lecture 3 straight from its address and checks that

1. the lecture opens unmodified: its tab has no dirty marker (●) once the
   kernel is idle;
2. before anything runs, the VPC explorer is a picture (an ``<img>``, not
   "Error displaying widget"), with its ``*Figure:*`` caption right under it;
3. the self-check renders question 4 as written ("... the other 150. Which
   ...") and its answer mentions "150 pupils": no wrapped line became a list
   item numbered 150;
4. after *Run All* the live explorer is there: each variance's number box is
   an ``<input>`` named by its ``<label for>``, and the slider's spoken value
   (``aria-valuenow``) and text (``aria-valuetext``) equal the number in the
   box; a typed 1.27 becomes 1.3 in the box, on the slider and in the VPC text.

Screenshots go to ``test-artifacts/browser-display/``.  Skip with
``pytest --skip-browser``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from _labserver import fresh_artifacts
from test_browser import Student, browser, lab  # noqa: F401  (fixtures shared with the first-hour test)

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "browser-display"
LECTURE = "course/03-variance-components.ipynb"

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The explorer's cell, its output and the caption cell under it, found by the cell's source.
EXPLORER_CELL = """() => {
    const cells = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')];
    const i = cells.findIndex(c => c.classList.contains('jp-CodeCell') &&
        (c.querySelector('.jp-InputArea') || {}).textContent.includes('variance_explorer('));
    if (i < 0) return null;
    const out = cells[i].querySelector('.jp-OutputArea');
    const img = out.querySelector('.jp-OutputArea-output[data-mime-type="image/png"] img');
    return {text: out.textContent, image: !!img, width: img ? img.naturalWidth : 0,
            caption: cells[i + 1].querySelector('.jp-RenderedMarkdown').textContent.trim()};
}"""

# Each variance: the number box, the text of its <label for>, and the slider handle's ARIA values.
CONTROLS = """() => {
    const root = document.querySelector('.mlm-variance-explorer');
    return [...root.querySelectorAll('.widget-hbox')].map(row => {
        const input = row.querySelector('input[type="number"]');
        const handle = row.querySelector('[role="slider"]');
        return {label: input && input.labels.length ? input.labels[0].textContent : null,
                value: input ? input.value : null,
                now: handle.getAttribute('aria-valuenow'), text: handle.getAttribute('aria-valuetext')};
    });
}"""


@pytest.fixture(scope="module")
def artifacts():
    return fresh_artifacts(ARTIFACTS)


def test_lecture3_before_and_after_running(lab, browser, artifacts):  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    page = context.new_page()
    page.set_default_timeout(60_000)
    me = Student(page, artifacts)
    try:
        _steps(me, lab)
    except Exception:
        me.shot("failure")
        print(f"screenshots in {artifacts}; server log: {lab['log']}")
        print(lab["log"].read_text()[-3000:])
        raise
    finally:
        context.close()


def _tab_classes(page, name):
    return page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=name).first.get_attribute("class")


def _steps(me: Student, lab: dict):
    from coursetools.lab import lab_url

    page = me.page
    name = Path(LECTURE).name
    page.goto(lab_url(lab["port"], lab["token"], path=LECTURE))
    me.wait_notebook_open(name)
    time.sleep(2)  # a late change of the model would show by now

    # 1. Opens unmodified.
    assert "jp-mod-dirty" not in _tab_classes(page, name), "the lecture is marked modified as it opens"

    # 2. The explorer is a picture with a caption before the notebook runs.
    me.cells().filter(has=page.locator(".jp-InputArea", has_text="variance_explorer(")).first \
        .scroll_into_view_if_needed()
    page.wait_for_function(f"() => {{ const e = ({EXPLORER_CELL})(); return e && e.width > 0; }}")
    explorer = page.evaluate(EXPLORER_CELL)
    assert explorer["image"] and "Error displaying widget" not in explorer["text"], explorer["text"][:300]
    assert "VBox(" not in explorer["text"], "the widget's text repr is shown instead of its picture"
    assert explorer["caption"].startswith("Figure:") and "VPC explorer" in explorer["caption"], explorer
    assert me.notebook.get_by_text("Error displaying widget").count() == 0
    me.shot("explorer-before-running", me.notebook.locator(".jp-OutputArea-output img").last)

    # 3. The self-check renders question 4 as one list item, no list numbered 150.
    check = me.notebook.locator(".jp-RenderedMarkdown",
                                has=page.locator("h2", has_text="Self-check questions")).first
    check.scroll_into_view_if_needed()
    items = [t.replace("\n", " ") for t in check.locator("li").all_text_contents()]
    assert any("One has 10 pupils, the other 150. Which gets" in t for t in items), items
    assert "150 pupils" in check.text_content()
    starts = page.evaluate("() => [...document.querySelectorAll('.jp-RenderedMarkdown ol[start]')]"
                           ".map(o => +o.getAttribute('start'))")
    assert all(s <= 10 for s in starts), f"a wrapped line became a numbered list: starts {starts}"

    # 4. Run all: the live explorer, labelled boxes, one value everywhere.
    me.run_all()
    live = me.notebook.locator(".mlm-variance-explorer").first
    live.wait_for(timeout=60_000)
    live.scroll_into_view_if_needed()
    controls = page.evaluate(CONTROLS)
    assert [c["label"] for c in controls] == ["between-school variance", "within-school variance"], controls
    for c in controls:
        assert float(c["value"]) == float(c["now"]) == float(c["text"]), c
    me.shot("explorer-running", live)

    box = live.locator('input[type="number"]').first
    box.fill("1.27")
    box.press("Enter")
    vpc = live.locator(".widget-html-content").first
    page.wait_for_function("e => e.innerText.includes('1.3 / (1.3 +')", arg=vpc.element_handle(),
                           timeout=30_000)
    page.wait_for_function("e => e.value === '1.3'", arg=box.element_handle(), timeout=30_000)
    controls = page.evaluate(CONTROLS)
    assert controls[0]["now"] == "1.3" and float(controls[0]["text"]) == 1.3, controls
    assert re.search(r"VPC = 0\.619", vpc.inner_text()), vpc.inner_text()  # 1.3 / (1.3 + 0.8)
    me.shot("explorer-typed-value", live)
