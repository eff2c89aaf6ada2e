"""A hostile submission opened in Formgrader by the tutor, in a real browser: no script runs.

A throw-away course (the real ``nbgrader_config.py`` and ``solutions/practical1``)
gets two submissions, graded with the course's command:

* ``mallory`` carries one payload of each class: an event handler
  (``<img onerror>``), a ``<script>``, a ``javascript:`` link (HTML and
  Markdown), an SVG with a script, the HTML, SVG and JavaScript outputs of a
  code cell, a payload in an attachment and one in the notebook's and a
  cell's metadata.  Each payload, if it ran, would record itself in
  ``window.__pwned``, request ``/pwned-<kind>``, write
  ``pwned-<kind>.txt`` into the course through the contents API and give
  every written answer full marks through Formgrader's API;
* the same written answer also holds what an honest student writes: text,
  maths, a Markdown table and an image (an attachment).

JupyterLab (tutor mode, the ``.venv``'s configuration: Formgrader and
``coursetools.grading.web``) serves the course; Chromium (headless, Debian's,
offline) opens Mallory's submission in Formgrader as the tutor, clicks every
link of the written answer and checks that no script ran: ``window.__pwned``
unset, no request with ``pwned`` in it and no request that writes, no file
written, marks unchanged; that the honest parts display; and that the report
names each neutralised piece (``html removed``).  The control: the same
page, from a server without the guard and with the notebook as submitted,
trips every detector.  Screenshots go to ``test-artifacts/browser-formgrader/``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from _labserver import free_port, fresh_artifacts, running_server
from test_browser import browser  # noqa: F401 - the course's Chromium fixture
from test_grading import (ASSIGNMENT, SOURCE, TIMEOUT, Source, _generate_student_version,
                          _make_course, _nbg, _sandbox_available)  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "browser-formgrader"
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEklEQVR4nGP4z8CAFWEXHbQSACj/P8Fu7N9hAAAA"
       "AElFTkSuQmCC")  # an 8 x 8 red square
KINDS = ["handler", "script", "link", "mdlink", "svg", "attachment", "meta", "cellmeta",
         "html-output", "svg-output", "js-output"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def payload(kind: str) -> str:
    """JavaScript that, if it ever runs, leaves a trace of every kind the test looks for."""
    js = f"""
    window.__pwned = (window.__pwned || []).concat(['{kind}']);
    var x = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || '';
    var H = {{'Content-Type': 'application/json', 'X-XSRFToken': decodeURIComponent(x)}};
    new Image().src = '/pwned-{kind}';
    fetch('/api/contents/pwned-{kind}.txt', {{method: 'PUT', headers: H,
          body: JSON.stringify({{type: 'file', format: 'text', content: 'pwned'}})}});
    fetch('/formgrader/api/grades?submission_id=' + window.submission_id).then(r => r.json())
      .then(gs => gs.forEach(g => fetch('/formgrader/api/grade/' + g.id, {{method: 'PUT', headers: H,
          body: JSON.stringify({{manual_score: g.max_score, extra_credit: 0}})}})));
    """
    return f"eval(atob('{base64.b64encode(js.encode()).decode()}'))"


def hostile_answer() -> str:
    return "\n\n".join([
        "My answer: the correlation is **strong** and positive.",
        "$r = 0.66$ and $$\\rho^2 = 0.44$$",
        "| school | mean |\n|---|---|\n| A | 6.2 |",
        "![plot](attachment:plot.png)",
        f'<img src=x style="display:none" onerror="{payload("handler")}">',
        f"<script>{payload('script')}</script>",
        f'<a href="javascript:{payload("link")}" class="evil">html link</a>',
        f"[markdown link](javascript:{payload('mdlink').replace(chr(39), '%27')})",
        f"<svg><script>{payload('svg')}</script></svg>",
        "![chart](attachment:evil.svg)",
    ])


def hostile_outputs():
    from nbformat.v4 import new_output

    return [new_output("display_data", data={
        "text/html": f'<b>table</b><img src=x onerror="{payload("html-output")}">',
        "text/plain": "<table>"}),
        new_output("display_data", data={
            "image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg" onload="{payload("svg-output")}">'
                             f'<script>{payload("svg-output")}</script></svg>',
            "text/plain": "<svg>"}),
        new_output("display_data", data={"application/javascript": payload("js-output"),
                                          "text/plain": "<js>"})]


def hostile_code() -> str:
    html = f'<img src=x onerror="{payload("html-output")}">'
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" onload="{payload("svg-output")}">'
           f'<script>{payload("svg-output")}</script></svg>')
    return ("from IPython.display import HTML, SVG, Javascript, display\n"
            f"display(HTML({html!r}))\ndisplay(SVG({svg!r}))\n"
            f"display(Javascript({payload('js-output')!r}))\n")


def mallory(student_nb, src: Source):
    nb = nbformat.from_dict(json.loads(json.dumps(student_nb)))
    nb.metadata["title"] = f'<img src=x onerror="{payload("meta")}">'
    nb.metadata.setdefault("kernelspec", {})["display_name"] = f'<img src=x onerror="{payload("meta")}">'
    written = src.manual[0]
    for cell in nb.cells:
        gid = _nbg(cell).get("grade_id")
        if gid == written:
            cell.source = hostile_answer()
            cell["attachments"] = {
                "plot.png": {"image/png": PNG},
                "evil.svg": {"image/svg+xml": base64.b64encode(
                    f'<svg xmlns="http://www.w3.org/2000/svg" onload="{payload("attachment")}"/>'
                    .encode()).decode()}}
            cell.metadata["tags"] = [f'<img src=x onerror="{payload("cellmeta")}">']
        elif gid == src.first:
            cell.source = hostile_code()
            cell.outputs = hostile_outputs()
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The course after grading Mallory (and an honest blank submission)."""
    src = Source(SOURCE)
    course = _make_course(tmp_path_factory.mktemp("formgrader"))
    student_nb = _generate_student_version(course)
    nb = mallory(student_nb, src)
    for student, notebook in (("mallory", nb), ("bob", student_nb)):
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / f"{ASSIGNMENT}.ipynb").write_text(json.dumps(nb if student == "mallory" else notebook))
    proc = subprocess.run([sys.executable, "-m", "coursetools.grading", "--course-dir", str(course),
                           "--timeout", str(TIMEOUT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"dir": course, "src": src, "grading": proc, "raw": nb}


def _manual_scores(course: Path) -> list:
    with sqlite3.connect(course / "gradebook.db") as db:
        return sorted(db.execute("select grade.manual_score from grade").fetchall(), key=repr)


def _submission_id(course: Path, student: str) -> str:
    with sqlite3.connect(course / "gradebook.db") as db:
        return db.execute(
            "select submitted_notebook.id from submitted_notebook "
            "join submitted_assignment on submitted_notebook.assignment_id = submitted_assignment.id "
            "where submitted_assignment.student_id = ?", (student,)).fetchone()[0]


def _lab(course: Path, base: Path, guarded: bool):
    port, token = free_port(), secrets.token_hex(16)
    home = base / ("home-guarded" if guarded else "home-control")
    (home / ".jupyter").mkdir(parents=True)
    if not guarded:  # the user's own configuration comes first: switch the guard off
        (home / ".jupyter" / "jupyter_server_config.json").write_text(json.dumps(
            {"ServerApp": {"jpserver_extensions": {"coursetools.grading.web": False}}}))
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    env.pop("JUPYTER_CONFIG_PATH", None)
    cmd = [sys.executable, "-m", "jupyterlab", f"--port={port}", "--ip=127.0.0.1", "--no-browser",
           "--ServerApp.port_retries=0", f"--ServerApp.root_dir={course}",
           f"--IdentityProvider.token={token}", "--LabApp.news_url=None"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    return running_server(cmd, course, env, port, token, base / f"lab-{'guarded' if guarded else 'control'}.log"), port, token


def _open_as_tutor(browser, port, token, submission, shot: Path) -> dict:  # noqa: F811
    """Open the submission in Formgrader, click every link of the answers; return what happened."""
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    requests, errors = [], []
    page.on("request", lambda r: requests.append((r.method, r.url)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(f"http://127.0.0.1:{port}/?token={token}")  # logs in (cookie)
        page.goto(f"http://127.0.0.1:{port}/formgrader/submissions/{submission}/")
        page.wait_for_load_state("load")
        page.wait_for_timeout(1500)
        for link in page.locator(".rendered_html a").all():
            try:
                link.click(timeout=3000, no_wait_after=True)
            except Exception:  # noqa: BLE001 - a link that cannot be clicked did nothing
                pass
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shot), full_page=True)
        seen = page.evaluate("""() => {
            const imgs = [...document.querySelectorAll('.rendered_html img')];
            return {pwned: window.__pwned || null,
                    text: (document.querySelector('#notebook') || document.body).innerText,
                    tables: document.querySelectorAll('.rendered_html table').length,
                    images: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
                    url: location.href};
        }""")
        csp = None
        response = page.request.get(f"http://127.0.0.1:{port}/formgrader/submissions/{submission}/")
        csp = response.headers.get("content-security-policy")
    finally:
        context.close()
    seen.update(requests=requests, csp=csp, console=errors)
    return seen


def _open_file(browser, path: Path, shot: Path) -> dict:  # noqa: F811
    """Open a static page (feedback) as its reader would, click its links; return what happened."""
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    requests = []
    page.on("request", lambda r: requests.append((r.method, r.url)))
    try:
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        for link in page.locator("a").all():
            try:
                link.click(timeout=2000, no_wait_after=True)
            except Exception:  # noqa: BLE001 - a link that cannot be clicked did nothing
                pass
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shot))
        seen = page.evaluate("""() => ({pwned: window.__pwned || null, text: document.body.innerText,
            images: [...document.querySelectorAll('img')].filter(i => i.complete && i.naturalWidth > 1).length})""")
    finally:
        context.close()
    seen["requests"] = requests
    return seen


def _traces(course: Path, seen: dict) -> dict:
    return {"pwned": seen["pwned"],
            "requests": [r for r in seen["requests"] if "pwned" in r[1]
                         or r[0] in ("PUT", "POST", "PATCH", "DELETE")],
            "files": sorted(p.name for p in course.glob("pwned-*"))}


def test_no_script_of_a_submission_runs_in_formgrader(course, browser, tmp_path):  # noqa: F811
    artifacts = fresh_artifacts(ARTIFACTS)
    root, src = course["dir"], course["src"]
    marks_before = _manual_scores(root)
    submission = _submission_id(root, "mallory")

    # The report names what was made inert, cell by cell.
    report = json.loads((root / "grading-report.json").read_text())
    entry = next(e for e in report["submissions"] if e["student_id"] == "mallory")
    removed = [e for e in entry["events"] if e["kind"] == "html removed"]
    details = " ".join(e["detail"] for e in removed)
    cells = {e["cell"] for e in removed}
    assert src.manual[0] in cells and src.first in cells, removed
    for what in ["event handler onerror", "<script>", "javascript: URL", "javascript: link", "<svg>",
                 "attachment 'evil.svg'", "metadata", "an SVG image with scripts",
                 "application/javascript"]:
        assert what in details, (what, details)

    server, port, token = _lab(root, tmp_path, guarded=True)
    with server:
        seen = _open_as_tutor(browser, port, token, submission, artifacts / "01-guarded.png")
    traces = _traces(root, seen)
    assert traces == {"pwned": None, "requests": [], "files": []}, traces
    assert _manual_scores(root) == marks_before
    # Defence in depth: a nonce-only policy, no inline script, no plug-ins, no <base>.
    assert seen["csp"] and "script-src 'nonce-" in seen["csp"] and "'unsafe-inline'" not in \
        seen["csp"].split("script-src", 1)[1].split(";", 1)[0], seen["csp"]
    assert "object-src 'none'" in seen["csp"] and "base-uri 'none'" in seen["csp"]
    # What the student meant stays readable: text, maths, the table and the picture.
    assert "the correlation is strong and positive" in seen["text"], seen["text"][:2000]
    assert "r = 0.66" in seen["text"] and "\\rho^2 = 0.44" in seen["text"]
    assert seen["tables"] >= 1 and seen["images"] >= 1, seen
    # The neutralised HTML shows as text, so the tutor sees what was tried.
    assert "onerror" in seen["text"]

    # Mallory's own feedback page: as inert (a static page, its own policy in a <meta>).
    feedback = root / "feedback" / "mallory" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    page_html = feedback.read_text()
    assert 'http-equiv="Content-Security-Policy"' in page_html and "script-src 'nonce-" in page_html
    seen = _open_file(browser, feedback, artifacts / "03-feedback.png")
    assert (seen["pwned"], [r for r in seen["requests"] if "pwned" in r[1]]) == (None, []), seen
    assert "the correlation is strong and positive" in seen["text"] and seen["images"] >= 1

    # The control: the notebook as submitted, in a Formgrader without the guard.
    autograded = root / "autograded" / "mallory" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    graded = nbformat.read(autograded, as_version=4)
    raw = course["raw"]
    for mine, theirs in zip(graded.cells, raw.cells):
        mine.source = theirs.source
        if "attachments" in theirs:
            mine["attachments"] = theirs["attachments"]
        if mine.cell_type == "code" and theirs.get("outputs"):
            mine.outputs = theirs.outputs
    nbformat.write(graded, autograded)
    server, port, token = _lab(root, tmp_path, guarded=False)
    with server:
        control = _open_as_tutor(browser, port, token, submission, artifacts / "02-control.png")
    traces = _traces(root, control)
    assert traces["pwned"] and {"handler", "html-output"} <= set(traces["pwned"]), traces
    assert any("pwned" in url for _, url in traces["requests"]), traces
    assert any(method == "PUT" for method, _ in traces["requests"]), traces
    assert traces["files"], "the control's payload should have written a file"
    assert _manual_scores(root) != marks_before, "the control's payload should have changed marks"
