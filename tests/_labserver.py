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
        stop(proc, timeout=30)
        log.close()


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Terminate a server process, killing it if it has not ended within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def offline_context(browser, width: int = 1280, height: int = 900):
    """A Playwright browser context that loads file: URLs only; returns it and the list of the
    other addresses it refused (a page that works offline leaves the list empty)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    aborted: list[str] = []

    def offline(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            aborted.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", offline)
    return context, aborted


def fresh_artifacts(folder: Path) -> Path:
    """An empty folder for a test's screenshots and logs (last run's removed)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder
