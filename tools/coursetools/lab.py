"""Start JupyterLab on the course (``make lab`` and ``make lab-student`` call this).

Runs JupyterLab with the repository root (or ``--root``) as its root folder and
working directory (nbgrader reads ``nbgrader_config.py`` from there), opens
the landing page ``index.ipynb``, adds ``--allow-root`` when started as root
(JupyterLab refuses to run as root otherwise) and, once the server answers,
prints the one address to open, token included.

Two modes:

* tutor mode (default, ``make lab``): everything nbgrader has, Formgrader and
  *Create Assignment* included;
* student mode (``--student``; ``make lab-student`` serves the student edition
  ``build/student`` this way): what students get from the student edition's
  ``postBuild`` on Binder or with its ``make lab``.  The tutor's tools
  (Formgrader, *Create Assignment*), the assignment and course lists (they
  need a shared exchange, which a laptop or Binder does not have) and the
  news and update check are off; *Validate* stays on.  This is done for this
  launch only, through a temporary configuration folder put first on
  ``JUPYTER_CONFIG_PATH`` (see :func:`student_environment`), so the tutor's
  own ``make lab`` keeps Formgrader.

Usage::

    python -m coursetools.lab [--port 8888] [--ip 127.0.0.1] [--browser]
                              [--student] [--root FOLDER]

The end-to-end browser test (``tests/test_browser.py``) starts the server with
the same :func:`build_command` and :func:`student_environment`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LANDING = "index.ipynb"

#: Server extensions the student edition switches off (its postBuild does the same).
STUDENT_SERVER_EXTENSIONS_OFF = (
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list",
)
#: JupyterLab plugins the student edition switches off (its postBuild does the same):
#: Formgrader, Create Assignment, the assignment and course lists with the
#: Nbgrader menu that only opens those, and the news and update check.
STUDENT_LAB_PLUGINS_OFF = (
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:assignment-list",
    "@jupyter/nbgrader:course-list",
    "@jupyter/nbgrader:menu",
    "@jupyterlab/apputils-extension:announcements",
)

__all__ = ["build_command", "lab_url", "find_free_port", "student_environment", "main",
           "STUDENT_SERVER_EXTENSIONS_OFF", "STUDENT_LAB_PLUGINS_OFF"]


def student_environment(config_dir: Path | str, env: dict | None = None) -> dict:
    """Environment variables that start JupyterLab in student mode.

    Writes a Jupyter configuration folder ``config_dir`` that switches off
    :data:`STUDENT_SERVER_EXTENSIONS_OFF` and switches off and locks
    :data:`STUDENT_LAB_PLUGINS_OFF`,
    and returns a copy of ``env`` (default: ``os.environ``) with that folder
    first on ``JUPYTER_CONFIG_PATH``.  Folders there take precedence over the
    environment's own configuration (where nbgrader switches everything on),
    so nothing in the installed environment changes.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> env = student_environment(folder, {"JUPYTER_CONFIG_PATH": "/etc/extra"})
    >>> env["JUPYTER_CONFIG_PATH"].split(os.pathsep) == [str(folder), "/etc/extra"]
    True
    >>> import json
    >>> json.loads((folder / "labconfig" / "page_config.json").read_text())[
    ...     "disabledExtensions"]["@jupyter/nbgrader:formgrader"]
    True
    """
    config_dir = Path(config_dir)
    (config_dir / "labconfig").mkdir(parents=True, exist_ok=True)
    server = {"ServerApp": {"jpserver_extensions": {
        name: False for name in STUDENT_SERVER_EXTENSIONS_OFF}}}
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(server, indent=2))
    # Locked too, as postBuild does: the plugin manager cannot switch them back on.
    page = {"disabledExtensions": {name: True for name in STUDENT_LAB_PLUGINS_OFF},
            "lockedExtensions": {name: True for name in STUDENT_LAB_PLUGINS_OFF}}
    (config_dir / "labconfig" / "page_config.json").write_text(json.dumps(page, indent=2))
    env = dict(os.environ if env is None else env)
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        [str(config_dir)] + [p for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p])
    return env


def build_command(port: int, ip: str = "127.0.0.1", open_browser: bool = False,
                  root_dir: Path | str | None = None, token: str | None = None) -> list[str]:
    """Return the command line that starts JupyterLab on the course.

    Parameters
    ----------
    port : int
        Port to listen on.  JupyterLab is told not to try other ports, so the
        printed address is always the right one.
    ip : str
        Address to listen on (``127.0.0.1``: this machine only).
    open_browser : bool
        Let JupyterLab open a web browser.
    root_dir : path, optional
        Folder to serve (default: the repository root).  Run the command
        with this folder as working directory.
    token : str, optional
        Token that protects the server; JupyterLab makes one up if omitted.

    Returns
    -------
    list of str
        Arguments for :func:`subprocess.Popen`.

    Examples
    --------
    >>> cmd = build_command(8888, token="abc")
    >>> cmd[1:4]
    ['-m', 'jupyterlab', '--port=8888']
    >>> "--IdentityProvider.token=abc" in cmd
    True
    """
    root = Path(root_dir).resolve() if root_dir is not None else REPO
    cmd = [sys.executable, "-m", "jupyterlab", f"--port={port}", f"--ip={ip}",
           "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
           # No calls home: no news feed, no update check.
           "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if (root / LANDING).exists():
        cmd.append(f"--LabApp.default_url=/lab/tree/{LANDING}")
    if token is not None:
        cmd.append(f"--IdentityProvider.token={token}")
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def lab_url(port: int, token: str, ip: str = "127.0.0.1", path: str = LANDING) -> str:
    """Address of a notebook in a running JupyterLab, token included.

    Examples
    --------
    >>> lab_url(8888, "abc")
    'http://127.0.0.1:8888/lab/tree/index.ipynb?token=abc'
    """
    host = "127.0.0.1" if ip in ("", "0.0.0.0") else ip
    return f"http://{host}:{port}/lab/tree/{path}?token={token}"


def find_free_port(start: int = 8888, ip: str = "127.0.0.1", tries: int = 50) -> int:
    """Return ``start`` if nothing listens there, else the next free port.

    Examples
    --------
    >>> 1024 <= find_free_port(8888) < 8888 + 50
    True
    """
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((ip, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"ports {start}-{start + tries - 1} are all in use; "
                       "stop another Jupyter server or pass --port with a free port")


def _wait_until_listening(port: int, ip: str, proc: subprocess.Popen, timeout: float) -> bool:
    host = "127.0.0.1" if ip in ("", "0.0.0.0") else ip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start JupyterLab on the course.")
    parser.add_argument("--port", type=int, default=8888,
                        help="port to use (the next free one if it is taken)")
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--browser", action="store_true", help="open a web browser too")
    parser.add_argument("--student", action="store_true",
                        help="student mode: no Formgrader, Create Assignment, assignment list or news")
    parser.add_argument("--root", type=Path, default=REPO,
                        help="folder to serve (default: the repository root)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not (root / LANDING).is_file():
        parser.error(f"{root} has no {LANDING}: pass the course folder (make release writes "
                     "the student edition to build/student)")

    port = find_free_port(args.port, "" if args.ip == "0.0.0.0" else args.ip)
    if port != args.port:
        print(f"Port {args.port} is in use; using {port} instead.", flush=True)
    token = os.environ.get("JUPYTER_TOKEN") or secrets.token_hex(16)
    cmd = build_command(port, args.ip, args.browser, root_dir=root, token=token)
    env = dict(os.environ)
    env.setdefault("MLM_DATA_DIR", str(root / "data"))
    config_dir = None
    if args.student:
        config_dir = tempfile.TemporaryDirectory(prefix="mlm-student-mode-")
        env = student_environment(config_dir.name, env)
        print("Student mode: no Formgrader, Create Assignment, assignment list or news.", flush=True)

    proc = subprocess.Popen(cmd, cwd=root, env=env)

    def _stop(signum, frame):  # a plain `kill`: stop the server too, not only this wrapper
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _stop)
    try:
        if _wait_until_listening(port, args.ip, proc, timeout=120):
            url = lab_url(port, token, args.ip)
            line = "=" * min(len(url), 100)
            print(f"\n{line}\nThe course is open at\n\n    {url}\n\n"
                  "Open that address in your web browser (it starts on the landing page).\n"
                  f"Press Ctrl+C twice to stop JupyterLab.\n{line}\n", flush=True)
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                # The server received the same Ctrl+C and handles it itself.
                continue
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        if config_dir is not None:
            config_dir.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
