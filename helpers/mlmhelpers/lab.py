"""Start JupyterLab on the course (``make lab`` calls this).

Runs JupyterLab with the repository root as its root folder, opens the
landing page, adds ``--allow-root`` when started as root (JupyterLab refuses
to run as root otherwise) and prints the address to open.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build_command(port: int, ip: str = "127.0.0.1", open_browser: bool = False) -> list[str]:
    """Return the command line that starts JupyterLab on the course.

    Examples
    --------
    >>> cmd = build_command(8888)
    >>> cmd[1:4]
    ['-m', 'jupyterlab', '--port=8888']
    """
    cmd = [sys.executable, "-m", "jupyterlab", f"--port={port}", f"--ip={ip}",
           f"--ServerApp.root_dir={REPO}"]
    landing = REPO / "index.ipynb"
    if landing.exists():
        cmd.append(f"--LabApp.default_url=/lab/tree/{landing.name}")
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--browser", action="store_true", help="open a web browser too")
    args = parser.parse_args(argv)
    cmd = build_command(args.port, args.ip, args.browser)
    print("Starting JupyterLab on the course. Open the address printed below "
          "(the one with ?token=...) in your browser; press Ctrl+C twice to stop.", flush=True)
    env = dict(os.environ)
    env.setdefault("MLM_DATA_DIR", str(REPO / "data"))
    return subprocess.call(cmd, cwd=REPO, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
