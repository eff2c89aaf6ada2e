"""JupyterHub configuration for one class of the multilevel course.

Started by ``make hub`` (``hub/run.py``) and by ``tests/test_hub.py``; every
setting a run may change comes from an environment variable, so the test and
a trial run use this same file.

* Accounts: one system user per person (``hub/run.py`` creates them from the
  roster file), each with a private home folder (mode 0700).  The hub runs as
  root and starts each person's server as that person
  (``LocalProcessSpawner``), so file permissions between people are real.
* Groups: the roster's ``role`` column.  ``instructors`` get nbgrader's
  formgrader and "create assignment" tools; ``students`` do not.
* What each server runs: the environment ``hub/setup.sh`` built in
  ``$MLM_HUB_PREFIX/user`` (the course's pinned packages, the helper library).
* nbgrader, course id ``multilevel``, with one of two exchanges
  (``$MLM_EXCHANGE``): ``folder`` (the default), a folder every account
  shares (``$MLM_EXCHANGE_ROOT``); or ``service``, the ngshare service that
  the hub starts (``hub/ngshare_service.py``, its files and database in the
  hub's state folder) and that every server reaches with its own hub token
  through nbgrader's ngshare plug-in (``ngshare_exchange``).  The course and
  its enrolment in ngshare are made by ``hub/classhub.py`` (and the test)
  with the token of the ``ngshare-roster`` service, ngshare's only admin.
* Each person's server on a host name of its own (``MLM_HUB_SUBDOMAIN_HOST``,
  e.g. ``https://hub.example.org``: servers at
  ``https://<user>.hub.example.org``), so that no page a student's server
  serves shares an origin with an instructor's (or another student's)
  server: a script there cannot call their APIs with their cookies.
  ``make hub`` uses ``http://localhost:PORT`` (browsers send every
  ``*.localhost`` name to this machine); a real class needs a wildcard DNS
  record and certificate.  Without it every server shares the hub's origin
  (README, "Running a class").
* Authentication for a trial: one shared password for the class
  (``$MLM_HUB_PASSWORD``), and only the roster's users may log in.  For a
  real class set ``MLM_HUB_AUTH=pam`` (the machine's own passwords) or
  ``MLM_HUB_AUTH=lti13``: log-in from the learning platform, whose roles in
  the course decide the groups (``hub/lti_login.py``, with its ``MLM_HUB_LTI_*``
  variables; docs/tutors/class-at-scale.md).

Environment variables (defaults in brackets):

``MLM_HUB_PREFIX`` [/opt/mlm-hub], ``MLM_HUB_STATE`` [/srv/mlm-hub] (database
and cookie secret), ``MLM_HUB_ROSTER`` [hub/roster.csv, else
hub/roster.example.csv], ``MLM_EXCHANGE_ROOT`` [/srv/nbgrader/exchange],
``MLM_HUB_SUBDOMAIN_HOST`` [none: one origin for all],
``MLM_HUB_IP`` [127.0.0.1], ``MLM_HUB_PORT`` [8000], ``MLM_HUB_API_PORT``
[8081], ``MLM_HUB_PROXY_API_PORT`` [8001], ``MLM_HUB_AUTH``
[shared-password | pam | lti13], ``MLM_HUB_PASSWORD`` (shared-password only),
``MLM_HUB_SERVICE_TOKEN`` (optional: an API token with the admin role, for
scripts and the test), ``MLM_EXCHANGE`` [folder | service]; for the service
``MLM_NGSHARE_PORT`` [8082] and ``MLM_NGSHARE_ADMIN_TOKEN`` (the roster
service's token, with which the course's enrolment is written).
"""

import os
import pwd
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from classhub import NGSHARE_ADMIN, default_roster, read_roster  # noqa: E402 - hub/classhub.py, beside this file

c = get_config()  # noqa: F821 - provided by JupyterHub

COURSE_ID = "multilevel"
PREFIX = os.environ.get("MLM_HUB_PREFIX", "/opt/mlm-hub")
STATE = os.environ.get("MLM_HUB_STATE", "/srv/mlm-hub")
EXCHANGE = os.environ.get("MLM_EXCHANGE_ROOT", "/srv/nbgrader/exchange")
ROSTER = os.environ.get("MLM_HUB_ROSTER") or str(default_roster())
IP = os.environ.get("MLM_HUB_IP", "127.0.0.1")
EXCHANGE_KIND = os.environ.get("MLM_EXCHANGE", "folder")
if EXCHANGE_KIND not in ("folder", "service"):
    raise ValueError(f"MLM_EXCHANGE={EXCHANGE_KIND!r}: use 'folder' or 'service'")

people = read_roster(ROSTER)
instructors = sorted(p.username for p in people if p.role == "instructor")
students = sorted(p.username for p in people if p.role == "student")

