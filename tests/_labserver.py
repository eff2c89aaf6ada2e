"""Start and stop a Jupyter server for the browser and Binder tests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(cmd, cwd, env, port: int, token: str, log_path: Path, timeout: float = 90):
    """Run ``cmd`` (a Jupyter server on ``port``) until the block ends; fail with its log if it does not start."""
    log = open(log_path, "w")
    proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        status = f"http://127.0.0.1:{port}/api/status?token={token}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(status, timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"{cmd[0]} did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.5)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def fresh_artifacts(folder: Path) -> Path:
    """An empty folder for a test's screenshots and logs (last run's removed)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder
