"""Log-in from the learning platform: LTI 1.3 launches into a real JupyterHub.

The test plays the learning platform.  It makes an RSA key pair, serves the
public key as a JSON Web Key Set (JWKS) and an authorisation endpoint on
loopback, and launches people into a JupyterHub process that runs
``hub/jupyterhub_config.py`` with ``MLM_HUB_AUTH=lti13`` (jupyterhub-
ltiauthenticator's ``LTI13Authenticator`` and ``hub/lti_login.py``), as Moodle
and Canvas do:

1. the platform posts an OpenID Connect *login initiation* to
   ``/hub/lti13/oauth_login`` (iss, login_hint, target_link_uri,
   lti_message_hint, client_id, lti_deployment_id);
2. the hub sends the browser to the platform's authorisation endpoint with a
   state and a nonce (cookies keep both);
3. the platform answers with a page that posts a signed ``id_token`` (RS256,
   the LTI resource-link claims, the person's roles in the course) and the
   state back to ``/hub/lti13/oauth_callback``;
4. the hub checks it and logs the person in.

A student and an instructor log in; the hub's REST API (an admin token) shows
their groups, which follow the roles the platform sends.  A launch with a
bad signature, another audience, an expired token, a replayed token or from
another course, or of a person not on the roster, is refused.  No server is
spawned: the hub runs without root, with an in-memory proxy, and the test
talks to the hub's own port.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from _labserver import free_port, stop
from cryptography.hazmat.primitives.asymmetric import rsa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hub"))
import lti_login  # noqa: E402 - hub/lti_login.py

LIS = "http://purl.imsglobal.org/vocab/lis/v2"
LEARNER = f"{LIS}/membership#Learner"
INSTRUCTOR = f"{LIS}/membership#Instructor"
CLAIM = "https://purl.imsglobal.org/spec/lti/claim"
CLIENT_ID = "mlm-hub-client"
OTHER_CLIENT_ID = "another-tool"
DEPLOYMENT_ID = "1"
COURSE_CONTEXT = "course-42"
ROSTER = "username,role\nmlm-tutor,instructor\nmlm-student1,student\nmlm-student2,student\n"

# Roles as the platforms send them.  Moodle: a teacher's context role (plus an
# institution role for a site administrator); a student's.  Canvas adds
# institution and system roles beside the context one.
MOODLE_STUDENT_ROLES = [LEARNER]
MOODLE_TEACHER_ROLES = [f"{LIS}/institution/person#Administrator", INSTRUCTOR]
CANVAS_TEACHER_ROLES = [f"{LIS}/institution/person#Instructor", INSTRUCTOR, f"{LIS}/system/person#User"]
# A lecturer elsewhere in the university who takes this course: a learner here.
CANVAS_LECTURER_AS_STUDENT = [f"{LIS}/institution/person#Instructor", LEARNER, f"{LIS}/system/person#User"]


class Platform:
    """The simulated learning platform: keys, JWKS endpoint, authorisation endpoint."""

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "platform-key-1"
        self.forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.launches: dict[str, dict] = {}  # login_hint -> what to put in the id_token
        self.auth_requests: list[dict] = []
        self.jwks_fetches = 0
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status, body: bytes, ctype: str):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urlsplit(self.path)
                if url.path == "/mod/lti/certs.php":
                    platform.jwks_fetches += 1
                    self._send(200, json.dumps(platform.jwks()).encode(), "application/json")
                elif url.path == "/mod/lti/auth.php":
                    args = {k: v[0] for k, v in parse_qs(url.query).items()}
                    platform.auth_requests.append(args)
                    status, page = platform.authorize(args)
                    self._send(status, page.encode(), "text/html; charset=utf-8")
                else:
                    self._send(404, b"not found", "text/plain")

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- what the platform publishes
    def jwks(self) -> dict:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        public.update(kid=self.kid, alg="RS256", use="sig")
        return {"keys": [public]}

    @property
    def auth_url(self):
        return f"{self.issuer}/mod/lti/auth.php"

    @property
    def jwks_url(self):
        return f"{self.issuer}/mod/lti/certs.php"

    # --- the authorisation endpoint: the signed id_token, in a self-posting form
    def authorize(self, args: dict) -> tuple[int, str]:
        for name, want in (("scope", "openid"), ("response_type", "id_token"),
                           ("response_mode", "form_post"), ("prompt", "none")):
            if args.get(name) != want:
                return 400, f"bad {name}"
        launch = self.launches.get(args.get("login_hint", ""))
        if launch is None or args.get("client_id") != CLIENT_ID:
            return 400, "unknown user or client"
        if args.get("lti_message_hint") != launch["message_hint"]:
            return 400, "lti_message_hint not returned unaltered"
        token = self.id_token(launch, args["nonce"])
        redirect = html.escape(args["redirect_uri"], quote=True)
        state = html.escape(args["state"], quote=True)
        return 200, (f'<html><body onload="document.forms[0].submit()"><form method="post" action="{redirect}">'
                     f'<input type="hidden" name="id_token" value="{token}">'
                     f'<input type="hidden" name="state" value="{state}"></form></body></html>')

    def id_token(self, launch: dict, nonce: str) -> str:
        now = int(time.time())
        user = launch["user"]
        claims = {
            "iss": self.issuer, "sub": user["sub"], "aud": launch.get("aud", CLIENT_ID),
            "iat": now - 5, "exp": now + 60, "nonce": launch.get("nonce", nonce),
            "name": user["name"], "given_name": user["name"].split()[0],
            "family_name": user["name"].split()[-1], "email": user["email"],
            f"{CLAIM}/message_type": "LtiResourceLinkRequest",
            f"{CLAIM}/version": "1.3.0",
            f"{CLAIM}/deployment_id": DEPLOYMENT_ID,
            f"{CLAIM}/target_link_uri": launch["target"],
            f"{CLAIM}/resource_link": {"id": "practicals-link", "title": "Practicals (JupyterHub)"},
            f"{CLAIM}/roles": launch["roles"],
            f"{CLAIM}/context": {"id": launch.get("context", COURSE_CONTEXT), "label": "MLM",
                                 "title": "Introduction to Multilevel Modelling",
                                 "type": [f"{LIS}/course#CourseOffering"]},
            # The tool's custom parameter username=$User.username (Moodle) /
            # $Canvas.user.loginId (Canvas): the hub's user name.
            f"{CLAIM}/custom": {"username": user["login"]},
        }
        if launch.get("expired"):
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        claims.update(launch.get("extra", {}))
        key = self.forger if launch.get("forged") else self.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})


class HubInMemoryProxy:
    """The proxy the test's hub uses: routes kept in memory, nothing started."""

    CODE = '''
from jupyterhub.proxy import Proxy


class InMemoryProxy(Proxy):
    """No proxy process: the test talks to the hub's own port, and no server is spawned."""

    should_start = False

    def __init__(self, **kw):
        super().__init__(**kw)
        self.routes = {}

    async def add_route(self, routespec, target, data):
        self.routes[routespec] = {"routespec": routespec, "target": target, "data": data}

    async def delete_route(self, routespec):
        self.routes.pop(routespec, None)

    async def get_all_routes(self):
        return dict(self.routes)
'''


