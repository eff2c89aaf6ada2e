"""A student's first hour in the student edition, end to end, in a real browser.

Playwright for Python drives Debian's Chromium (``/usr/bin/chromium``; ``make test``
installs it with apt-get through ``tools/install-system-packages.sh``, Playwright
cannot download a browser of its own here) headless, with background networking
off.  The test fails, never skips, when Chromium is missing.  It

1. builds the student edition (``coursetools.release``, what ``make release``
   writes and students get) into a temporary folder and starts JupyterLab on it
   in student mode, the way ``make lab-student`` does
   (``coursetools.lab.build_command`` and ``student_environment``:
   ``--allow-root`` as root, landing page as default URL) on a free localhost
   port with a token;
2. opens the landing page and sees no Nbgrader menu (no Formgrader, no Create
   Assignment, no assignment list) and no news pop-up; follows its link to
   practical 1;
3. runs all cells and sees ``NotImplementedError`` in the first answer cell;
4. presses *Validate* (that answer's test is among the failures), types the
   model answer (taken from the tutor's ``solutions/``, which the edition does
   not have) into the cell, runs it and its test, presses *Validate* again and
   reads that the test no longer fails while the unanswered questions still do;
5. opens lecture 3 from the landing page, runs it, moves the between-school
   variance slider of the VPC explorer and sees the VPC text and the plot change;
6. saves a screenshot of every step in ``test-artifacts/browser/`` (printed),
   and shuts the server down.

Skip it locally with ``pytest --skip-browser`` (``make test ARGS=--skip-browser``).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

import nbformat
import pytest
from _labserver import fresh_artifacts, free_port, running_server

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "browser"
PRACTICAL = "practicals/practical1/practical1.ipynb"
SOLUTION = "solutions/practical1/practical1.ipynb"
LECTURE = "course/03-variance-components.ipynb"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--metrics-recording-only", "--mute-audio",
]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


# --------------------------------------------------------------------------- set-up


def _first_answer(student_nb: Path, solution_nb: Path) -> dict:
    """The first autograded answer cell of the practical, its test cell and the model answer."""
    student = nbformat.read(student_nb, as_version=4)
    solution = nbformat.read(solution_nb, as_version=4)
    cells = student.cells
    for i, cell in enumerate(cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            break
    else:
        raise AssertionError(f"{student_nb} has no autograded answer cell")
    grade_id = meta["grade_id"]
    test_index = next(j for j in range(i + 1, len(cells))
                      if cells[j].cell_type == "code" and cells[j].metadata.get("nbgrader", {}).get("grade"))
    source = next(c.source for c in solution.cells
                  if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    answer = "\n".join(line for line in source.splitlines()
                       if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    # The index among the notebook's cells is the index among the rendered cells.
    from mlmhelpers.validation import question_of

    test_source = cells[test_index].source.strip()
    return {"index": i, "grade_id": grade_id, "test_source": test_source,
            "question": question_of(test_source), "test_index": test_index, "answer": answer.strip()}


@pytest.fixture(scope="module")
def artifacts():
    print(f"\nbrowser test screenshots: {ARTIFACTS}")
    return fresh_artifacts(ARTIFACTS)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab in student mode on a fresh student edition, like `make lab-student`; stopped afterwards."""
    from coursetools.lab import build_command, lab_url, student_environment
    from coursetools.release import build_edition

    base = tmp_path_factory.mktemp("lab")
    course = base / "student"
    build_edition(course)
    for rel in (PRACTICAL, LECTURE, "index.ipynb"):
        if not (course / rel).exists():
            pytest.fail(f"the student edition has no {rel}: the browser test needs it")
    assert not (course / "solutions").exists()
    home = base / "home"
    home.mkdir()
    env = dict(os.environ)
    env.update(
        HOME=str(home),  # settings, workspaces, IPython and matplotlib caches
        JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        MLM_DATA_DIR=str(course / "data"),
    )
    env.pop("JUPYTER_TOKEN", None)
    env.pop("JUPYTER_CONFIG_PATH", None)
    env = student_environment(base / "student-mode", env)
    port = free_port()
    token = secrets.token_hex(16)
    cmd = build_command(port, token=token, root_dir=course)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        assert "--allow-root" in cmd
    with running_server(cmd, course, env, port, token, base / "jupyterlab.log"):
        yield {"port": port, "token": token, "course": course, "log": base / "jupyterlab.log",
               "url": lab_url(port, token), "cmd": cmd}


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("playwright is not installed: `make test` installs it (requirements-dev.txt)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: `make test` installs Debian's chromium when it may "
                    "(tools/install-system-packages.sh); otherwise run: apt-get install chromium")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


# --------------------------------------------------------------------------- page helpers


