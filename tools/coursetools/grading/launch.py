"""Run one job in a sandbox, three ways, and watch it: :class:`Launcher`.

* **forked** (graded as root): the worker's preloaded Python
  (:class:`Zygote`, ``sandboxed/zygote.py``) forks; the fork enters a fresh
  bubblewrap sandbox whose only process waits (the *holder*), drops every
  privilege and runs the notebook;
* **fresh**: a new Python starts inside a fresh sandbox (graded as another
  user, or when the zygote cannot be used);
* **unsafe** (``--unsafe-no-sandbox``): a new Python in a temporary folder,
  with the tutor's rights.

Every process of a sandboxed run is in the slot's control group
(:mod:`.limits`) when one could be made; otherwise the launcher adds up the
sandbox's resident memory while it waits.  Past the wall-clock limit, or the
memory limit without a control group, the sandbox is killed and the
submission reported.  The result is read with :mod:`.sandboxed.protocol`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

from . import limits as cgroups
from . import sandbox
from .sandboxed import protocol

SANDBOXED = Path(__file__).resolve().parent / "sandboxed"
WATCH_INTERVAL = 0.2  # seconds between two looks at a sandbox's memory without a cgroup


def kill(proc) -> None:
    """Kill a process and its process group (a sandbox: bwrap and everything in it)."""
    try:
        os.killpg(proc.pid, 9)
    except OSError:
        pass
    try:
        proc.kill()
    except OSError:
        pass


def environment(venv_bin: str) -> dict[str, str]:
    """The whole environment a notebook sees (nothing of the tutor's)."""
    return {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/home/student", "USER": "student", "LOGNAME": "student",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TMPDIR": "/tmp",
        "MPLCONFIGDIR": "/home/student/.config/matplotlib", "MPLBACKEND": "agg",
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "JUPYTER_PLATFORM_DIRS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }


def _joining(procs_files: list[str], cmd: list[str]) -> list[str]:
    """``cmd`` started by a shell that first moves itself into the control group."""
    if not procs_files:
        return cmd
    joins = " && ".join(f'echo $$ > "${i + 1}"' for i in range(len(procs_files)))
    return ["/bin/sh", "-c", f'{joins} && shift {len(procs_files)} && exec "$@"', "sh",
            *procs_files, *cmd]


class Zygote:
    """A worker's preloaded Python (``sandboxed/zygote.py``), used when grading as root.

    It imports the course's libraries once; every submission then runs in a
    fresh fork of it that enters that submission's own new sandbox and drops
    every privilege before any student code runs.  Started on first use and
    again when the course's imports change; when it cannot be used, each
    notebook runs in a fresh Python in its sandbox instead (slower, as safe).
    """

    def __init__(self, python: str):
        self.python = python
        self.proc = None
        self.sock = None
        self.imports: set[str] = set()
        self.disabled = False
        self.ready_at = None

    def start(self, imports: set[str], support_dir: Path) -> None:
        """Start it without waiting for it to be ready (the first :meth:`get` waits)."""
        self.stop()
        env = environment(str(Path(self.python).parent))
        if sandbox.course_data_dir() is not None:
            env["MLM_DATA_DIR"] = "/coursedata"
        mpl = support_dir / "mplcache"
        if mpl.is_dir():
            env["MPLCONFIGDIR"] = str(mpl.resolve())
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [self.python, "-I", str(SANDBOXED / "zygote.py"), json.dumps(sorted(imports))],
                stdin=theirs.fileno(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=env, cwd="/", start_new_session=True)
        finally:
            theirs.close()
        self.sock = ours
        self.imports = set(imports)
        self.ready_at = None

    def get(self, imports: set[str], support_dir: Path):
        """This zygote, ready for ``imports``; None when it cannot be used."""
        if self.disabled:
            return None
        if self.proc is None or self.proc.poll() is not None or not imports <= self.imports:
            self.start(imports, support_dir)
        if self.ready_at is None:
            self.sock.settimeout(300)
            try:
                ready = self.sock.recv(16) == protocol.READY
            except OSError:
                ready = False
            if not ready:
                self.stop()
                self.disabled = True
                return None
            self.ready_at = time.monotonic()
        return self

    def run(self, pid: int, out_w: int, err_w: int, uid: int, limits: sandbox.Limits,
            procs_files: list[str]) -> None:
        socket.send_fds(self.sock, [protocol.zygote_request(pid, "/submission", "/job/job.json", uid,
                                                            asdict(limits), procs_files)],
                        [out_w, err_w])

    def answer(self, timeout: float):
        """The zygote's report that the run ended, or None if none came in ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1024)
        except (TimeoutError, OSError):
            return None
        return json.loads(data) if data else {"status": None}

    def stop(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            kill(self.proc)
            self.proc.wait()
            self.proc = None


class Launcher:
    """Runs a worker's jobs in sandboxes (its slot, its zygote, its control group)."""

    def __init__(self, settings, slot: int, run_name: str):
        self.settings = settings
        self.slot = slot
        self.python = sandbox.python_executable()
        self.zygote = Zygote(self.python)
        self.group = None
        self.group_note = None
        if not settings.unsafe:
            lim = settings.limits
            self.group, self.group_note = cgroups.detect(slot, lim.total_memory_mb, lim.processes,
                                                         run_name)

    @property
    def use_zygote(self) -> bool:
        return (not self.settings.unsafe and os.geteuid() == 0
                and self.settings.support_dir is not None)

    def preload(self, imports: set[str]) -> None:
        """Start the zygote now, so that it loads while the grader does other work."""
        if self.use_zygote and not self.zygote.disabled:
            self.zygote.start(imports, self.settings.support_dir)

    def stop(self) -> None:
        self.zygote.stop()
        if self.group is not None:
            self.group.remove()

    # ------------------------------------------------------------------ one job

    def _job_dir(self, job: dict, extra_files) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="coursetools-job-"))
        os.chmod(folder, 0o755)
        with open(folder / "job.json", "w") as fh:
            json.dump(job, fh)
        files = folder / "files"
        files.mkdir()
        for path in extra_files:
            (shutil.copytree if path.is_dir() else shutil.copy)(path, files / path.name)
        for root, dirs, names in os.walk(folder):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
            for n in names:
                os.chmod(os.path.join(root, n), 0o644)
        return folder

    def _binds(self, folder: Path, env: dict) -> dict:
        """What a sandbox sees (read-only) besides the Python environment."""
        binds = {str(folder): "/job", str(SANDBOXED): "/grader"}
        pkg = sandbox.package_dir("mlmhelpers")
        if pkg is not None and not sandbox._under_site_packages(pkg):
            binds[str(pkg)] = str(pkg)
        data = sandbox.course_data_dir()
        if data is not None:
            binds[str(data)] = "/coursedata"
            env["MLM_DATA_DIR"] = "/coursedata"
        support = self.settings.support_dir
        if support is not None:
            binds.update(sandbox.write_identity(support, self.slot))
            mpl = support / "mplcache"
            if mpl.is_dir():
                binds[str(mpl)] = "/mplcache"
                # where the zygote's matplotlib found its font cache, at the same path
                binds[str(mpl.resolve())] = str(mpl.resolve())
        return binds

    def _start_holder(self, binds, env):
        """A fresh sandbox whose only process waits: the zygote's fork joins it.

        Returns (bwrap process, the process id whose namespaces are the sandbox's).
        """
        read_info, write_info = os.pipe()
        try:
            cmd = sandbox.sandbox_command(["/bin/sh", "-c", "echo ready; exec sleep infinity"],
                                          slot=self.slot, ro_binds=binds, limits=self.settings.limits,
                                          env=env, cwd="/submission", info_fd=write_info)
            proc = subprocess.Popen(_joining(self._procs_files(), cmd), stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env={},
                                    start_new_session=True, pass_fds=(write_info,))
        finally:
            os.close(write_info)
        with os.fdopen(read_info, "rb") as fh:
            info = b""
            while b"}" not in info:
                chunk = fh.read1(4096)
                if not chunk:
                    break
                info += chunk
        ready = proc.stdout.readline().strip() == b"ready"
        try:
            pid = int(json.loads(info[:info.index(b"}") + 1])["child-pid"])
        except (ValueError, KeyError):
            pid = None
        if not ready or pid is None:
            kill(proc)
            proc.wait()
            return None, None
        return proc, pid

    def _procs_files(self) -> list[str]:
        return self.group.procs_files if self.group is not None else []

    def run(self, job: dict, imports: set[str], extra_files, cell_name):
        """Run the job; return (parsed result, None) or (None, why it failed)."""
        settings = self.settings
        folder = self._job_dir(job, extra_files)
        env = environment(str(Path(self.python).parent))
        preloading = time.monotonic()
        zygote = self.zygote.get(imports, settings.support_dir) if self.use_zygote else None
        preloading = time.monotonic() - preloading
        holder, ns_pid, work = None, None, None
        before = self.group.counters() if self.group is not None else None
        try:
            if settings.unsafe:
                work = Path(tempfile.mkdtemp(prefix="coursetools-unsafe-"))
                env = dict(env, HOME=str(work / "home"), MPLCONFIGDIR=str(work / "home" / "mpl"),
                           TMPDIR=str(work / "tmp"))
                for sub in ("tmp", "home", "cwd"):
                    (work / sub).mkdir()
                cmd = [self.python, "-I", str(SANDBOXED / "runner.py"), str(folder / "job.json")]
                cwd = str(work / "cwd")
            else:
                binds = self._binds(folder, env)
                if zygote is not None:
                    holder, ns_pid = self._start_holder(binds, env)
                if holder is None:  # a fresh Python in the sandbox
                    cmd = _joining(self._procs_files(), sandbox.sandbox_command(
                        [self.python, "-I", "/grader/runner.py", "/job/job.json"],
                        slot=self.slot, ro_binds=binds, limits=settings.limits, env=env,
                        cwd="/submission", info_fd=None))
                cwd = None
            if holder is not None:
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
                try:
                    sent = time.monotonic()
                    zygote.run(ns_pid, out_w, err_w, sandbox.sandbox_uid(self.slot), settings.limits,
                               self._procs_files())
                finally:
                    os.close(out_w)
                    os.close(err_w)
                proc = holder
                stdout, stderr = os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb")
            else:
                sent = time.monotonic()
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        stdin=subprocess.DEVNULL, cwd=cwd,
                                        env=env if settings.unsafe else {}, start_new_session=True)
                stdout, stderr = proc.stdout, proc.stderr
            state = {"cell": None, "stderr": [], "stdout": bytearray(), "too_big": False,
                     "zygote failed": False}
            readers = self._readers(proc, stdout, stderr, state)
            stopped = self._wait(proc, holder, zygote, ns_pid)
            for t in readers:
                t.join(timeout=10)
            if holder is not None:
                stdout.close()
                stderr.close()
            if self.group is not None:
                self.group.empty()
        finally:
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(folder, ignore_errors=True)
        if holder is not None and not stopped and state["zygote failed"]:
            # The fork could not enter the sandbox: no student code ran.  Run this and
            # every later notebook of this worker in a fresh Python instead.
            self.zygote.stop()
            self.zygote.disabled = True
            return self.run(job, imports, extra_files, cell_name)
        limit_hits = self._limit_hits(before)
        where = cell_name(state["cell"])
        if stopped:
            return None, stopped + (f" in {where}" if state["cell"] is not None else "")
        if state["too_big"]:
            return None, f"the notebook produced more data than the grader accepts (stopped in {where})"
        try:
            raw = protocol.read_result(state["stdout"])
        except ValueError:
            detail = next((line for line in reversed(state["stderr"]) if line.strip()), "")
            return None, (f"the sandbox stopped while running {where} (exit status {proc.returncode})"
                          + (f": {detail[:200]}" if detail else "") + _limit_note(limit_hits))
        status = raw.get("status")
        cell = raw.get("cell") if isinstance(raw.get("cell"), int) else state["cell"]
        where = cell_name(cell)
        if status == "dead":
            return None, f"the kernel died while running {where}" + _limit_note(limit_hits)
        if status == "unresponsive":
            return None, (f"{where} outran the {settings.timeout:g} s timeout and ignored the interrupt "
                          "(it catches KeyboardInterrupt)")
        if status != "ok":
            return None, f"the notebook could not be run ({str(status)[:200]})"
        raw["_sent"] = sent
        raw["_preloading"] = preloading
        raw["_limit_hits"] = limit_hits
        leftover = raw.get("leftover")
        if isinstance(leftover, list) and leftover:
            raw["_leftover"] = [str(x)[:40] for x in leftover[:10]]
        return raw, None

    def _readers(self, proc, stdout, stderr, state) -> list[threading.Thread]:
        cap = self.settings.max_capture_bytes + 64 * 1024 * 1024

        def read_out():
            while True:
                chunk = stdout.read(1 << 20)
                if not chunk:
                    return
                if len(state["stdout"]) + len(chunk) > cap:
                    state["too_big"] = True
                    kill(proc)
                    return
                state["stdout"] += chunk

        def read_err():
            for line in stderr:
                text = line[:2000].decode(errors="replace").rstrip()
                index = protocol.parse_progress(text)
                if index is not None:
                    state["cell"] = index
                elif len(state["stderr"]) < 40:
                    state["stderr"].append(text)
                    if text.startswith("zygote: ") and state["cell"] is None:
                        state["zygote failed"] = True  # before any student code ran

        threads = [threading.Thread(target=read_out, daemon=True),
                   threading.Thread(target=read_err, daemon=True)]
        for t in threads:
            t.start()
        return threads

    def _wait(self, proc, holder, zygote, ns_pid) -> str | None:
        """Wait for the run to end; stop it past a limit.  Returns why it was stopped, or None."""
        settings = self.settings
        deadline = time.monotonic() + settings.max_time
        watch = self.group is None and not settings.unsafe and ns_pid is not None
        cap = settings.limits.total_memory_mb
        stopped = None
        while True:
            step = max(0.0, min(WATCH_INTERVAL if watch else 3600.0, deadline - time.monotonic()))
            if holder is not None:
                done = zygote.answer(step) is not None
            else:
                try:
                    proc.wait(timeout=step)
                    done = True
                except subprocess.TimeoutExpired:
                    done = False
            if done:
                break
            if time.monotonic() >= deadline:
                stopped = (f"timeout: autograding took longer than {settings.max_time:g} s "
                           "(the whole submission's wall-clock limit) and was stopped")
                break
            if watch:
                used, _ = cgroups.resident_memory_mb(ns_pid)
                if used > cap:
                    stopped = (f"submission limit: its processes together used more than the "
                               f"{cap:,} MB of memory a whole submission may use, and it was stopped")
                    break
        if stopped is not None or holder is not None:
            kill(proc)  # ends the sandbox: every process the notebook left behind
            if holder is not None and stopped is not None and zygote.answer(30) is None:
                zygote.stop()
        proc.wait()
        return stopped

    def _limit_hits(self, before) -> dict[str, int]:
        if self.group is None or before is None:
            return {}
        after = self.group.counters()
        return {k: after[k] - before.get(k, 0) for k in after if after[k] > before.get(k, 0)}

    def describe(self) -> str:
        """How the whole-submission limits are enforced by this launcher (for the run's header)."""
        lim = self.settings.limits
        if self.settings.unsafe:
            return "no limits (no sandbox)"
        how = (f"{self.group.kind}" if self.group is not None
               else f"memory watched by the grader ({self.group_note})")
        return (f"each submission: {lim.total_memory_mb:,} MB of memory, {lim.processes} processes, "
                f"{lim.disk_mb:,} MB of disk, {self.settings.max_time:g} s ({how})")


def _limit_note(hits: dict) -> str:
    notes = []
    if hits.get("memory"):
        notes.append("the whole-submission memory limit was reached")
    if hits.get("processes"):
        notes.append("the whole-submission process limit was reached")
    return f" ({'; '.join(notes)})" if notes else ""
