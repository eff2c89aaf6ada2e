"""Run one student's code in a throw-away sandbox (Linux namespaces via bubblewrap).

The grader never runs a student's notebook in its own process tree with the
tutor's rights.  Each submission gets a sandbox made by ``bwrap`` (Debian
package ``bubblewrap``):

* its own mount namespace holding only what a notebook needs, read-only: the
  system's ``/usr`` (and ``/lib*``), a few files of ``/etc`` (dynamic linker
  cache, certificates, fonts), the Python installation and virtual
  environment of the grader, the helper library and the course data;
  everything it may write (``/tmp``, the home folder ``/home/student`` and the
  working folder ``/submission``, both links into ``/tmp``) is one
  size-limited memory file system (the submission's disk) that vanishes with
  the sandbox;
* no network (a new network namespace with only loopback), its own process,
  IPC and host-name namespaces, a new session (no terminal to inject into);
* an unprivileged user with no capabilities and ``no_new_privs``: when the
  grader runs as root, a user of its own per worker (uid 60000 + worker
  number); otherwise the tutor's uid inside a user namespace of its own.
  Resource limits on address space, processes, file size, open files and CPU
  time;
* an empty environment apart from a handful of harmless variables.

When the sandbox's first process exits (or the grader dies:
``--die-with-parent``), the kernel kills every other process of its PID
namespace, so nothing a student started - detached with ``setsid`` or not -
outlives the grading of that submission.

Not inside: the course folder, ``solutions/``, ``gradebook.db``, other
students' submissions and feedback, the tutor's home and environment.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SandboxUnavailable", "Limits", "check_sandbox", "sandbox_command", "INSTALL_HINT",
           "python_executable"]

INSTALL_HINT = (
    "Grading runs every submission in a bubblewrap sandbox. Install it with "
    "`apt-get install bubblewrap` (Debian/Ubuntu; `dnf install bubblewrap` on Fedora), "
    "or pass --unsafe-no-sandbox to run student code without isolation "
    "(only on a machine without namespaces, and never for untrusted submissions)."
)

UID_BASE = 60000


class SandboxUnavailable(RuntimeError):
    """No sandbox can be made on this machine; the message says what to install."""


@dataclass
class Limits:
    """Resource limits of one sandbox.

    Per process (rlimits): address space, file size, open files, CPU time.
    For the whole submission: its memory (the sum over its processes, with a
    control group; see :mod:`.limits`), its processes and threads, its disk
    (the one memory file system it may write) and, set by the grader, its
    wall-clock time.
    """

    memory_mb: int = 4096        # address space of each process (RLIMIT_AS)
    total_memory_mb: int = 4096  # memory of all the submission's processes together
    processes: int = 256         # processes and threads of the whole submission
    file_mb: int = 256           # largest file a process may write
    disk_mb: int = 1024          # everything the submission writes (/tmp, home, working folder)
    open_files: int = 1024
    cpu_seconds: int = 3600      # CPU time of each process


def _bwrap() -> str | None:
    if "COURSETOOLS_BWRAP" in os.environ:  # a test or an unusual install names it
        path = os.environ["COURSETOOLS_BWRAP"]
        return path if path and os.access(path, os.X_OK) else None
    return shutil.which("bwrap") or next(
        (p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.path.exists(p)), None)


def _setpriv() -> str | None:
    return shutil.which("setpriv") or next(
        (p for p in ("/usr/bin/setpriv", "/bin/setpriv") if os.path.exists(p)), None)


def _ancestors(path: Path) -> list[Path]:
    return [p for p in reversed(path.parents) if str(p) != "/"]


def python_executable() -> str:
    """This Python as a sandbox runs it: the environment's folder resolved, the file name kept.

    A virtual environment that is a symbolic link (``.venv -> /elsewhere/venv``)
    is mounted at its resolved place; the sandbox must run it from there.  The
    file name is kept (``bin/python``, itself a link to the base Python), so
    Python still finds the environment's ``pyvenv.cfg`` beside it.
    """
    exe = Path(sys.executable)
    return str(exe.parent.resolve() / exe.name)


def _python_paths() -> list[Path]:
    """Read-only folders the grader's Python needs: its prefix and the venv."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        value = sysconfig.get_paths().get(key)
        if value:
            paths.add(Path(value).resolve())
    exe = Path(sys.executable).resolve()
    paths.add(exe.parent)
    return sorted(paths)


def package_dir(name: str) -> Path | None:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def course_data_dir() -> Path | None:
    """The data folder ``mlmhelpers.load_dataset`` reads (same search as the library)."""
    env = os.environ.get("MLM_DATA_DIR")
    pkg = package_dir("mlmhelpers")
    candidates = [Path(env)] if env else []
    if pkg is not None:
        candidates += [pkg / "_data", pkg.parent.parent / "data"]
    for folder in candidates:
        if (folder / "tutorial.csv").is_file():
            return folder.resolve()
    return None


def _under_site_packages(path: Path) -> bool:
    return any(part in ("site-packages", "dist-packages") for part in path.parts)