class Student:
    """A person in front of JupyterLab: clicks, types, looks, takes screenshots."""

    def __init__(self, page, folder: Path):
        self.page = page
        self.folder = folder
        self.shots: list[Path] = []

    def shot(self, name: str, locator=None):
        path = self.folder / f"{len(self.shots) + 1:02d}-{name}.png"
        if locator is not None:
            locator.scroll_into_view_if_needed()
        self.page.screenshot(path=str(path))
        self.shots.append(path)
        return path

    @property
    def notebook(self):
        """The notebook panel in front."""
        return self.page.locator(".jp-NotebookPanel:visible").first

    def cells(self):
        return self.notebook.locator(".jp-Notebook .jp-Cell")

    def wait_notebook_open(self, filename: str, timeout: float = 60_000):
        self.page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current",
                          has_text=filename).wait_for(timeout=timeout)
        # Until the new panel has rendered, the previous notebook can still be the
        # visible one (seen under load): wait for exactly one visible panel, with cells.
        self.page.wait_for_function(
            """() => {
                const shown = [...document.querySelectorAll('.jp-NotebookPanel')]
                    .filter(p => p.offsetParent !== null);
                return shown.length === 1 && shown[0].querySelector('.jp-Notebook .jp-Cell') !== null;
            }""",
            timeout=timeout,
        )
        self.wait_kernel_idle(timeout)

    def wait_kernel_idle(self, timeout: float = 120_000):
        """Kernel connected and idle, and no cell waiting or running (``[*]``)."""
        self.page.wait_for_function(
            """() => {
                const panel = [...document.querySelectorAll('.jp-NotebookPanel')]
                    .find(p => p.offsetParent !== null);
                if (!panel) return false;
                const ind = panel.querySelector('.jp-Notebook-ExecutionIndicator');
                if (!ind || ind.getAttribute('data-status') !== 'idle') return false;
                return ![...panel.querySelectorAll('.jp-InputArea-prompt')]
                    .some(p => p.textContent.includes('*'));
            }""",
            timeout=timeout,
        )

    def menu(self, top: str, item: str):
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
        self.page.locator(".lm-Menu-content .lm-Menu-itemLabel",
                          has_text=re.compile(f"^{re.escape(item)}$")).first.click()

    def run_all(self, timeout: float = 120_000):
        self.notebook.click(position={"x": 5, "y": 5})
        self.menu("Run", "Run All Cells")
        time.sleep(1)
        self.wait_kernel_idle(timeout)

    def outputs_text(self, cell) -> str:
        # text_content, not inner_text: cells out of view are not laid out
        # (content-visibility), so their inner_text is empty.
        return cell.locator(".jp-OutputArea").text_content()

    def validate(self, timeout: float = 180_000) -> dict:
        """Press Validate, read nbgrader's verdict, close the dialog."""
        self.notebook.locator(".validate-button").click()
        message = self.page.locator("#validation-message")
        message.wait_for(timeout=timeout)
        verdict = self.page.evaluate(
            """() => {
                const m = document.querySelector('#validation-message');
                const pres = [...m.querySelectorAll('.jp-RenderedText pre')];
                const failed = [];
                for (let i = 0; i + 1 < pres.length; i += 2)
                    failed.push({source: pres[i].innerText.trim(), error: pres[i + 1].innerText});
                return {classes: [...m.classList], text: m.innerText, failed: failed};
            }"""
        )
        return verdict

    def close_dialog(self):
        self.page.locator(".jp-Dialog .jp-mod-accept").click()
        self.page.locator(".jp-Dialog").wait_for(state="detached")


# --------------------------------------------------------------------------- the test


def test_student_first_hour(lab, browser, artifacts):
    answer = _first_answer(lab["course"] / PRACTICAL, REPO / SOLUTION)
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    page = context.new_page()
    page.set_default_timeout(60_000)
    me = Student(page, artifacts)
    console_errors: list[str] = []
    page.on("pageerror", lambda exc: console_errors.append(str(exc)))
    try:
        _run_steps(me, lab, answer)
    except Exception:
        me.shot("failure")
        print(f"screenshots so far in {artifacts}; server log: {lab['log']}")
        print(lab["log"].read_text()[-4000:])
        raise
    finally:
        context.close()
    print(f"\nbrowser test screenshots ({len(me.shots)}) in {artifacts}:")
    for shot in me.shots:
        print("   ", shot.name)
    if console_errors:
        print("JavaScript errors in the page (not failures by themselves):", *console_errors, sep="\n  ")