@pytest.fixture(scope="module")
def platform():
    p = Platform()
    p.thread.start()
    yield p
    p.server.shutdown()


@pytest.fixture(scope="module")
def hub(platform, tmp_path_factory):
    """JupyterHub with hub/jupyterhub_config.py and MLM_HUB_AUTH=lti13, on loopback."""
    root = tmp_path_factory.mktemp("lti-hub")
    state = root / "state"
    state.mkdir(mode=0o700)
    (root / "roster.csv").write_text(ROSTER)
    (root / "testproxy.py").write_text(HubInMemoryProxy.CODE)
    (root / "test_config.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        f"load_subconfig({str(REPO / 'hub' / 'jupyterhub_config.py')!r})\n"
        "c = get_config()\n"
        "from testproxy import InMemoryProxy\n"
        "c.JupyterHub.proxy_class = InMemoryProxy\n"
        # nothing is spawned; a spawner that needs no root
        "c.JupyterHub.spawner_class = 'simple'\n"
        "c.JupyterHub.implicit_spawn_seconds = 0\n"
        "c.LTI13LaunchValidator.time_leeway = 5\n"
    )
    port, api_port = free_port(), free_port()
    token = secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLM_HUB", "JUPYTERHUB"))}
    env.update(
        MLM_HUB_PREFIX=str(root / "prefix"), MLM_HUB_STATE=str(state),
        MLM_EXCHANGE_ROOT=str(root / "exchange"), MLM_HUB_ROSTER=str(root / "roster.csv"),
        MLM_HUB_IP="127.0.0.1", MLM_HUB_PORT=str(port), MLM_HUB_API_PORT=str(api_port),
        MLM_HUB_PROXY_API_PORT=str(free_port()), MLM_HUB_SERVICE_TOKEN=token,
        MLM_HUB_AUTH="lti13",
        MLM_HUB_LTI_ISSUER=platform.issuer, MLM_HUB_LTI_CLIENT_ID=f"{CLIENT_ID}, other-registration",
        MLM_HUB_LTI_AUTHORIZE_URL=platform.auth_url, MLM_HUB_LTI_JWKS_URL=platform.jwks_url,
        MLM_HUB_LTI_CONTEXT_ID=COURSE_CONTEXT,
        PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    )
    log_path = root / "jupyterhub.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "jupyterhub"), "-f", str(root / "test_config.py")],
                            cwd=state, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterHub did not start; its log ends with:\n{log_path.read_text()[-4000:]}")
            try:
                if requests.get(f"{url}/hub/api/", timeout=3).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        yield {"url": url, "token": token, "log": log_path}
    finally:
        stop(proc, timeout=20)
        log.close()