def sandbox_command(
    argv: list[str],
    *,
    slot: int,
    ro_binds: dict[str, str],
    limits: Limits,
    env: dict[str, str],
    cwd: str,
    info_fd: int | None = None,
) -> list[str]:
    """The command line that runs ``argv`` in a fresh sandbox.

    ``ro_binds`` maps host paths to sandbox paths (read-only).  The Python
    installation, the packages the notebooks import and ``/usr`` are added here.
    """
    bwrap, setpriv = _bwrap(), _setpriv()
    if not bwrap or not setpriv:
        raise SandboxUnavailable(INSTALL_HINT)
    uid = sandbox_uid(slot)
    privileged = os.geteuid() == 0
    # Run as root, each sandbox switches to a user of its own (uid 60000 + slot),
    # so the process limit counts that sandbox alone.  Run as an ordinary user,
    # the sandbox keeps that user's uid in a user namespace of its own; the
    # process limit then also counts the user's other processes.
    nproc = limits.processes if privileged else limits.processes + _own_processes()
    cmd = [
        "prlimit",
        f"--as={limits.memory_mb * 1024 * 1024}",
        f"--fsize={limits.file_mb * 1024 * 1024}",
        f"--nofile={limits.open_files}",
        f"--cpu={limits.cpu_seconds}",
        f"--nproc={nproc}",
        "--core=0",
        "--",
        bwrap,
        "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session", "--hostname", "sandbox",
    ]
    if info_fd is not None:  # bwrap writes the sandbox's process id there
        cmd += ["--info-fd", str(info_fd)]
    if privileged:
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        cmd += ["--unshare-user", "--disable-userns"]
    cmd += [
        "--ro-bind", "/usr", "/usr",
        "--perms", "0755", "--dir", "/etc",
    ]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            cmd += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            cmd += ["--ro-bind", str(host), f"/{name}"]
    for item in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl", "ca-certificates",
                 "fonts", "localtime", "mime.types", "alternatives", "nsswitch.conf"):
        host = Path("/etc") / item
        if host.exists():
            cmd += ["--ro-bind", str(host), str(host)]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    # One memory file system is all the submission may write: its disk.  The home
    # folder and the working folder are links into it.
    cmd += ["--perms", "1777", "--size", str(limits.disk_mb * 1024 * 1024), "--tmpfs", "/tmp"]
    cmd += ["--perms", "0755", "--dir", "/home"]
    for name, where in (("home", "/home/student"), ("work", cwd)):
        cmd += ["--perms", "1777", "--dir", f"/tmp/.{name}", "--symlink", f"/tmp/.{name}", where]
    made: set[Path] = set()
    paths = _python_paths()
    paths = [p for p in paths if not any(q != p and q in p.parents for q in paths)]
    binds = [(str(p), str(p)) for p in paths] + sorted(ro_binds.items())
    for host, inside in binds:
        for parent in _ancestors(Path(inside)):
            if parent not in made and str(parent) not in ("/usr", "/etc", "/tmp", "/home", "/home/student"):
                cmd += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        cmd += ["--ro-bind", host, inside]
        made.add(Path(inside))
    cmd += ["--clearenv"]
    for key, value in sorted(env.items()):
        cmd += ["--setenv", key, value]
    cmd += ["--chdir", cwd, "--"]
    if privileged:
        cmd += [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return cmd + list(argv)


def sandbox_uid(slot: int) -> int:
    """The user id code runs as in sandbox ``slot``."""
    return UID_BASE + slot if os.geteuid() == 0 else os.getuid()


def _own_processes() -> int:
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    return count


def write_identity(folder: Path, slot: int) -> dict[str, str]:
    """Write /etc/passwd and /etc/group for the sandbox user; return their binds."""
    uid = sandbox_uid(slot)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"passwd{slot}").write_text(
        "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
        f"student:x:{uid}:{uid}:student:/home/student:/bin/sh\n")
    (folder / f"group{slot}").write_text(f"root:x:0:\nstudent:x:{uid}:\n")
    return {str(folder / f"passwd{slot}"): "/etc/passwd", str(folder / f"group{slot}"): "/etc/group"}


def check_sandbox() -> None:
    """Raise :class:`SandboxUnavailable` unless a sandbox works here."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable("The grading sandbox needs Linux namespaces. " + INSTALL_HINT)
    if not _bwrap():
        raise SandboxUnavailable("bubblewrap (`bwrap`) is not installed. " + INSTALL_HINT)
    if not _setpriv() or not shutil.which("prlimit"):
        raise SandboxUnavailable("`setpriv` and `prlimit` (Debian package util-linux) are needed. "
                                 + INSTALL_HINT)
    cmd = sandbox_command([python_executable(), "-I", "-c", "print('ok')"], slot=0, ro_binds={},
                          limits=Limits(), env={"PATH": "/usr/bin:/bin"}, cwd="/submission")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0 or out.strip() != b"ok":
        raise SandboxUnavailable(
            "bubblewrap is installed but could not create a sandbox here "
            f"({err.decode(errors='replace').strip()[:300]}). " + INSTALL_HINT)
