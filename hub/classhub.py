"""Run the course's JupyterHub for a class on this machine (``make hub``).

Usage, as root::

    python3 hub/classhub.py start [--roster FILE] [--port 8000] [--ip 127.0.0.1]
                                  [--exchange folder|service]
    python3 hub/classhub.py remove-accounts [--roster FILE]

``start`` installs what is missing (``hub/setup.sh``), creates one system
user per roster line (home folder 0700; an instructor also gets the course
in ``~/multilevel``), prepares nbgrader's exchange, starts JupyterHub
with ``hub/jupyterhub_config.py`` and prints the address of its login page.
The exchange is a folder every account shares (``--exchange folder``, the
default) or the ngshare service the hub runs (``--exchange service``): then
this tool also creates the course in ngshare and enrols the roster in it.
``remove-accounts`` deletes the accounts this tool created (and their homes).

The roster is a CSV file with a header ``username,role`` and one line per
person; ``role`` is ``student`` or ``instructor``.  Without ``--roster`` the
tool reads ``hub/roster.csv`` when it exists, else ``hub/roster.example.csv``.

Only the standard library is used: ``hub/jupyterhub_config.py`` imports
:func:`read_roster` from here inside the hub's environment, and
``tests/test_hub.py`` uses the account and exchange helpers.
"""

from __future__ import annotations

import argparse
import csv
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COURSE_ID = "multilevel"
PREFIX = Path(os.environ.get("MLM_HUB_PREFIX", "/opt/mlm-hub"))
ROLES = ("student", "instructor")
# Written into the accounts' comment field: remove_accounts() deletes only these.
ACCOUNT_MARK = "multilevel course hub account"
# What an instructor's course folder holds (copied from this repository).
COURSE_ITEMS = ("nbgrader_config.py", "index.ipynb", "solutions", "practicals", "course", "data", "tools")
_USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
EXCHANGES = ("folder", "service")
# ngshare's only admin: a hub service (no hub role) whose token creates the
# course and writes the enrolment.  ngshare knows callers by name only, so no
# person may carry a service's name.
NGSHARE_ADMIN = "ngshare-roster"
SERVICE_NAMES = ("course-admin", "ngshare", NGSHARE_ADMIN)


@dataclass(frozen=True)
class Person:
    """One line of the roster."""

    username: str
    role: str


def read_roster(path) -> list[Person]:
    """Read a roster CSV (columns ``username,role``).

    Raises ``ValueError`` naming the line for a bad user name (it must be a
    valid Linux login: lower case, digits, ``-`` or ``_``, at most 32
    characters), an unknown role or a name given twice.
    """
    people: list[Person] = []
    seen: set[str] = set()
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"username", "role"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: the first line must be the header 'username,role'")
        for line, row in enumerate(reader, start=2):
            name = (row["username"] or "").strip()
            role = (row["role"] or "").strip().lower()
            if not name or name.startswith("#"):
                continue
            if not _USERNAME.match(name):
                raise ValueError(f"{path}, line {line}: {name!r} is not a valid login name "
                                 "(lower-case letters, digits, '-' or '_', at most 32 characters)")
            if role not in ROLES:
                raise ValueError(f"{path}, line {line}: role {role!r} must be one of {', '.join(ROLES)}")
            if name in seen:
                raise ValueError(f"{path}, line {line}: {name} is listed twice")
            if name in SERVICE_NAMES:
                raise ValueError(f"{path}, line {line}: {name!r} is the name of one of the hub's services")
            seen.add(name)
            people.append(Person(name, role))
    if not any(p.role == "instructor" for p in people):
        raise ValueError(f"{path}: the roster has no instructor")
    return people


def default_roster() -> Path:
    for name in ("roster.csv", "roster.example.csv"):
        if (HERE / name).exists():
            return HERE / name
    raise FileNotFoundError("no hub/roster.csv or hub/roster.example.csv")


# --------------------------------------------------------------------------- accounts


