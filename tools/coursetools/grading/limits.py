"""Limits that hold for a whole submission, whatever it starts: control groups.

Per-process limits (rlimits) cannot cap the sum: a notebook that starts ten
processes of 3 GB each stays under a 4 GB address-space limit per process.
A control group (cgroup) holds every process of one submission, so the
kernel caps their memory together and counts their processes together.

Each grading worker makes one control group for its sandbox slot, used by
one submission after the other (:class:`SubmissionGroup`), with

* ``memory``: the submission's total memory (its memory file system, the
  disk, counts too); past it the kernel's out-of-memory killer stops a
  process of that submission only;
* ``pids``: its processes and threads together; past it, starting another
  fails with "Resource temporarily unavailable".

Which kind: **cgroup v2** (``/sys/fs/cgroup`` a ``cgroup2`` mount with the
``memory`` and ``pids`` controllers that grading may enable under its own
group; Debian and Ubuntu with systemd, graded as root or in a delegated
group), else **cgroup v1** (the ``memory`` and ``pids`` hierarchies,
writable by root: older systems and many containers).  Where neither can be
made (an ordinary user without a delegated group, or no controllers),
:func:`detect` says why and the grader watches instead: it adds up the
resident memory of the sandbox's processes several times a second and stops
the submission past the limit (a process can overshoot between two looks,
each still capped by its own address-space limit); the process count stays
per sandbox user (``RLIMIT_NPROC``).  Disk and wall-clock time never need a
cgroup: the disk is one size-limited memory file system and the clock is the
grader's.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SubmissionGroup", "detect", "resident_memory_mb", "CGROUP_ROOT"]

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_paths() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's group path, from /proc/self/cgroup."""
    paths = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    except (OSError, ValueError):
        pass
    return paths


def _fs_type(path: Path) -> str | None:
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[1] == str(path):
                return fields[2]
    except OSError:
        pass
    return None


@dataclass
class SubmissionGroup:
    """The control group(s) of one sandbox slot: join, read the counters, empty, remove."""

    kind: str                 # "cgroup v2" or "cgroup v1"
    dirs: dict[str, Path]     # controller -> folder ("" for v2's single folder)
    memory_mb: int
    processes: int

    @property
    def procs_files(self) -> list[str]:
        """Files a process writes its id to, to join this group (every hierarchy of v1)."""
        return [str(d / "cgroup.procs") for d in dict.fromkeys(self.dirs.values())]

    def counters(self) -> dict[str, int]:
        """How often the memory and process limits stopped something so far."""
        out = {"memory": 0, "processes": 0}
        if self.kind == "cgroup v2":
            events = _keyed(self.dirs[""] / "memory.events")
            out["memory"] = events.get("oom_kill", 0)
            out["processes"] = _keyed(self.dirs[""] / "pids.events").get("max", 0)
        else:
            out["memory"] = _keyed(self.dirs["memory"] / "memory.oom_control").get("oom_kill", 0)
            out["processes"] = _keyed(self.dirs["pids"] / "pids.events").get("max", 0)
        return out

    def pids(self) -> list[int]:
        found = set()
        for procs in self.procs_files:
            try:
                found.update(int(x) for x in Path(procs).read_text().split())
            except (OSError, ValueError):
                pass
        return sorted(found)

    def empty(self, timeout: float = 10.0) -> bool:
        """Kill whatever is still in the group; True once it is empty."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.pids()
            if not left:
                return True
            if self.kind == "cgroup v2" and (self.dirs[""] / "cgroup.kill").exists():
                _write(self.dirs[""] / "cgroup.kill", "1")
            else:
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def remove(self) -> None:
        self.empty()
        for folder in dict.fromkeys(self.dirs.values()):
            try:
                folder.rmdir()
            except OSError:
                pass
        for folder in {d.parent for d in self.dirs.values()}:
            try:
                folder.rmdir()  # the run's folder, once its last slot is gone
            except OSError:
                pass


def _keyed(path: Path) -> dict[str, int]:
    out = {}
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                out[key] = int(value)
    except OSError:
        pass
    return out


def _write(path: Path, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _make_v2(name: str, slot: int, memory_mb: int, processes: int) -> SubmissionGroup:
    base = CGROUP_ROOT / _own_paths().get("", "/").lstrip("/")
    available = (base / "cgroup.controllers").read_text().split()
    if not {"memory", "pids"} <= set(available):
        raise OSError(f"cgroup v2 at {base} offers {available or 'no controllers'}, "
                      "not memory and pids")
    run = base / name
    run.mkdir(exist_ok=True)
    # A group whose controllers its children use may hold no process itself (v2's
    # rule): the run's folder holds only the slots' groups.
    _write(run / "cgroup.subtree_control", "+memory +pids")
    group = run / f"slot{slot}"
    group.mkdir(exist_ok=True)
    _write(group / "memory.max", str(memory_mb * 1024 * 1024))
    if (group / "memory.swap.max").exists():
        _write(group / "memory.swap.max", "0")
    _write(group / "pids.max", str(processes))
    return SubmissionGroup("cgroup v2", {"": group}, memory_mb, processes)


def _make_v1(name: str, slot: int, memory_mb: int, processes: int) -> SubmissionGroup:
    own = _own_paths()
    dirs = {}
    for controller in ("memory", "pids"):
        mount = CGROUP_ROOT / controller
        if _fs_type(mount) != "cgroup" or controller not in own:
            raise OSError(f"no cgroup v1 {controller} hierarchy at {mount}")
        run = mount / own[controller].lstrip("/") / name
        run.mkdir(exist_ok=True)
        dirs[controller] = run / f"slot{slot}"
        dirs[controller].mkdir(exist_ok=True)
    limit = str(memory_mb * 1024 * 1024)
    _write(dirs["memory"] / "memory.limit_in_bytes", limit)
    if (dirs["memory"] / "memory.memsw.limit_in_bytes").exists():
        try:  # no swap either, where the kernel accounts for it
            _write(dirs["memory"] / "memory.memsw.limit_in_bytes", limit)
        except OSError:
            pass
    _write(dirs["pids"] / "pids.max", str(processes))
    return SubmissionGroup("cgroup v1", dirs, memory_mb, processes)


def detect(slot: int, memory_mb: int, processes: int, name: str | None = None):
    """This worker's group for sandbox ``slot``: (SubmissionGroup, None) or (None, why not)."""
    name = name or f"coursetools-{os.getpid()}"
    if os.environ.get("COURSETOOLS_CGROUPS") == "off":  # a test, or a tutor who wants none
        return None, "switched off (COURSETOOLS_CGROUPS=off)"
    reasons = []
    if _fs_type(CGROUP_ROOT) == "cgroup2":
        try:
            return _make_v2(name, slot, memory_mb, processes), None
        except OSError as err:
            reasons.append(f"cgroup v2: {err.strerror or err}")
    else:
        try:
            return _make_v1(name, slot, memory_mb, processes), None
        except OSError as err:
            reasons.append(f"cgroup v1: {err.strerror or err}")
    return None, "; ".join(reasons)


def resident_memory_mb(pid_namespace_of: int) -> tuple[float, int]:
    """(resident memory in MB, number of processes) of the PID namespace of process ``pid_namespace_of``.

    What the grader watches where no control group can be made.
    """
    try:
        target = os.stat(f"/proc/{pid_namespace_of}/ns/pid").st_ino
    except OSError:
        return 0.0, 0
    total, count = 0, 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/pid").st_ino != target:
                continue
            with open(f"/proc/{entry}/statm") as fh:
                total += int(fh.read().split()[1])
            count += 1
        except (OSError, ValueError, IndexError):
            pass
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20, count
