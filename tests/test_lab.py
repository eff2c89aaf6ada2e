"""`make lab` (python -m coursetools.lab): prints one address that opens the landing page."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from _labserver import free_port

from coursetools.lab import REPO, build_command


def test_build_command_as_root_and_landing_page():
    cmd = build_command(9999, token="t0k")
    assert "--port=9999" in cmd and "--ServerApp.port_retries=0" in cmd
    assert "--LabApp.default_url=/lab/tree/index.ipynb" in cmd
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)


def test_make_lab_prints_working_address_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(HOME=str(tmp_path), JUPYTER_CONFIG_DIR=str(tmp_path / ".jupyter"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    out = tmp_path / "stdout.txt"
    with open(out, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "coursetools.lab", "--port", str(port)],
                                cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        url = None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            match = re.search(r"^\s+(http://127\.0\.0\.1:\d+/lab/tree/index\.ipynb\?token=\w+)$",
                              out.read_text(), re.M)
            url = match.group(1) if match else None
            time.sleep(0.3)
        assert url, f"no address printed:\n{out.read_text()}"
        assert f":{port}/" in url
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert resp.status == 200
            assert "JupyterLab" in resp.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    # The server went with the wrapper: nothing listens on the port any more.
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"JupyterLab still runs on {port} (root {REPO})"
