"""Start JupyterLab on the course (``make lab`` calls this).

Runs JupyterLab with the repository root as its root folder and working
directory (nbgrader reads ``nbgrader_config.py`` from there), opens the landing
page ``index.ipynb``, adds ``--allow-root`` when started as root (JupyterLab
refuses to run as root otherwise) and, once the server answers, prints the
one address to open, token included.

Usage::

    python -m coursetools.lab [--port 8888] [--ip 127.0.0.1] [--browser]

The end-to-end browser test (``tests/test_browser.py``) starts the server with
the same :func:`build_command`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LANDING = "index.ipynb"

__all__ = ["build_command", "lab_url", "find_free_port", "main"]


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
    root = Path(root_dir) if root_dir is not None else REPO
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
    args = parser.parse_args(argv)

    port = find_free_port(args.port, "" if args.ip == "0.0.0.0" else args.ip)
    if port != args.port:
        print(f"Port {args.port} is in use; using {port} instead.", flush=True)
    token = os.environ.get("JUPYTER_TOKEN") or secrets.token_hex(16)
    cmd = build_command(port, args.ip, args.browser, token=token)
    env = dict(os.environ)
    env.setdefault("MLM_DATA_DIR", str(REPO / "data"))

    proc = subprocess.Popen(cmd, cwd=REPO, env=env)

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


if __name__ == "__main__":
    raise SystemExit(main())