def _tool(name: str) -> str:
    """An account tool by full path (root's PATH may lack /usr/sbin under some launchers)."""
    return shutil.which(name) or next((f"{d}/{name}" for d in ("/usr/sbin", "/sbin")
                                       if os.path.exists(f"{d}/{name}")), name)


def _run(cmd, **kw):
    return subprocess.run([_tool(str(cmd[0]))] + [str(c) for c in cmd[1:]], check=True, **kw)


def _account(name: str):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def create_accounts(people: list[Person], course_src: Path = REPO) -> None:
    """Create a system user with a private home for each person (existing ones are kept).

    An instructor also gets the course folder ``~/multilevel`` (nbgrader's
    course directory: source, release folder, configuration) if missing.
    """
    for person in people:
        account = _account(person.username)
        if account is None:
            _run(["useradd", "--create-home", "--user-group", "--shell", "/bin/bash",
                  "--comment", ACCOUNT_MARK, person.username])
            account = _account(person.username)
        home = Path(account.pw_dir)
        os.chmod(home, 0o700)
        if person.role == "instructor" and not (home / COURSE_ID).exists():
            copy_course(course_src, home / COURSE_ID, account.pw_uid, account.pw_gid)


def copy_course(src: Path, dest: Path, uid: int, gid: int) -> None:
    """Copy the course's nbgrader folders to ``dest``, owned by ``uid``."""
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.egg-info", "gradebook.db")
    dest.mkdir(parents=True)
    for item in COURSE_ITEMS:
        path = src / item
        if path.is_dir():
            shutil.copytree(path, dest / item, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, dest / item)
    for folder, dirs, files in os.walk(dest):
        os.chown(folder, uid, gid)
        for name in files:
            os.chown(os.path.join(folder, name), uid, gid)