USERS = {
    "student1": {"login": "mlm-student1", "sub": "moodle-user-31", "name": "Sam Student",
                 "email": "sam@uni.example"},
    "student2": {"login": "mlm-student2", "sub": "canvas-user-77", "name": "Lee Lecturer",
                 "email": "lee@uni.example"},
    "tutor": {"login": "mlm-tutor", "sub": "moodle-user-2", "name": "Tess Tutor",
              "email": "tess@uni.example"},
    "stranger": {"login": "mlm-stranger", "sub": "moodle-user-99", "name": "Not Enrolled",
                 "email": "x@uni.example"},
}


def launch(platform, hub, user: str, roles, **tamper) -> requests.Response:
    """One LTI 1.3 launch in a fresh browser; returns the hub's answer to the id_token post."""
    hint = secrets.token_hex(8)
    target = f"{hub['url']}/hub/home"
    platform.launches[hint] = {"user": USERS[user], "roles": roles, "target": target,
                               "message_hint": secrets.token_hex(6), **tamper}
    browser = requests.Session()
    # 1. login initiation (a form post from the platform's page, as Moodle and Canvas do)
    init = browser.post(f"{hub['url']}/hub/lti13/oauth_login", allow_redirects=False, timeout=30, data={
        "iss": platform.issuer, "login_hint": hint, "target_link_uri": target,
        "lti_message_hint": platform.launches[hint]["message_hint"], "client_id": CLIENT_ID,
        "lti_deployment_id": DEPLOYMENT_ID})
    assert init.status_code == 302, init.text
    assert init.headers["Location"].startswith(platform.auth_url)
    # 2. the platform's authorisation endpoint answers with the self-posting form
    page = browser.get(init.headers["Location"], allow_redirects=False, timeout=30)
    assert page.status_code == 200, page.text
    action = html.unescape(re.search(r'action="([^"]+)"', page.text).group(1))
    fields = {name: html.unescape(value)
              for name, value in re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)}
    assert action == f"{hub['url']}/hub/lti13/oauth_callback"
    # 3. the id_token to the hub
    answer = browser.post(action, data=fields, allow_redirects=False, timeout=30)
    answer.browser = browser
    answer.id_token = fields["id_token"]
    answer.state = fields["state"]
    return answer


def api_user(hub, name: str):
    r = requests.get(f"{hub['url']}/hub/api/users/{name}", timeout=30,
                     headers={"Authorization": f"token {hub['token']}"})
    return r.json() if r.status_code == 200 else None