def _run_steps(me: Student, lab: dict, answer: dict):
    page = me.page

    # 1-2. The landing page, and its link to practical 1.
    page.goto(lab["url"])
    me.wait_notebook_open("index.ipynb")
    landing = me.notebook.locator(".jp-RenderedMarkdown")
    landing.first.wait_for()
    links = me.notebook.locator('.jp-RenderedMarkdown a[href*=".ipynb"]')
    links.first.wait_for()
    assert links.count() >= 11, "the landing page should link to 7 lectures and 4 practicals"
    me.shot("landing-page")
    # Student mode: no Nbgrader menu (Formgrader, Create Assignment, assignment list) and
    # no "would you like news?" pop-up (it would have shown by the time the notebook is open).
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).wait_for()
    menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
    assert "Nbgrader" not in menus and "Kernel" in menus, menus
    assert page.get_by_text("official Jupyter news").count() == 0, "the news pop-up is shown"
    me.notebook.locator(".jp-RenderedMarkdown a", has_text="Practical 1").first.click()
    me.wait_notebook_open("practical1.ipynb")
    assert me.notebook.locator(".validate-button").count() == 1, "the Validate button is missing"
    # nbgrader's Create Assignment panel lives in the right side bar.
    assert page.locator(".lm-TabBar-tab", has_text="Create Assignment").count() == 0
    assert page.locator("#nbgrader-create_assignemnt").count() == 0
    me.shot("practical1-opened")

    # 3. Run all: the first answer cell stops with NotImplementedError.
    me.run_all()
    cell = me.cells().nth(answer["index"])
    cell.scroll_into_view_if_needed()
    assert "NotImplementedError" in cell.locator(".jp-InputArea").text_content(), (
        "cell %d is not the first answer cell: %s" % (answer["index"], cell.text_content()[:500]))
    cell.locator(".jp-OutputArea-output", has_text="NotImplementedError").first.wait_for(timeout=30_000)
    me.shot("practical1-not-implemented", cell)

    # 4a. Validate before answering: this answer's test is among the failures.
    before = me.validate()
    me.shot("validate-before-answer")
    me.close_dialog()
    assert "validation-failed" in before["classes"], before["text"][:2000]
    failed_before = [f["source"] for f in before["failed"]]
    # Validate names the question and its message, not the check's code (mlmhelpers.validation).
    assert answer["question"] in failed_before, (
        f"before answering, the test of {answer['grade_id']} should fail; failures: {failed_before}")
    assert not any("check_answer(" in f["source"] + f["error"] for f in before["failed"]), before["failed"]

    # 4b. Type the model answer, run it and its test cell.
    editor = cell.locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(answer["answer"])
    page.keyboard.press("Shift+Enter")  # runs the answer, selects the test cell
    me.wait_kernel_idle()
    page.keyboard.press("Shift+Enter")  # runs the test cell
    me.wait_kernel_idle()
    typed = cell.locator(".cm-content").text_content()
    assert "NotImplementedError" not in typed and answer["answer"].splitlines()[0].strip() in typed
    out = me.outputs_text(cell)
    assert "Error" not in out, out
    test_cell = me.cells().nth(answer["test_index"])
    assert "Error" not in me.outputs_text(test_cell), me.outputs_text(test_cell)
    me.shot("practical1-answered", test_cell)

    # 4c. Validate again: nbgrader's verdict for that cell is now a pass.
    after = me.validate()
    me.shot("validate-after-answer")
    me.close_dialog()
    failed_after = [f["source"] for f in after["failed"]]
    assert answer["question"] not in failed_after, (
        f"the test of {answer['grade_id']} still fails after the model answer: {after['text'][:2000]}")
    # The other questions are unanswered, so Validate must still report them.
    assert "validation-failed" in after["classes"] and failed_after, after["text"][:2000]
    assert set(failed_after) < set(failed_before), (failed_before, failed_after)
    me.notebook.locator(".jp-Toolbar").first.wait_for()

    # 5. Lecture 3 from the landing page: run it, move a slider, see the output change.
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="index.ipynb").click()
    me.wait_notebook_open("index.ipynb")
    me.notebook.locator(".jp-RenderedMarkdown a", has_text="Part 3").first.click()
    me.wait_notebook_open(Path(LECTURE).name)
    me.run_all()
    explorer = me.notebook.locator(".mlm-variance-explorer").first
    explorer.wait_for(timeout=60_000)
    explorer.scroll_into_view_if_needed()
    vpc = explorer.locator(".widget-html-content").first
    page.wait_for_function("e => e.innerText.includes('VPC =')", arg=vpc.element_handle())
    image = explorer.locator("img").first
    page.wait_for_function("e => e.complete && e.naturalWidth > 0", arg=image.element_handle())
    vpc_before, src_before = vpc.inner_text(), image.get_attribute("src")
    me.shot("lecture3-explorer-before", explorer)

    slider = explorer.locator(".widget-slider", has_text="between-school variance").first
    handle = slider.locator(".noUi-handle").first
    box = handle.bounding_box()
    track = slider.locator(".noUi-target").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + 0.6 * track["width"], box["y"] + box["height"] / 2, steps=10)
    page.mouse.up()
    page.wait_for_function("([e, old]) => e.innerText !== old", arg=[vpc.element_handle(), vpc_before],
                           timeout=30_000)
    page.wait_for_function("([e, old]) => e.src !== old", arg=[image.element_handle(), src_before],
                           timeout=30_000)
    vpc_after = vpc.inner_text()
    me.shot("lecture3-explorer-after", explorer)
    number = re.compile(r"VPC = ([0-9.]+)")
    assert float(number.search(vpc_after).group(1)) > float(number.search(vpc_before).group(1)), (
        vpc_before, vpc_after)