def _pids_of(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def remove_accounts(people: list[Person]) -> list[str]:
    """Stop the processes of, and delete, the accounts this tool created; return their names.

    An account whose comment is not :data:`ACCOUNT_MARK` (a person's own
    login that happens to share a name) is left alone.
    """
    removed = []
    for person in people:
        account = _account(person.username)
        if account is None or account.pw_gecos != ACCOUNT_MARK or account.pw_uid == 0:
            continue
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _pids_of(account.pw_uid):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + 5
            while _pids_of(account.pw_uid) and time.monotonic() < deadline:
                time.sleep(0.1)
        subprocess.run([_tool("userdel"), "--remove", person.username], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        removed.append(person.username)
    return removed


# --------------------------------------------------------------------------- exchange


def prepare_exchange(root: Path, instructor: str) -> Path:
    """nbgrader's shared exchange: ``root`` writable by all (sticky), the course folder the instructor's.

    nbgrader itself then makes ``outbound`` (everyone reads), ``inbound``
    (everyone writes, nobody but the instructor lists) and ``feedback``
    (nobody lists; each file is named by a hash only its student knows).
    """
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o1777)
    course = root / COURSE_ID
    course.mkdir(exist_ok=True)
    account = pwd.getpwnam(instructor)
    os.chown(course, account.pw_uid, account.pw_gid)
    os.chmod(course, 0o755)
    return course


def ngshare_request(url: str, token: str, method: str = "GET", data: dict | None = None,
                    timeout: float = 30) -> tuple[int, dict]:
    """One call to ngshare's API: (HTTP status, JSON answer); ``url`` is the whole address."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, {"success": False, "message": text[:500].decode(errors="replace")}


def _wait_ok(url: str, timeout: float, alive=lambda: True) -> bool:
    """Poll ``url`` until it answers 200; False when time runs out or ``alive()`` turns False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def wait_for_ngshare(base: str, timeout: float = 60) -> bool:
    """Wait until ngshare (``base``: its address, ending in /services/ngshare) answers its health check."""
    return _wait_ok(f"{base}/healthz", timeout)


def enrol_ngshare(base: str, admin_token: str, people: list[Person]) -> None:
    """Create the course in ngshare (if missing) with the roster's instructors, and enrol its students.

    Run again with a changed roster, it adds the new people; it removes nobody.
    """
    instructors = [p.username for p in people if p.role == "instructor"]
    students = [p.username for p in people if p.role == "student"]
    status, answer = ngshare_request(f"{base}/course/{COURSE_ID}", admin_token, "POST",
                                     {"instructors": json.dumps(instructors)})
    if status == 409:  # the course exists: make sure every instructor teaches it
        for name in instructors:
            status, answer = ngshare_request(f"{base}/instructor/{COURSE_ID}/{name}", admin_token, "POST",
                                             {"first_name": name, "last_name": "", "email": ""})
            if not answer.get("success"):
                raise RuntimeError(f"ngshare: adding instructor {name} failed: {status} {answer}")
    elif not answer.get("success"):
        raise RuntimeError(f"ngshare: creating the course failed: {status} {answer}")
    if students:
        roster = [{"username": name, "first_name": name, "last_name": "", "email": ""} for name in students]
        status, answer = ngshare_request(f"{base}/students/{COURSE_ID}", admin_token, "POST",
                                         {"students": json.dumps(roster)})
        failed = [s for s in answer.get("status", []) if not s.get("success")]
        if not answer.get("success") or failed:
            raise RuntimeError(f"ngshare: enrolling the students failed: {status} {failed or answer}")


# --------------------------------------------------------------------------- the hub


def hub_environment(state: Path, exchange: Path, roster: Path, port: int, ip: str = "127.0.0.1",
                    api_port: int | None = None, proxy_api_port: int | None = None,
                    password: str | None = None, service_token: str | None = None,
                    subdomain_host: str | None = None, exchange_kind: str = "folder",
                    ngshare_port: int | None = None, ngshare_admin_token: str | None = None) -> dict:
    """The environment ``hub/jupyterhub_config.py`` reads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLM_HUB", "JUPYTERHUB"))
           or k == "MLM_HUB_AUTH" or k.startswith("MLM_HUB_LTI_")}  # log-in chosen by the caller (LTI 1.3)
    env.update(
        MLM_HUB_PREFIX=str(PREFIX), MLM_HUB_STATE=str(state), MLM_EXCHANGE_ROOT=str(exchange),
        MLM_HUB_ROSTER=str(roster), MLM_HUB_IP=ip, MLM_HUB_PORT=str(port),
        MLM_HUB_API_PORT=str(api_port or port + 81), MLM_HUB_PROXY_API_PORT=str(proxy_api_port or port + 1),
        PATH=f"{PREFIX / 'hub' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
    )
    if password is not None:
        env["MLM_HUB_PASSWORD"] = password
    if service_token is not None:
        env["MLM_HUB_SERVICE_TOKEN"] = service_token
    if subdomain_host:
        env["MLM_HUB_SUBDOMAIN_HOST"] = subdomain_host
    if exchange_kind not in EXCHANGES:
        raise ValueError(f"exchange {exchange_kind!r}: use one of {', '.join(EXCHANGES)}")
    env["MLM_EXCHANGE"] = exchange_kind
    if exchange_kind == "service":
        env["MLM_NGSHARE_PORT"] = str(ngshare_port or port + 82)
        if not ngshare_admin_token:
            raise ValueError("the exchange service needs ngshare_admin_token")
        env["MLM_NGSHARE_ADMIN_TOKEN"] = ngshare_admin_token
    return env


def ngshare_url(env: dict) -> str:
    """The address of ngshare's API for a hub started with ``env`` (loopback, as the servers reach it)."""
    return f"http://127.0.0.1:{env['MLM_NGSHARE_PORT']}/services/ngshare"


def hub_command() -> list[str]:
    return [str(PREFIX / "hub" / "bin" / "jupyterhub"), "-f", str(HERE / "jupyterhub_config.py")]


def wait_for_login(url: str, proc: subprocess.Popen, timeout: float = 120) -> bool:
    """Wait until ``url`` (the login page) answers 200; False if the hub exits or time runs out."""
    return _wait_ok(url, timeout, alive=lambda: proc.poll() is None)


def _trial_password(state: Path) -> str:
    if os.environ.get("MLM_HUB_PASSWORD"):
        return os.environ["MLM_HUB_PASSWORD"]
    path = state / "trial-password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12) + "\n")
        os.chmod(path, 0o600)
    return path.read_text().strip()


def start(args) -> int:
    subprocess.run(["bash", str(HERE / "setup.sh")], check=True)
    roster = Path(args.roster) if args.roster else default_roster()
    people = read_roster(roster)
    create_accounts(people)
    state = Path(os.environ.get("MLM_HUB_STATE", "/srv/mlm-hub"))
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o700)
    exchange = Path(os.environ.get("MLM_EXCHANGE_ROOT", "/srv/nbgrader/exchange"))
    instructor = next(p.username for p in people if p.role == "instructor")
    if args.exchange == "folder":
        prepare_exchange(exchange, instructor)
    password = _trial_password(state)
    host = "127.0.0.1" if args.ip in ("", "0.0.0.0") else args.ip
    # One origin per person (jupyterhub_config.py): on this machine, <user>.localhost.
    subdomains = args.subdomain_host or (f"http://localhost:{args.port}"
                                         if host in ("127.0.0.1", "localhost") else None)
    env = hub_environment(state, exchange, roster, args.port, args.ip, password=password,
                          subdomain_host=subdomains, exchange_kind=args.exchange,
                          ngshare_admin_token=secrets.token_hex(32) if args.exchange == "service" else None)
    log_path = state / "jupyterhub.log"
    with open(log_path, "a") as log:
        proc = subprocess.Popen(hub_command(), cwd=state, env=env, stdout=log, stderr=subprocess.STDOUT)

    def _stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _stop)
    url = f"{subdomains or f'http://{host}:{args.port}'}/hub/login"
    try:
        if not wait_for_login(url, proc):
            print(f"JupyterHub did not start; its log ({log_path}) ends with:\n"
                  + log_path.read_text()[-3000:], file=sys.stderr)
            return 1
        if args.exchange == "service":
            if not wait_for_ngshare(ngshare_url(env)):
                print(f"The exchange service did not start; see the hub log ({log_path}).", file=sys.stderr)
                return 1
            enrol_ngshare(ngshare_url(env), env["MLM_NGSHARE_ADMIN_TOKEN"], people)
            where = f"the ngshare service ({ngshare_url(env)}; files and database in {state / 'ngshare'})"
        else:
            where = str(exchange)
        names = ", ".join(f"{p.username} ({p.role})" for p in people)
        line = "=" * 72
        print(f"\n{line}\nThe class hub is running. Log in at\n\n    {url}\n\n"
              f"users: {names}\n"
              f"password (shared, trial only): {password}\n"
              f"exchange: {where}\nhub log: {log_path}\n"
              f"Press Ctrl+C to stop the hub.\n{line}\n", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hub/classhub.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="install if needed, create the accounts, start the hub")
    p_start.add_argument("--roster", help="roster CSV (default: hub/roster.csv, else hub/roster.example.csv)")
    p_start.add_argument("--port", type=int, default=8000)
    p_start.add_argument("--ip", default="127.0.0.1")
    p_start.add_argument("--subdomain-host",
                         help="each server at <user>.<this host> (e.g. https://hub.example.org; needs "
                         "wildcard DNS and certificate; default on loopback: http://localhost:PORT)")
    p_start.add_argument("--exchange", choices=EXCHANGES, default="folder",
                         help="nbgrader's exchange: a shared folder (default) or the ngshare service")
    p_remove = sub.add_parser("remove-accounts", help="delete the accounts this tool created")
    p_remove.add_argument("--roster")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("Run this as root: the hub starts each person's server as their own system user.",
              file=sys.stderr)
        return 1
    if args.command == "start":
        return start(args)
    roster = Path(args.roster) if args.roster else default_roster()
    removed = remove_accounts(read_roster(roster))
    print("removed:", ", ".join(removed) or "nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