def _logged_since(hub, before: str, text: str, timeout: float = 10) -> bool:
    """Whether the hub's log says ``text`` after ``before`` (its log is written just after the answer)."""
    deadline = time.monotonic() + timeout
    while text not in hub["log"].read_text()[len(before):]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_roles_decide_the_group():
    assert lti_login.groups_for_roles(MOODLE_TEACHER_ROLES) == ["instructors"]
    assert lti_login.groups_for_roles(CANVAS_TEACHER_ROLES) == ["instructors"]
    assert lti_login.groups_for_roles([f"{LIS}/membership/Instructor#TeachingAssistant"]) == ["instructors"]
    assert lti_login.groups_for_roles(["Instructor"]) == ["instructors"]
    assert lti_login.groups_for_roles(MOODLE_STUDENT_ROLES) == ["students"]
    assert lti_login.groups_for_roles(CANVAS_LECTURER_AS_STUDENT) == ["students"]
    assert lti_login.groups_for_roles([f"{LIS}/membership#InstructorX"]) == ["students"]
    assert lti_login.groups_for_roles(None) == ["students"]


def test_student_and_instructor_log_in_with_their_groups(platform, hub):
    student = launch(platform, hub, "student1", MOODLE_STUDENT_ROLES)
    assert student.status_code == 302, student.text
    assert student.headers["Location"].endswith("/hub/home")
    assert any(c.name.startswith("jupyterhub-") for c in student.browser.cookies)
    assert api_user(hub, "mlm-student1")["groups"] == ["students"]

    tutor = launch(platform, hub, "tutor", CANVAS_TEACHER_ROLES)
    assert tutor.status_code == 302, tutor.text
    assert api_user(hub, "mlm-tutor")["groups"] == ["instructors"]

    # An instructor role elsewhere in the university does not make a student an instructor.
    lecturer = launch(platform, hub, "student2", CANVAS_LECTURER_AS_STUDENT)
    assert lecturer.status_code == 302, lecturer.text
    assert api_user(hub, "mlm-student2")["groups"] == ["students"]

    # The platform's roles are followed at each launch: a student made a TA becomes an instructor.
    again = launch(platform, hub, "student2", [f"{LIS}/membership/Instructor#TeachingAssistant"])
    assert again.status_code == 302, again.text
    assert api_user(hub, "mlm-student2")["groups"] == ["instructors"]
    back = launch(platform, hub, "student2", MOODLE_STUDENT_ROLES)
    assert back.status_code == 302
    assert api_user(hub, "mlm-student2")["groups"] == ["students"]
    assert platform.jwks_fetches >= 5  # every signature checked against the published keys


@pytest.mark.parametrize("tamper, status, why", [
    # signed with a key the platform never published
    ({"forged": True}, 400, "Signature verification failed"),
    # meant for another tool
    ({"aud": OTHER_CLIENT_ID}, 401, "Audience doesn't match"),
    # expired an hour ago
    ({"expired": True}, 400, "Signature has expired"),
    # a token made for another log-in
    ({"nonce": "not-the-hubs-nonce"}, 400, "OAuth nonce mismatch"),
    # launched from another course of the platform
    ({"context": "course-7"}, 403, "from course 'course-7' refused"),
], ids=["bad-signature", "wrong-audience", "expired", "wrong-nonce", "other-course"])
def test_bad_launches_are_refused(platform, hub, tamper, status, why):
    before = hub["log"].read_text()
    answer = launch(platform, hub, "student1", MOODLE_STUDENT_ROLES, **tamper)
    assert answer.status_code == status, answer.text[:500]
    assert not any(c.name == "jupyterhub-hub-login" for c in answer.browser.cookies)
    assert _logged_since(hub, before, why), f"the hub's log does not say {why!r}"


def test_person_not_on_the_roster_is_refused(platform, hub):
    before = hub["log"].read_text()
    answer = launch(platform, hub, "stranger", MOODLE_STUDENT_ROLES)
    assert answer.status_code == 403, answer.text[:500]
    assert _logged_since(hub, before, "User 'mlm-stranger' not allowed")
    assert api_user(hub, "mlm-stranger") is None


