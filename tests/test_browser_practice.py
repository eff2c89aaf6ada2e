"""Practice mode in a real browser: honest feedback, and recovery after a restart.

Uses the browser test's JupyterLab (student mode, on a fresh student edition)
and Chromium (tests/test_browser.py).  Practical 1 is regenerated into that
edition by the course's own generator, with this machine's Python, so that
the notebook's ``language_info`` is the kernel's.  In practical 1 it

1. opens the practical and sees it unmodified (no ● on its tab) once the
   kernel is running;
2. runs all cells, types a Spearman correlation as the answer to Question 1,
   runs it and its check: the check says "not right" and names the mistake;
3. presses *Validate*: no *Success*, and the failure list names Question 1 and
   the mistake;
4. restarts the kernel and runs the check cell alone: the message names the
   cell to run and *Run → Run All Above Selected Cell*, not a bare NameError;
   runs *Run All Above Selected Cell* and the check again: the check works
   (still "not right"), then with Pearson's correlation it says "right".

Screenshots go to ``test-artifacts/browser-practice/``.  Skipped with
``--skip-browser``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from _labserver import fresh_artifacts
from test_browser import PRACTICAL, SOLUTION, Student, _first_answer, browser, lab  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "browser-practice"
SPEARMAN = 'corr_gcse = chem["score"].corr(chem["gcsescore"], method="spearman")'

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_practice_feedback_and_recovery(lab, browser):  # noqa: F811 - fixtures from test_browser
    from coursetools.practicals import generate_practicals

    fresh_artifacts(ARTIFACTS)
    generate_practicals(output=lab["course"] / "practicals", assignments=["practical1"],
                        mode="practice")
    answer = _first_answer(lab["course"] / PRACTICAL, REPO / SOLUTION)
    assert answer["answer"] == 'corr_gcse = chem["score"].corr(chem["gcsescore"])\nprint(corr_gcse)'
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    page = context.new_page()
    page.set_default_timeout(60_000)
    me = Student(page, ARTIFACTS)
    try:
        _steps(me, lab, answer)
    except Exception:
        me.shot("failure")
        print(f"screenshots in {ARTIFACTS}; server log: {lab['log']}")
        raise
    finally:
        context.close()
    print(f"\nbrowser screenshots ({len(me.shots)}) in {ARTIFACTS}")


def _type_and_check(me: Student, answer: dict, code: str):
    """Replace the answer cell's code, run it and its check cell; return the check's output."""
    cell = me.cells().nth(answer["index"])
    cell.locator(".cm-content").click()
    me.page.keyboard.press("Control+A")
    me.page.keyboard.insert_text(code)
    me.page.keyboard.press("Shift+Enter")  # the answer; selects the check cell
    me.wait_kernel_idle()
    me.page.keyboard.press("Shift+Enter")  # the check
    me.wait_kernel_idle()
    return me.outputs_text(me.cells().nth(answer["test_index"]))


def _steps(me: Student, lab: dict, answer: dict):
    page = me.page

    # 1. Opened, with the kernel running: not modified.
    page.goto(f"http://127.0.0.1:{lab['port']}/lab/tree/{PRACTICAL}?token={lab['token']}")
    me.wait_notebook_open("practical1.ipynb")
    time.sleep(2)
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="practical1.ipynb").first
    assert "jp-mod-dirty" not in tab.get_attribute("class"), "practical 1 shows as modified on opening"
    me.shot("opened-unmodified")

    # 2. A Spearman correlation for Question 1: "not right", and why.
    me.run_all()
    out = _type_and_check(me, answer, SPEARMAN)
    assert "not right" in out and "Spearman" in out, out
    me.shot("spearman-not-right", me.cells().nth(answer["test_index"]))

    # 3. Validate does not say Success; the failure names the question and the mistake.
    verdict = me.validate()
    me.shot("validate-spearman")
    me.close_dialog()
    assert "Success" not in verdict["text"] and "validation-failed" in verdict["classes"], verdict["text"][:500]
    q1 = [f for f in verdict["failed"] if f["source"] == "Question 1"]
    assert q1 and "Spearman" in q1[0]["error"], verdict
    assert "check_answer(" not in q1[0]["error"] and "Traceback" not in q1[0]["error"], q1

    # 4. Restart; the check cell alone says what to run; Run All Above recovers.
    me.menu("Kernel", "Restart Kernel…")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.locator(".jp-Dialog").wait_for(state="detached")
    me.wait_kernel_idle()
    check = me.cells().nth(answer["test_index"])
    check.locator(".jp-InputPrompt").first.click()
    page.keyboard.press("Shift+Enter")
    me.wait_kernel_idle()
    out = me.outputs_text(check)
    assert "corr_gcse` is not defined yet" in out and "Run All Above Selected Cell" in out, out
    assert "name 'np' is not defined" not in out
    me.shot("after-restart-check-alone", check)
    check.locator(".jp-InputPrompt").first.click()
    me.menu("Run", "Run All Above Selected Cell")
    time.sleep(1)
    me.wait_kernel_idle()
    check.locator(".jp-InputPrompt").first.click()
    page.keyboard.press("Shift+Enter")
    me.wait_kernel_idle()
    out = me.outputs_text(check)
    assert "not right" in out and "Spearman" in out and "not defined" not in out, out
    out = _type_and_check(me, answer, answer["answer"])
    assert re.search(r"Question 1: corr_gcse is right", out) and "Error" not in out, out
    me.shot("pearson-right", check)
