"""A class on the course's JupyterHub: release, fetch, submit, grade, feedback, with real users.

The test runs as root (as CI does) and uses the hub exactly as ``make hub``
sets it up (``hub/setup.sh``, ``hub/jupyterhub_config.py``, the account and
exchange helpers of ``hub/classhub.py``):

1. it creates four system users from a test roster - ``mlmt-instructor`` and
   the students ``mlmt-student1`` (answers everything), ``mlmt-student2``
   (answers two questions) and ``mlmt-student3`` (answers nothing) - then
   starts JupyterHub with configurable-http-proxy on free loopback ports and
   nbgrader's exchange as the ngshare service (``make hub HUB_EXCHANGE=service``;
   ``MLM_HUB_TEST_EXCHANGE=folder`` runs the same class through the shared
   exchange folder instead), and enrols the roster in it;
2. the hub starts every user's server (its own process, as that user); the
   instructor's server has the formgrader, the students' do not;
3. the instructor releases practical 1 (``nbgrader release_assignment``, as
   the instructor's system user);
4. students 1 and 2 fetch it, write their answers and submit through their
   own servers' REST API (nbgrader's assignment list endpoints and the
   contents API) with their own tokens; student 3 does the same in a real
   browser (Playwright, Debian's Chromium): logs in on the hub's login page,
   opens *Nbgrader -> Assignment List*, fetches and submits;
5. the instructor collects the submissions and grades them with the course's
   grading command (``python -m coursetools.grading``), then releases the
   feedback; each student fetches theirs and finds their own score only;
6. as each student's system user, the test tries to read the other
   students' homes, submissions and feedback and the instructor's course
   folder and gradebook, and through the hub another student's server; with
   its own hub token, each student asks the exchange service for another
   student's submission and feedback, for work not released, to release
   work or feedback, and submits under another student's name (every attempt
   refused, the submission counted as the sender's own);
7. the shared folder exchange is checked too, without the hub: a release,
   two students' fetch and submit, collect and feedback, as the accounts
   themselves, and the same attempts on the folder (``Permission denied``);
8. it measures the round trip per student, the grading time per submission
   and the memory of a user's server with a kernel that has run practical 1
   (``test-artifacts/hub/`` and ``build/hub-capacity.json``, with the class
   sizes they give).

Everything it made is removed at the end, also when a step fails: the hub
and every process of the test users are stopped, the users are deleted
with their homes, and the exchange and state folders are removed.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest
import requests
from _labserver import fresh_artifacts, free_port
from urllib.parse import urlsplit
from test_browser import browser  # noqa: F401 - the course's Chromium fixture

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hub"))
import classhub  # noqa: E402 - hub/classhub.py

ARTIFACTS = REPO / "test-artifacts" / "hub"
COURSE = classhub.COURSE_ID
ASSIGNMENT = "practical1"
SOLUTION = REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
# nbgrader's exchange for the hub's round trip: the ngshare service (default)
# or the shared folder (MLM_HUB_TEST_EXCHANGE=folder).
EXCHANGE_KIND = os.environ.get("MLM_HUB_TEST_EXCHANGE", "service")
# The test accounts' names start with this (MLM_HUB_TEST_USERS changes it, so
# that two checkouts on one machine do not remove each other's accounts).
_USERS = os.environ.get("MLM_HUB_TEST_USERS", "mlmt")
INSTRUCTOR = f"{_USERS}-instructor"
STUDENT1, STUDENT2, STUDENT3 = (f"{_USERS}-student{i}" for i in (1, 2, 3))
STUDENTS = {STUDENT1: "all", STUDENT2: "part", STUDENT3: "none"}
BROWSER_STUDENT = STUDENT3
# Released only in the folder check (never to the service): "not released" there.
FOLDER_ASSIGNMENT = "practical2"
CAPACITY = REPO / "build" / "hub-capacity.json"
# Answers of the partial submission: the first two questions (1 point each).
PARTIAL = ("q1_corr", "q2_slope")
# The test's own folders: outside /tmp/pytest-of-root, which other users cannot enter.
WORK_ROOT = Path("/srv/mlm-hub-test")

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _localhost_names():
    """Resolve every ``*.localhost`` name to this machine, as browsers do (RFC 6761).

    The hub serves each person's server on a host name of its own
    (``<user>.localhost``); Chromium resolves those by itself, Python's
    resolver needs this.
    """
    import socket

    original = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    yield
    socket.getaddrinfo = original


# --------------------------------------------------------------------------- helpers


def as_user(user: str, command: str, check: bool = True, timeout: float = 300,
            exchange: Path | None = None, env_extra: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run a shell command as a system user, with the class environment (not root's).

    ``exchange``: the shared exchange folder; ``env_extra``: more ``NAME=value``
    (the exchange service's settings and the user's own hub token).
    """
    home = Path(f"/home/{user}")
    env = [f"HOME={home}", f"USER={user}", f"LOGNAME={user}", "LANG=C.UTF-8",
           f"PATH={classhub.PREFIX / 'user' / 'bin'}:/usr/bin:/bin",
           "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1"]
    if exchange is not None:
        env.append(f"MLM_EXCHANGE_ROOT={exchange}")
    env += env_extra or []
    result = subprocess.run([classhub._tool("runuser"), "-u", user, "--", "env", "-i", *env,
                             "bash", "-c", command],
                            cwd="/", capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"as {user}: {command}\nexit {result.returncode}\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def model_answers() -> dict[str, str]:
    """grade_id -> model answer (the solution cell without nbgrader's markers)."""
    answers = {}
    for cell in nbformat.read(SOLUTION, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            answers[meta["grade_id"]] = "\n".join(
                line for line in cell.source.splitlines()
                if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    return answers


def autograded_points() -> tuple[float, float]:
    """(points of the automatic tests, points of the whole practical)."""
    auto = total = 0.0
    for cell in nbformat.read(SOLUTION, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            total += meta["points"]
            if not meta.get("solution"):
                auto += meta["points"]
    return auto, total


class Hub:
    """The running hub: its address, the admin service token, per-user API sessions."""

    def __init__(self, url: str, service_token: str, password: str, exchange: Path, log: Path,
                 kind: str = "folder", ngshare: str | None = None, ngshare_admin: str | None = None,
                 state: Path | None = None):
        self.url = url
        self.password = password
        self.exchange = exchange
        self.log = log
        self.kind = kind
        self.ngshare = ngshare
        self.ngshare_admin = ngshare_admin
        self.state = state
        self.admin = requests.Session()
        self.admin.headers["Authorization"] = f"token {service_token}"
        self.sessions: dict[str, requests.Session] = {}

    def api(self, method: str, path: str, **kw) -> requests.Response:
        response = self.admin.request(method, f"{self.url}/hub/api{path}", timeout=60, **kw)
        response.raise_for_status()
        return response

    def start_servers(self, users, timeout: float = 180) -> float:
        """Ask the hub to start each user's server; wait until all are ready; return the seconds."""
        start = time.monotonic()
        for user in users:
            response = self.admin.post(f"{self.url}/hub/api/users/{user}/server", timeout=60)
            assert response.status_code in (201, 202), (user, response.status_code, response.text)
        pending = set(users)
        while pending:
            for user in sorted(pending):
                model = self.api("GET", f"/users/{user}").json()
                server = model.get("servers", {}).get("")
                if server and server.get("ready"):
                    pending.discard(user)
            if time.monotonic() - start > timeout:
                pytest.fail(f"servers not ready after {timeout} s: {sorted(pending)}\n"
                            + self.log.read_text()[-4000:])
            time.sleep(0.5)
        return time.monotonic() - start

    def session(self, user: str) -> requests.Session:
        """A session that talks to ``user``'s own server with a token the hub issued to that user."""
        if user not in self.sessions:
            token = self.api("POST", f"/users/{user}/tokens",
                             json={"note": "round-trip test", "expires_in": 3600}).json()["token"]
            session = requests.Session()
            session.headers["Authorization"] = f"token {token}"
            self.sessions[user] = session
        return self.sessions[user]

    def token(self, user: str) -> str:
        return self.session(user).headers["Authorization"].split()[1]

    def exchange_env(self, user: str) -> dict:
        """``as_user``'s arguments for nbgrader's exchange, as in a terminal of ``user``'s server."""
        if self.kind == "folder":
            return {"exchange": self.exchange}
        return {"env_extra": ["MLM_EXCHANGE=service", f"MLM_NGSHARE_URL={self.ngshare}",
                              f"JUPYTERHUB_USER={user}", f"JUPYTERHUB_API_TOKEN={self.token(user)}"]}

    def ngshare_call(self, method: str, path: str, user: str | None = None, token: str | None = None,
                     **kw) -> requests.Response:
        """A call to the exchange service with ``user``'s hub token (or ``token``; default: its admin's)."""
        if token is None:
            token = self.token(user) if user else self.ngshare_admin
        headers = {"Authorization": f"token {token}"} if token else {}
        return requests.request(method, f"{self.ngshare}/{path.lstrip('/')}", headers=headers,
                                timeout=60, allow_redirects=False, **kw)

    def user_url(self, user: str, path: str) -> str:
        """The address of ``path`` on ``user``'s server: on a host name of its own."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{user}.{parts.netloc}/user/{user}/{path.lstrip('/')}"

    def call(self, user: str, method: str, path: str, as_user: str | None = None, **kw):
        """A request to ``user``'s server made with ``as_user``'s token (default: the owner's)."""
        session = self.session(as_user or user)
        return session.request(method, self.user_url(user, path), timeout=300,
                               allow_redirects=False, **kw)


def assignment_status(hub: Hub, user: str) -> dict:
    """nbgrader's assignment list of ``user``: {status: [assignment ids]}."""
    response = hub.call(user, "GET", "assignments", params={"course_id": COURSE})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["success"], result
    by_status: dict[str, list[str]] = {}
    for item in result["value"]:
        by_status.setdefault(item["status"], []).append(item["assignment_id"])
    return by_status


def assignment_action(hub: Hub, user: str, action: str) -> dict:
    response = hub.call(user, "POST", f"assignments/{action}",
                        data={"course_id": COURSE, "assignment_id": ASSIGNMENT})
    assert response.status_code == 200, (action, response.status_code, response.text[:2000])
    result = response.json()
    assert result["success"], (action, result)
    return result


def answer_through_contents_api(hub: Hub, user: str, which: str) -> None:
    """Write the student's answers into the fetched notebook, as JupyterLab saves it."""
    path = f"api/contents/{COURSE}/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
    response = hub.call(user, "GET", path, params={"content": 1})
    assert response.status_code == 200, response.text
    model = response.json()
    answers = model_answers()
    filled = []
    for cell in model["content"]["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in answers and (which == "all" or grade_id in PARTIAL):
            cell["source"] = answers[grade_id]
            filled.append(grade_id)
    assert filled, f"no answer cell found in {user}'s fetched notebook"
    body = {"type": "notebook", "format": "json", "content": model["content"]}
    response = hub.call(user, "PUT", path, json=body)
    assert response.status_code == 200, (response.status_code, response.text[:2000])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def artifacts():
    return fresh_artifacts(ARTIFACTS)


@pytest.fixture(scope="module")
def hub(artifacts):
    """The class hub on free loopback ports, with the test roster's users; all removed afterwards."""
    if os.geteuid() != 0:
        pytest.fail("tests/test_hub.py must run as root (as CI does): it creates system users, "
                    "a shared exchange and starts JupyterHub, which starts servers as those users. "
                    "Run `sudo make test`, or leave it out with `ARGS=--ignore=tests/test_hub.py`.")
    for tool in ("useradd", "userdel", "runuser"):
        if not Path(classhub._tool(tool)).is_absolute():
            pytest.fail(f"{tool} not found: the hub test needs the system's account tools")
    setup = subprocess.run(["bash", str(REPO / "hub" / "setup.sh")], capture_output=True, text=True,
                           timeout=1800)
    assert setup.returncode == 0, "hub/setup.sh failed:\n" + setup.stdout[-3000:] + setup.stderr[-3000:]

    work = WORK_ROOT / uuid.uuid4().hex[:8]
    work.mkdir(parents=True)
    os.chmod(WORK_ROOT, 0o755)
    os.chmod(work, 0o755)
    state = work / "state"
    state.mkdir(mode=0o700)
    exchange = work / "exchange"
    roster = work / "roster.csv"
    with open(roster, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["username", "role"])
        writer.writerow([INSTRUCTOR, "instructor"])
        for student in STUDENTS:
            writer.writerow([student, "student"])
    people = classhub.read_roster(roster)

    proc = None
    log_path = state / "jupyterhub.log"
    try:
        classhub.remove_accounts(people)  # left over from an interrupted run
        classhub.create_accounts(people)
        # The folder exchange is prepared in both cases: the folder check uses it.
        classhub.prepare_exchange(exchange, INSTRUCTOR)
        port = free_port()
        password = secrets.token_urlsafe(12)
        service_token = secrets.token_hex(32)
        url = f"http://localhost:{port}"
        ngshare_admin = secrets.token_hex(32) if EXCHANGE_KIND == "service" else None
        env = classhub.hub_environment(state, exchange, roster, port, api_port=free_port(),
                                       proxy_api_port=free_port(), password=password,
                                       service_token=service_token, subdomain_host=url,
                                       exchange_kind=EXCHANGE_KIND, ngshare_port=free_port(),
                                       ngshare_admin_token=ngshare_admin)
        with open(log_path, "w") as log:
            proc = subprocess.Popen(classhub.hub_command(), cwd=state, env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
        if not classhub.wait_for_login(f"{url}/hub/login", proc):
            pytest.fail("JupyterHub did not start:\n" + log_path.read_text()[-4000:])
        ngshare = None
        if EXCHANGE_KIND == "service":
            ngshare = classhub.ngshare_url(env)
            if not classhub.wait_for_ngshare(ngshare):
                pytest.fail("the exchange service did not start:\n" + log_path.read_text()[-4000:])
            classhub.enrol_ngshare(ngshare, ngshare_admin, people)
        yield Hub(url, service_token, password, exchange, log_path, kind=EXCHANGE_KIND,
                  ngshare=ngshare, ngshare_admin=ngshare_admin, state=state)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log_path.exists():
            shutil.copy(log_path, artifacts / "jupyterhub.log")
        left = classhub.remove_accounts(people)
        shutil.rmtree(work, ignore_errors=True)
        for person in people:
            assert classhub._account(person.username) is None, f"{person.username} was not removed ({left})"


# --------------------------------------------------------------------------- the round trip


@pytest.fixture(scope="module")
def round_trip(hub, browser, artifacts):
    """Run the whole class round trip once; the tests below check its parts."""
    timings: dict[str, float] = {}
    everyone = [INSTRUCTOR, *STUDENTS]
    t0 = time.monotonic()
    timings["start 4 servers"] = hub.start_servers(everyone)

    # The instructor releases practical 1 into the exchange.
    t = time.monotonic()
    release = as_user(INSTRUCTOR, f"cd ~/{COURSE} && nbgrader release_assignment {ASSIGNMENT}",
                      **hub.exchange_env(INSTRUCTOR))
    timings["instructor: release"] = time.monotonic() - t

    per_student: dict[str, float] = {}
    listings: dict[str, dict] = {}
    # Students 1 and 2 through their servers' REST API.
    for student, which in STUDENTS.items():
        if student == BROWSER_STUDENT:
            continue
        t = time.monotonic()
        listings[student] = {"before fetch": assignment_status(hub, student)}
        assignment_action(hub, student, "fetch")
        listings[student]["after fetch"] = assignment_status(hub, student)
        answer_through_contents_api(hub, student, which)
        assignment_action(hub, student, "submit")
        listings[student]["after submit"] = assignment_status(hub, student)
        per_student[student] = time.monotonic() - t

    # Student 3 in a real browser.
    t = time.monotonic()
    browser_result = browser_fetch_and_submit(hub, browser, artifacts)
    per_student[BROWSER_STUDENT] = time.monotonic() - t
    listings[BROWSER_STUDENT] = {"after submit": assignment_status(hub, BROWSER_STUDENT)}

    # The instructor collects and grades with the course's command, then returns feedback.
    t = time.monotonic()
    collect = as_user(INSTRUCTOR, f"cd ~/{COURSE} && nbgrader collect {ASSIGNMENT}",
                      **hub.exchange_env(INSTRUCTOR))
    timings["instructor: collect"] = time.monotonic() - t
    t = time.monotonic()
    grading = as_user(INSTRUCTOR, f"cd ~/{COURSE} && PYTHONPATH=$HOME/{COURSE}/tools "
                      f"python -m coursetools.grading --course-dir . --assignment {ASSIGNMENT}",
                      **hub.exchange_env(INSTRUCTOR), check=False, timeout=600)
    timings["instructor: grade 3 submissions"] = time.monotonic() - t
    assert grading.returncode == 0, grading.stdout + grading.stderr
    t = time.monotonic()
    as_user(INSTRUCTOR, f"cd ~/{COURSE} && nbgrader release_feedback {ASSIGNMENT}",
            **hub.exchange_env(INSTRUCTOR))
    timings["instructor: release feedback"] = time.monotonic() - t
    grades_csv = as_user(INSTRUCTOR, f"cat ~/{COURSE}/grades.csv").stdout
    grading_report = json.loads(as_user(INSTRUCTOR, f"cat ~/{COURSE}/grading-report.json").stdout)
    grades = {row["student_id"]: row for row in csv.DictReader(grades_csv.splitlines())}

    # Each student fetches the feedback (student 3 in the browser).
    feedback: dict[str, str] = {}
    for student in STUDENTS:
        t = time.monotonic()
        if student == BROWSER_STUDENT:
            browser_result.update(browser_fetch_feedback(hub, browser, artifacts))
        else:
            assignment_action(hub, student, "fetch_feedback")
        per_student[student] += time.monotonic() - t
        feedback[student] = read_own_feedback(hub, student)
    timings["round trip (all)"] = time.monotonic() - t0

    return {"timings": timings, "per_student": per_student, "listings": listings,
            "release": release, "collect": collect, "grading": grading, "grades": grades,
            "grading_report": grading_report,
            "feedback": feedback, "browser": browser_result}


def read_own_feedback(hub: Hub, student: str) -> dict:
    """The feedback files in the student's own assignment folder, read through their server."""
    base = f"api/contents/{COURSE}/{ASSIGNMENT}/feedback"
    response = hub.call(student, "GET", base)
    assert response.status_code == 200, (student, response.status_code, response.text[:500])
    stamps = [item["name"] for item in response.json()["content"] if item["type"] == "directory"]
    assert len(stamps) == 1, (student, stamps)
    listing = hub.call(student, "GET", f"{base}/{stamps[0]}").json()["content"]
    files = sorted(item["name"] for item in listing)
    html = hub.call(student, "GET", f"{base}/{stamps[0]}/{ASSIGNMENT}.html",
                    params={"content": 1, "format": "text", "type": "file"}).json()["content"]
    return {"files": files, "html": html}


# --------------------------------------------------------------------------- the browser student


def _login(page, hub: Hub, user: str):
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", hub.password)
    page.click("#login_submit")


def _open_assignment_list(page):
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).click()
    page.locator(".lm-Menu-content .lm-Menu-itemLabel", has_text=re.compile("^Assignment List$")).first.click()
    panel = page.locator(".lm-DockPanel-widget:visible", has_text="Released assignments").first
    panel.wait_for()
    page.wait_for_function(
        """() => [...document.querySelectorAll('[id$="_assignments_list_loading"]')]
                   .every(e => e.offsetParent === null)""", timeout=60_000)
    return panel


def browser_fetch_and_submit(hub: Hub, browser, artifacts: Path) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(90_000)
    shots = artifacts / "browser"
    shots.mkdir(exist_ok=True)
    result: dict = {}
    try:
        _login(page, hub, BROWSER_STUDENT)
        page.wait_for_url(re.compile(rf"/user/{BROWSER_STUDENT}/lab"), timeout=120_000)
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).wait_for(timeout=120_000)
        page.screenshot(path=str(shots / "01-lab-after-login.png"))
        result["menus"] = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
        panel = _open_assignment_list(page)
        released = panel.locator("#released_assignments_list")
        released.locator(".list_item:not(.nested_list_item)", has_text=ASSIGNMENT).wait_for()
        page.screenshot(path=str(shots / "02-assignment-list-released.png"))
        result["released"] = released.inner_text()
        released.locator(".list_item:not(.nested_list_item)", has_text=ASSIGNMENT).locator("button", has_text="Fetch").click()
        fetched = panel.locator("#fetched_assignments_list")
        fetched.locator(".list_item:not(.nested_list_item)", has_text=ASSIGNMENT).wait_for()
        page.screenshot(path=str(shots / "03-fetched.png"))
        result["fetched"] = fetched.inner_text()
        fetched.locator(".list_item:not(.nested_list_item)", has_text=ASSIGNMENT).locator("button", has_text="Submit").first.click()
        submitted = panel.locator("#submitted_assignments_list")
        submitted.locator(".list_item:not(.nested_list_item)", has_text=ASSIGNMENT).wait_for()
        page.screenshot(path=str(shots / "04-submitted.png"))
        result["submitted"] = submitted.inner_text()
    except Exception:
        page.screenshot(path=str(shots / "failure-submit.png"))
        raise
    finally:
        context.close()
    return result


def browser_fetch_feedback(hub: Hub, browser, artifacts: Path) -> dict:
    shots = artifacts / "browser"
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(90_000)
    try:
        _login(page, hub, BROWSER_STUDENT)
        page.wait_for_url(re.compile(rf"/user/{BROWSER_STUDENT}/lab"), timeout=120_000)
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).wait_for(timeout=120_000)
        panel = _open_assignment_list(page)
        submitted = panel.locator("#submitted_assignments_list")
        item = submitted.locator(".list_item:not(.nested_list_item)", has_text=ASSIGNMENT).first
        item.wait_for()
        item.locator("button", has_text="Fetch Feedback").click()
        submitted.get_by_text("(view feedback)").first.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "05-feedback-fetched.png"))
        return {"after feedback": submitted.inner_text()}
    except Exception:
        page.screenshot(path=str(shots / "failure-feedback.png"))
        raise
    finally:
        context.close()


# --------------------------------------------------------------------------- tests


def test_instructors_have_formgrader_students_do_not(hub, round_trip):
    # The formgrader's own API answers the instructor with the course's assignments ...
    response = hub.call(INSTRUCTOR, "GET", "formgrader/api/assignments")
    assert response.status_code == 200, (response.status_code, response.headers.get("Location"))
    assert ASSIGNMENT in [a["name"] for a in response.json()], response.text[:1000]
    # JupyterLab shows it in a frame of the instructor's own page: allowed there only.
    page = hub.call(INSTRUCTOR, "GET", "formgrader/manage_assignments")
    assert page.status_code == 200 and "Manage Assignments" in page.text
    # Formgrader's guard (coursetools.grading.web): scripts only with the page's nonce,
    # framed only by the instructor's own server.
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'nonce-" in csp and "frame-ancestors 'self'" in csp, csp
    assert "object-src 'none'" in csp and "base-uri 'none'" in csp, csp
    nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<script nonce="{nonce}"' in page.text
    # Every person's server on a host name of its own: no student's page shares the
    # instructor's origin, and the instructor's cookies are for that host only.
    hosts = {urlsplit(hub.user_url(user, "")).netloc for user in [INSTRUCTOR, *STUDENTS]}
    assert len(hosts) == 1 + len(STUDENTS), hosts
    assert all("domain=" not in c.lower() for c in page.raw.headers.getlist("Set-Cookie")), \
        page.raw.headers.getlist("Set-Cookie")
    student_csp = hub.call(STUDENT1, "GET", "lab").headers["Content-Security-Policy"]
    assert student_csp.startswith("frame-ancestors 'none'"), student_csp
    # ... and does not exist on a student's server.
    for student in STUDENTS:
        response = hub.call(student, "GET", "formgrader/api/assignments")
        assert response.status_code == 404, (student, response.status_code)
    # The browser student's JupyterLab has the Nbgrader menu (assignment list).
    assert "Nbgrader" in round_trip["browser"]["menus"]
    # The hub gave the instructor's server the instructors' settings and the tutor tools.
    uid = classhub.pwd.getpwnam(INSTRUCTOR).pw_uid
    environs = [Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                for pid in classhub._pids_of(uid)
                if b"jupyterhub-singleuser" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(environs) == 1, environs
    env = dict(item.decode().split("=", 1) for item in environs[0] if b"=" in item)
    assert env["JUPYTER_CONFIG_PATH"] == str(classhub.PREFIX / "instructor-config")
    tools = Path(env["PYTHONPATH"])
    assert tools == Path(f"/home/{INSTRUCTOR}/{COURSE}/tools") and (tools / "coursetools" / "grading" / "__init__.py").exists()


def test_students_fetch_and_submit_through_the_exchange(round_trip):
    for student in (STUDENT1, STUDENT2):
        steps = round_trip["listings"][student]
        assert steps["before fetch"] == {"released": [ASSIGNMENT]}, steps
        assert steps["after fetch"] == {"fetched": [ASSIGNMENT]}, steps
        assert ASSIGNMENT in steps["after submit"].get("submitted", []), steps
    assert ASSIGNMENT in round_trip["listings"][BROWSER_STUDENT]["after submit"].get("submitted", [])
    browser = round_trip["browser"]
    assert ASSIGNMENT in browser["released"] and ASSIGNMENT in browser["fetched"]
    assert ASSIGNMENT in browser["submitted"]
    for student in STUDENTS:
        assert f"Collecting submission: {student} {ASSIGNMENT}" in round_trip["collect"].stderr, (
            round_trip["collect"].stderr)


def test_grades_and_feedback_reach_only_their_student(round_trip):
    auto, total = autograded_points()
    assert (auto, total) == (10, 14)
    grades = round_trip["grades"]
    assert set(grades) == set(STUDENTS), grades
    score = {s: float(grades[s]["score"]) for s in STUDENTS}
    for s in STUDENTS:
        assert float(grades[s]["max_score"]) == total
    # The written answers wait for the tutor; every automatic test of the full
    # answer passes, the two answered questions of the partial one (1 point
    # each), nothing of the blank one.
    assert score == {STUDENT1: auto, STUDENT2: 2.0, STUDENT3: 0.0}, grades
    print("\n" + round_trip["grading"].stdout)
    for student, fb in round_trip["feedback"].items():
        assert fb["files"] == [f"{ASSIGNMENT}.html"], (student, fb["files"])
        found = re.search(r"Score:\s*([0-9.]+)\s*/\s*([0-9.]+)", fb["html"])
        assert found, f"no score in {student}'s feedback"
        assert (float(found.group(1)), float(found.group(2))) == (score[student], total), (
            student, found.group(0))
        assert "BEGIN HIDDEN TESTS" not in fb["html"]
    assert "view feedback" in round_trip["browser"]["after feedback"].lower()


def test_students_cannot_read_each_other_or_the_instructor(hub, round_trip):
    checks = []
    for student in STUDENTS:
        others = [s for s in STUDENTS if s != student]
        forbidden = [f"ls /home/{other}" for other in others] + [
            f"cat /home/{other}/{COURSE}/{ASSIGNMENT}/{ASSIGNMENT}.ipynb" for other in others] + [
            f"ls /home/{INSTRUCTOR}",
            f"cat /home/{INSTRUCTOR}/{COURSE}/gradebook.db",
            f"cat /home/{INSTRUCTOR}/{COURSE}/solutions/{ASSIGNMENT}/{ASSIGNMENT}.ipynb",
            f"ls /home/{INSTRUCTOR}/{COURSE}/submitted",
        ]
        if hub.kind == "service":
            # The service's files and database: in the hub's state folder, root's only.
            forbidden += [f"ls {hub.state}", f"ls {hub.state}/ngshare/files"]
        else:
            forbidden += folder_exchange_forbidden(hub.exchange / COURSE)
        for command in forbidden:
            result = as_user(student, command, check=False)
            checks.append((student, command, result.returncode))
            assert result.returncode != 0 and "Permission denied" in result.stderr, (
                student, command, result.stdout[:300])
        as_user(student, f"cat ~/{COURSE}/{ASSIGNMENT}/{ASSIGNMENT}.ipynb > /dev/null")
        if hub.kind == "folder":
            folder_exchange_own_and_hidden(hub.exchange / COURSE, student, others, ASSIGNMENT)
    if hub.kind == "folder":
        exchange = hub.exchange / COURSE
        assert len(list((exchange / "inbound").iterdir())) == 3
        assert len(list((exchange / "feedback").iterdir())) == 3
    # Through the hub: one student's token does not open another student's server.
    for student in STUDENTS:
        for other in STUDENTS:
            if other != student:
                response = hub.call(other, "GET", "api/contents", as_user=student)
                assert response.status_code in (302, 403), (student, other, response.status_code)
    (ARTIFACTS / "isolation.json").write_text(json.dumps(checks, indent=1))


def folder_exchange_forbidden(exchange: Path) -> list[str]:
    """What no student may list in the shared folder: everyone's submissions and feedback."""
    return [f"ls {exchange}/inbound", f"ls {exchange}/feedback"]


def folder_exchange_own_and_hidden(exchange: Path, student: str, others: list[str], assignment: str):
    # Another student's submission cannot even be found: the names carry a
    # random part and the folder cannot be listed.
    for other in others:
        result = as_user(student, f"ls -d {exchange}/inbound/{other}+{assignment}+*", check=False)
        assert result.returncode != 0, (student, other, result.stdout)
    # The released work they can read.
    as_user(student, f"ls {exchange}/outbound/{assignment}")


def _refused(response: requests.Response) -> bool:
    """The exchange service said no: an error status and no success (never files)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    return response.status_code >= 400 and not body.get("success") and "files" not in body


def test_exchange_service_refuses_what_is_not_a_students(hub, round_trip):
    """Each student, with their own hub token, asks the service for what is not theirs."""
    if hub.kind != "service":
        pytest.skip("the round trip used the shared folder (MLM_HUB_TEST_EXCHANGE=folder)")
    course = COURSE
    listing = hub.ngshare_call("GET", f"submissions/{course}/{ASSIGNMENT}").json()
    assert listing["success"], listing
    stamps = {}
    for item in listing["submissions"]:
        stamps.setdefault(item["student_id"], []).append(item["timestamp"])
    assert set(stamps) == set(STUDENTS), stamps
    attempts = []
    for student in STUDENTS:
        others = [s for s in STUDENTS if s != student]
        # What is theirs they get: the released work, their own submissions and feedback.
        own = hub.ngshare_call("GET", f"assignment/{course}/{ASSIGNMENT}", student, params={"list_only": "true"})
        assert own.json().get("success"), own.text[:300]
        mine = hub.ngshare_call("GET", f"submissions/{course}/{ASSIGNMENT}/{student}", student).json()
        assert [s["timestamp"] for s in mine["submissions"]] == stamps[student], mine
        fb = hub.ngshare_call("GET", f"feedback/{course}/{ASSIGNMENT}/{student}", student,
                              params={"timestamp": stamps[student][-1], "list_only": "true"}).json()
        assert [f["path"] for f in fb["files"]] == [f"{ASSIGNMENT}.html"], fb
        tries = {
            "list every submission": ("GET", f"submissions/{course}/{ASSIGNMENT}", {}),
            "work not released": ("GET", f"assignment/{course}/{FOLDER_ASSIGNMENT}", {}),
            "release work": ("POST", f"assignment/{course}/{student}-work",
                             {"data": {"files": json.dumps([{"path": "a.ipynb", "content": "e30=\n"}])}}),
            "withdraw the released work": ("DELETE", f"assignment/{course}/{ASSIGNMENT}", {}),
            "enrol as instructor": ("POST", f"instructor/{course}/{student}",
                                    {"data": {"first_name": "x", "last_name": "x", "email": "x"}}),
            "read the roster": ("GET", f"students/{course}", {}),
        }
        for other in others:
            tries.update({
                f"list {other}'s submissions": ("GET", f"submissions/{course}/{ASSIGNMENT}/{other}", {}),
                f"download {other}'s submission": ("GET", f"submission/{course}/{ASSIGNMENT}/{other}", {}),
                f"fetch {other}'s feedback": ("GET", f"feedback/{course}/{ASSIGNMENT}/{other}",
                                              {"params": {"timestamp": stamps[other][-1]}}),
                f"write {other}'s feedback": ("POST", f"feedback/{course}/{ASSIGNMENT}/{other}",
                                              {"data": {"timestamp": stamps[other][-1], "files": "[]"}}),
                f"unenrol {other}": ("DELETE", f"student/{course}/{other}", {}),
            })
        for what, (method, path, kw) in tries.items():
            response = hub.ngshare_call(method, path, student, **kw)
            attempts.append((student, what, response.status_code))
            assert _refused(response), (student, what, response.status_code, response.text[:300])
    # Without a hub token, or with one the hub did not issue, nothing at all.
    for token in ("", secrets.token_hex(32)):
        response = hub.ngshare_call("GET", f"assignment/{course}/{ASSIGNMENT}", token=token)
        attempts.append(("no valid token", "fetch the released work", response.status_code))
        assert _refused(response) and response.status_code == 403, (response.status_code, response.text[:300])

    # Submitting as another student: nbgrader's own submit, in a terminal of
    # student 1, claiming student 2's name - the service files it as student 1's.
    env = hub.exchange_env(STUDENT1)
    env["env_extra"] = [e for e in env["env_extra"] if not e.startswith("JUPYTERHUB_USER=")]
    env["env_extra"].append(f"JUPYTERHUB_USER={STUDENT2}")
    as_user(STUDENT1, f"cd ~ && nbgrader submit {ASSIGNMENT} --course {COURSE}", **env)
    # ... and so does a call that names student 2 as the user.
    forged = hub.ngshare_call("POST", f"submission/{course}/{ASSIGNMENT}", STUDENT1,
                              data={"user": STUDENT2, "files": json.dumps(
                                  [{"path": f"{ASSIGNMENT}.ipynb", "content": "e30=\n"}])})
    assert forged.json().get("success"), forged.text[:300]
    after = {}
    for item in hub.ngshare_call("GET", f"submissions/{course}/{ASSIGNMENT}").json()["submissions"]:
        after.setdefault(item["student_id"], []).append(item["timestamp"])
    assert after[STUDENT2] == stamps[STUDENT2], (after, stamps)
    assert len(after[STUDENT1]) == len(stamps[STUDENT1]) + 2, (after, stamps)
    attempts.append((STUDENT1, f"submit as {STUDENT2}", "filed as the sender's"))
    (ARTIFACTS / "exchange-service-refusals.json").write_text(json.dumps(attempts, indent=1))


def test_folder_exchange_round_trip_and_permissions(hub, round_trip):
    """The shared folder exchange, without the hub: release, fetch, submit, collect, feedback."""
    if hub.kind == "folder":
        pytest.skip("the hub's round trip used the folder exchange")
    exchange = hub.exchange / COURSE
    folder = {"exchange": hub.exchange}
    students = [STUDENT1, STUDENT2]
    as_user(INSTRUCTOR, f"cd ~/{COURSE} && nbgrader release_assignment {FOLDER_ASSIGNMENT}", **folder)
    for student in students:
        as_user(student, f"cd ~ && nbgrader fetch_assignment {FOLDER_ASSIGNMENT} && "
                f"nbgrader submit {FOLDER_ASSIGNMENT}", **folder)
    collect = as_user(INSTRUCTOR, f"cd ~/{COURSE} && nbgrader collect {FOLDER_ASSIGNMENT}", **folder)
    for student in students:
        assert f"Collecting submission: {student} {FOLDER_ASSIGNMENT}" in collect.stderr, collect.stderr
    # Feedback: one page per student (grading is the round trip's part), released as nbgrader does.
    pages = " && ".join(
        f"mkdir -p feedback/{s}/{FOLDER_ASSIGNMENT} && "
        f"cp submitted/{s}/{FOLDER_ASSIGNMENT}/timestamp.txt submitted/{s}/{FOLDER_ASSIGNMENT}/submission_secret.txt "
        f"feedback/{s}/{FOLDER_ASSIGNMENT}/ && "
        f"echo '<p>feedback for {s}</p>' > feedback/{s}/{FOLDER_ASSIGNMENT}/{FOLDER_ASSIGNMENT}.html"
        for s in students)
    as_user(INSTRUCTOR, f"cd ~/{COURSE} && {pages} && nbgrader release_feedback {FOLDER_ASSIGNMENT}", **folder)
    for student in students:
        as_user(student, f"cd ~ && nbgrader fetch_feedback {FOLDER_ASSIGNMENT}", **folder)
        got = as_user(student, f"cat ~/{COURSE}/{FOLDER_ASSIGNMENT}/feedback/*/{FOLDER_ASSIGNMENT}.html").stdout
        assert got.strip() == f"<p>feedback for {student}</p>", (student, got)
    assert len(list((exchange / "inbound").iterdir())) == 2
    assert len(list((exchange / "feedback").iterdir())) == 2
    for student in STUDENTS:
        others = [s for s in STUDENTS if s != student]
        for command in folder_exchange_forbidden(exchange):
            result = as_user(student, command, check=False)
            assert result.returncode != 0 and "Permission denied" in result.stderr, (student, command)
        folder_exchange_own_and_hidden(exchange, student, others, FOLDER_ASSIGNMENT)


def test_round_trip_time_and_memory(hub, round_trip):
    """Time per student, and the memory of a user's server with practical 1 run in its kernel."""
    memory = measure_memory(hub, STUDENT1)
    timings = round_trip["timings"]
    per_student = round_trip["per_student"]
    report = {"exchange": hub.kind,
              "timings_s": {k: round(v, 1) for k, v in timings.items()},
              "per_student_s": {k: round(v, 1) for k, v in per_student.items()},
              "memory_mib": memory}
    (ARTIFACTS / "measurements.json").write_text(json.dumps(report, indent=1))
    print("\nhub round trip:", json.dumps(report, indent=1))
    # Grading: each submission's own steps (grading-report.json: sandbox, execution,
    # tests, nbgrader's autograde and feedback) and what the run costs once
    # (starting, the gradebook), from the command's wall clock.
    steps = [sum(v for k, v in entry["seconds"].items() if k != "waiting for the gradebook")
             for entry in round_trip["grading_report"]["submissions"] if entry["assignment"] == ASSIGNMENT]
    assert len(steps) == len(STUDENTS), round_trip["grading_report"]
    run = timings["instructor: grade 3 submissions"]
    at_once = re.search(r"(\d+) at once", round_trip["grading"].stdout)
    jobs = int(at_once.group(1)) if at_once else 1
    per_submission = sum(steps) / len(steps)
    capacity = class_capacity(per_submission, memory["total"], jobs=jobs,
                              run_fixed_s=max(0.0, run - sum(steps) / jobs))
    capacity["grading_run_s"] = {"submissions": len(steps), "jobs": jobs, "seconds": round(run, 1)}
    capacity["exchange"] = hub.kind
    capacity["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    CAPACITY.parent.mkdir(exist_ok=True)
    CAPACITY.write_text(json.dumps(capacity, indent=1) + "\n")
    print("\nclass capacity (build/hub-capacity.json):\n" + capacity_table(capacity))
    # The whole class round trip (3 students) stays within the suite's budget.
    assert timings["round trip (all)"] < 300, timings
    assert 50 < memory["server"] < 1000 and 50 < memory["kernel_peak"] < 2000, memory


def measure_memory(hub: Hub, student: str) -> dict:
    """Run the student's answered practical 1 in a kernel of their server; read RSS from /proc."""
    uid = classhub.pwd.getpwnam(student).pw_uid
    response = hub.call(student, "POST", "api/kernels", json={"name": "python3"})
    assert response.status_code == 201, (response.status_code, response.text[:500])
    kernel_id = response.json()["id"]
    try:
        run_in_kernel(hub, student, kernel_id)
        server = kernel = 0
        for pid in classhub._pids_of(uid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
            rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
            if "jupyterhub-singleuser" in cmdline:
                server = rss
            elif "ipykernel" in cmdline and kernel_id in cmdline:
                kernel = hwm
        return {"server": round(server), "kernel_peak": round(kernel), "total": round(server + kernel)}
    finally:
        hub.call(student, "DELETE", f"api/kernels/{kernel_id}")


def run_in_kernel(hub: Hub, student: str, kernel_id: str, timeout: float = 180) -> None:
    """Execute every code cell of the student's notebook in the kernel over its websocket."""
    import websocket  # websocket-client, a dependency of jupyter_server

    nb = hub.call(student, "GET", f"api/contents/{COURSE}/{ASSIGNMENT}/{ASSIGNMENT}.ipynb",
                  params={"content": 1}).json()["content"]
    token = hub.session(student).headers["Authorization"].split()[1]
    ws_url = hub.user_url(student, f"api/kernels/{kernel_id}/channels").replace("http://", "ws://")
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=timeout)
    session = uuid.uuid4().hex
    try:
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            msg_id = uuid.uuid4().hex
            ws.send(json.dumps({
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": student,
                           "session": session, "version": "5.3", "date": ""},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": "".join(cell["source"]), "silent": False, "store_history": False,
                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
            }))
            while True:
                reply = json.loads(ws.recv())
                if reply.get("parent_header", {}).get("msg_id") == msg_id and \
                        reply["header"]["msg_type"] == "execute_reply":
                    assert reply["content"]["status"] == "ok", reply["content"]
                    break
    finally:
        ws.close()


# --------------------------------------------------------------------------- capacity

# What the class-size table assumes besides the two measurements: the hub, the
# proxy and the system take 2 GB; one core keeps ten students' model fits at
# a few seconds each; grading runs as many submissions at once as it did here.
BASE_GIB = 2.0
STUDENTS_PER_CORE = 10
CLASS_SIZES = (30, 100, 300)


def class_capacity(grading_s_per_submission: float, user_mib: float, jobs: int = 1,
                   run_fixed_s: float = 0.0) -> dict:
    """The class-size table from grading seconds per submission and a working student's MiB.

    ``jobs``: submissions graded at once (the grading command's default is one
    per core); ``run_fixed_s``: what one grading run costs whatever the class size.
    """
    rows = []
    for size in CLASS_SIZES:
        rows.append({
            "students": size,
            "memory_gib": round(BASE_GIB + size * user_mib / 1024, 1),
            "cores": max(2, -(-size // STUDENTS_PER_CORE)),
            "grading_minutes": round((run_fixed_s + size * grading_s_per_submission / jobs) / 60, 1),
        })
    return {"grading_s_per_submission": round(grading_s_per_submission, 2),
            "grading_run_fixed_s": round(run_fixed_s, 1),
            "user_memory_mib": round(user_mib),
            "assumptions": {"base_gib": BASE_GIB, "students_per_core": STUDENTS_PER_CORE,
                            "grading_jobs": jobs},
            "classes": rows}


def capacity_table(capacity: dict) -> str:
    lines = [f"grading {capacity['grading_s_per_submission']} s per submission "
             f"(+ {capacity['grading_run_fixed_s']} s per run, "
             f"{capacity['assumptions']['grading_jobs']} at once), "
             f"{capacity['user_memory_mib']} MiB per working student",
             "| class | memory | cores | autograding one practical |", "|---|---|---|---|"]
    for row in capacity["classes"]:
        lines.append(f"| {row['students']} | {row['memory_gib']} GB | {row['cores']} | "
                     f"{row['grading_minutes']} minutes |")
    return "\n".join(lines)
