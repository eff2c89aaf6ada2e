"""`make lab` and `make lab-student` (python -m coursetools.lab): one address that opens the landing page.

Tutor mode keeps nbgrader's Formgrader and Create Assignment; student mode (on
the student edition) switches them, the assignment list and the news off for
that launch only.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from _labserver import free_port

from coursetools.lab import REPO, STUDENT_LAB_PLUGINS_OFF, build_command
from coursetools.release import build_edition


def test_build_command_as_root_and_landing_page():
    cmd = build_command(9999, token="t0k")
    assert "--port=9999" in cmd and "--ServerApp.port_retries=0" in cmd
    assert "--LabApp.default_url=/lab/tree/index.ipynb" in cmd
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.parametrize("mode", ["tutor", "student"])
def test_make_lab_prints_working_address_and_stops_cleanly(tmp_path, mode):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(HOME=str(tmp_path), JUPYTER_CONFIG_DIR=str(tmp_path / ".jupyter"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    args = [sys.executable, "-m", "coursetools.lab", "--port", str(port)]
    if mode == "student":  # as `make lab-student`: the student edition, in student mode
        build_edition(tmp_path / "student")
        args += ["--student", "--root", str(tmp_path / "student")]
    out = tmp_path / "stdout.txt"
    with open(out, "w") as fh:
        proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.DEVNULL)
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
            page = resp.read().decode()
        assert "JupyterLab" in page
        config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                      page, re.S).group(1))
        disabled = set(config["disabledExtensions"])
        token = url.split("token=")[1]
        served = config["serverRoot"].replace("~", str(tmp_path), 1)  # shown relative to HOME
        if mode == "student":
            assert set(STUDENT_LAB_PLUGINS_OFF) <= disabled, disabled
            assert served == str(tmp_path / "student")
            for path in ("formgrader", "assignments?course_id=multilevel"):
                sep = "&" if "?" in path else "?"
                assert _status(f"http://127.0.0.1:{port}/{path}{sep}token={token}") == 404, path
            # Locked: JupyterLab's plugin manager refuses to switch Formgrader back on.
            assert set(STUDENT_LAB_PLUGINS_OFF) <= set(config["lockedExtensions"])
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/lab/api/plugins", method="POST",
                data=json.dumps({"cmd": "enable", "plugin_name": "@jupyter/nbgrader:formgrader"}).encode(),
                headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
            try:
                urllib.request.urlopen(request, timeout=30)
                refused = None
            except urllib.error.HTTPError as err:
                refused = (err.code, err.read().decode())
            assert refused and refused[0] == 500 and "locked" in refused[1], refused
        else:  # the tutor keeps Formgrader and Create Assignment (not opened: it writes a gradebook)
            assert not disabled & set(STUDENT_LAB_PLUGINS_OFF), disabled
            assert served == str(REPO)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    # The server went with the wrapper: nothing listens on the port any more.
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"JupyterLab still runs on {port} (root {REPO})"
