"""The host side of the clean test process (:mod:`.tester`): one per worker."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from . import sandbox
from .launch import kill


class CleanTester:
    """One clean test process (:mod:`.tester`), reused for a worker's submissions.

    It holds numpy and pandas, the course's imports and, for each job, only
    the plain values a sandbox recorded: no student code runs in it.  It is
    started again after a job it does not answer in time or at all.
    """

    def __init__(self):
        self.proc = None
        self.errors = None
        self.lock = threading.Lock()

    def start(self, settings) -> None:
        """Start the process (a worker does it early, so that numpy and pandas load meanwhile)."""
        tester = Path(__file__).resolve().parent / "tester.py"
        python = sandbox.python_executable()
        env = {"PATH": "/usr/bin:/bin", "HOME": tempfile.gettempdir(), "LANG": "C.UTF-8",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "agg"}
        cmd = [python, "-I", str(tester), "--serve"]
        if not settings.unsafe and shutil.which("prlimit"):
            cmd = ["prlimit", f"--as={settings.limits.memory_mb * 1024 * 1024}", "--"] + cmd
        self.errors = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errors, env=env, cwd=tempfile.gettempdir())

    def stop(self):
        if self.proc is not None:
            kill(self.proc)
            self.proc.wait()
            self.proc = None
        if self.errors is not None:
            self.errors.close()
            self.errors = None

    def ask(self, job: dict, settings, timeout: float):
        """The tester's answer to ``job`` (a dict), or why there is none (a str)."""
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.stop()
                self.start(settings)
            answer = []

            def read():
                answer.append(self.proc.stdout.readline())

            try:
                self.proc.stdin.write(json.dumps(job).encode() + b"\n")
                self.proc.stdin.flush()
            except OSError:
                pass
            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            reader.join(timeout)
            if reader.is_alive():
                self.stop()
                return "the tests took too long on this submission's values"
            try:
                out = json.loads(answer[0])
                if not isinstance(out, dict):
                    raise ValueError
                return out
            except (ValueError, IndexError):
                self.errors.seek(0)
                last = (self.errors.read()[-4000:].decode(errors="replace").strip().splitlines()
                        or ["no output"])[-1][:200]
                self.stop()
                return "the tests could not be run: " + last