def test_a_replayed_id_token_is_refused(platform, hub):
    """The same id_token posted again (its state and nonce cookies are used up) logs nobody in."""
    first = launch(platform, hub, "student1", MOODLE_STUDENT_ROLES)
    assert first.status_code == 302
    thief = requests.Session()
    replay = thief.post(f"{hub['url']}/hub/lti13/oauth_callback", allow_redirects=False, timeout=30,
                        data={"id_token": first.id_token, "state": first.state})
    assert replay.status_code == 400
    assert not any(c.name == "jupyterhub-hub-login" for c in thief.cookies)


def test_the_launch_cookies_survive_a_cross_site_post(platform, hub):
    """Behind HTTPS (the proxy says so) the state and nonce cookies are SameSite=None; Secure."""
    hint = secrets.token_hex(8)
    platform.launches[hint] = {"user": USERS["student1"], "roles": MOODLE_STUDENT_ROLES,
                               "target": f"{hub['url']}/hub/home", "message_hint": "m"}
    init = requests.post(f"{hub['url']}/hub/lti13/oauth_login", allow_redirects=False, timeout=30,
                         headers={"X-Forwarded-Proto": "https"},
                         data={"iss": platform.issuer, "login_hint": hint, "target_link_uri": f"{hub['url']}/hub/home",
                               "lti_message_hint": "m", "client_id": CLIENT_ID})
    assert init.status_code == 302, init.text
    cookies = [v for k, v in init.raw.headers.items() if k.lower() == "set-cookie"]
    lti_cookies = [c for c in cookies if c.startswith("lti13authenticator-")]
    assert len(lti_cookies) == 2, cookies
    for cookie in lti_cookies:
        attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
        assert {"samesite=none", "secure", "httponly"} <= attributes, cookie
    # Over plain HTTP (this test's other launches) the browser's default stays.
    plain = requests.post(f"{hub['url']}/hub/lti13/oauth_login", allow_redirects=False, timeout=30,
                          data={"iss": platform.issuer, "login_hint": hint, "target_link_uri": "x",
                                "client_id": CLIENT_ID})
    assert "samesite" not in plain.headers.get("Set-Cookie", "").lower()


def test_the_tool_configuration_for_the_platform(hub):
    """The JSON a platform (Canvas) can install the tool from names the hub's log-in URL."""
    config = requests.get(f"{hub['url']}/hub/lti13/config", timeout=30).json()
    assert config["oidc_initiation_url"].endswith("/hub/lti13/oauth_login")


def test_lti_needs_the_platforms_settings_and_make_hub_passes_them(monkeypatch):
    class Section(dict):
        def __getattr__(self, name):
            return self.setdefault(name, Section())

        def __setattr__(self, name, value):
            self[name] = value

    with pytest.raises(ValueError, match="MLM_HUB_LTI_JWKS_URL"):
        lti_login.configure(Section(), {"MLM_HUB_LTI_ISSUER": "https://vle", "MLM_HUB_LTI_CLIENT_ID": "x",
                                        "MLM_HUB_LTI_AUTHORIZE_URL": "https://vle/auth"})
    c = Section()
    lti_login.configure(c, {"MLM_HUB_LTI_ISSUER": "https://vle", "MLM_HUB_LTI_CLIENT_ID": " a, b ",
                            "MLM_HUB_LTI_AUTHORIZE_URL": "https://vle/auth", "MLM_HUB_LTI_JWKS_URL": "https://vle/jwks"})
    assert c.LTI13Authenticator.client_id == {"a", "b"} and c.Authenticator.allow_all is True
    assert c.LTI13Authenticator.username_key == "custom_username" and c.Authenticator.manage_groups is True
    # `make hub` (hub/classhub.py) starts the hub with a clean environment, but keeps the log-in's settings.
    import classhub

    monkeypatch.setenv("MLM_HUB_AUTH", "lti13")
    monkeypatch.setenv("MLM_HUB_LTI_ISSUER", "https://vle")
    monkeypatch.setenv("MLM_HUB_STATE", "/elsewhere")
    env = classhub.hub_environment(Path("/s"), Path("/x"), Path("/r.csv"), 8000)
    assert env["MLM_HUB_AUTH"] == "lti13" and env["MLM_HUB_LTI_ISSUER"] == "https://vle"
    assert env["MLM_HUB_STATE"] == "/s"