# --- network: the proxy listens for people; the hub and proxy API on loopback
c.JupyterHub.bind_url = f"http://{IP}:{os.environ.get('MLM_HUB_PORT', '8000')}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{os.environ.get('MLM_HUB_API_PORT', '8081')}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('MLM_HUB_PROXY_API_PORT', '8001')}"
c.ConfigurableHTTPProxy.command = [os.path.join(PREFIX, "proxy", "node_modules", ".bin",
                                                "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = os.path.join(STATE, "proxy.pid")

# --- one origin per person: each server on a host name of its own
if os.environ.get("MLM_HUB_SUBDOMAIN_HOST"):
    c.JupyterHub.subdomain_host = os.environ["MLM_HUB_SUBDOMAIN_HOST"]

# --- state kept between runs (root only)
c.JupyterHub.db_url = "sqlite:///" + os.path.join(STATE, "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(STATE, "jupyterhub_cookie_secret")

# --- who may log in, and how
auth = os.environ.get("MLM_HUB_AUTH", "shared-password")
if auth == "pam":
    c.JupyterHub.authenticator_class = "pam"
elif auth == "shared-password":
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = os.environ["MLM_HUB_PASSWORD"]
elif auth == "lti13":
    # Off by default.  The platform's roles in the course set the groups at each
    # log-in (Authenticator.manage_groups), so the roster's roles do not: the
    # roster still says who may log in (each needs a system account here) and
    # whose home gets the course folder.
    import lti_login  # hub/lti_login.py, beside this file

    lti_login.configure(c, os.environ, allowed_users=instructors + students)
else:
    raise ValueError(f"MLM_HUB_AUTH={auth!r}: use 'shared-password' (a trial), 'pam' or 'lti13'")
c.Authenticator.allowed_users = set(instructors + students)
c.Authenticator.admin_users = set()
if auth != "lti13":
    c.JupyterHub.load_groups = {
        "instructors": {"users": instructors},
        "students": {"users": students},
    }

# An API token for scripts (and the round-trip test): the admin role, so it can
# start servers and issue tokens for users.  Only when one is given.
services = []
roles = []
if os.environ.get("MLM_HUB_SERVICE_TOKEN"):
    services.append({"name": "course-admin", "api_token": os.environ["MLM_HUB_SERVICE_TOKEN"]})
    roles.append({"name": "admin", "services": ["course-admin"]})

# --- the exchange service: ngshare, started and stopped by the hub, reached on
# loopback only.  It asks the hub who owns the token of each call, so a student
# acts in it as themself and nobody else; files and database stay in the
# hub's state folder (root only).
NGSHARE_URL = None
if EXCHANGE_KIND == "service":
    ngshare_port = int(os.environ.get("MLM_NGSHARE_PORT", "8082"))
    ngshare_state = os.path.join(STATE, "ngshare")
    os.makedirs(os.path.join(ngshare_state, "files"), mode=0o700, exist_ok=True)
    NGSHARE_URL = f"http://127.0.0.1:{ngshare_port}/services/ngshare"
    services.append({
        "name": "ngshare",
        "url": f"http://127.0.0.1:{ngshare_port}",
        "command": [os.path.join(PREFIX, "hub", "bin", "python"), os.path.join(HERE, "ngshare_service.py"),
                    "--admins", NGSHARE_ADMIN,
                    "--database", "sqlite:///" + os.path.join(ngshare_state, "ngshare.db"),
                    "--storage", os.path.join(ngshare_state, "files") + "/"],
        "cwd": ngshare_state,
    })
    # ngshare's only admin: a service without any hub role whose token (root's,
    # from hub/classhub.py) creates the course and writes the enrolment.
    services.append({"name": NGSHARE_ADMIN, "api_token": os.environ["MLM_NGSHARE_ADMIN_TOKEN"]})
c.JupyterHub.services = services
c.JupyterHub.load_roles = roles

# --- each person's server: their own system user, the class environment
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [os.path.join(PREFIX, "user", "bin", "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.environment = {
    "PATH": os.path.join(PREFIX, "user", "bin") + ":/usr/local/bin:/usr/bin:/bin",
    "MLM_EXCHANGE": EXCHANGE_KIND,
    # Many kernels share the machine's cores: one BLAS thread each.
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}
if EXCHANGE_KIND == "service":
    c.Spawner.environment["MLM_NGSHARE_URL"] = NGSHARE_URL
else:
    c.Spawner.environment["MLM_EXCHANGE_ROOT"] = EXCHANGE


def _per_group(spawner):
    """Instructors get the formgrader and "create assignment" (an extra config dir)."""
    groups = {g.name for g in spawner.user.groups}
    if "instructors" in groups:
        spawner.environment["JUPYTER_CONFIG_PATH"] = os.path.join(PREFIX, "instructor-config")
        # Their server opens in the course folder, where formgrader finds the
        # course's nbgrader_config.py (hub/classhub.py copies it there).
        spawner.notebook_dir = "~/" + COURSE_ID
        # The tutor tools (python -m coursetools.grading) from the course copy.
        home = pwd.getpwnam(spawner.user.name).pw_dir
        spawner.environment["PYTHONPATH"] = os.path.join(home, COURSE_ID, "tools")


c.Spawner.pre_spawn_hook = _per_group

# Servers nobody uses are stopped by the hub's idle culler in a real
# deployment (jupyterhub-idle-culler); a trial keeps them.
c.JupyterHub.shutdown_on_logout = False
c.JupyterHub.cleanup_servers = True
