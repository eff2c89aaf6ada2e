"""A grading worker's preloaded Python: each submission runs in a fresh fork of it.

Started by the grader (never inside a sandbox, never given student data) as
``python -I zygote.py IMPORTS_JSON`` with the sandbox's minimal environment
and a Unix socket as its stdin.  It imports the course's libraries once
(numpy, pandas, statsmodels, matplotlib, the helper library, IPython) and then
waits.  For each submission the grader makes a fresh bubblewrap sandbox (its
own mount, PID, network, IPC and UTS namespaces, as for any sandboxed run)
and sends its process id with two pipes.  The zygote forks; the fork enters
that sandbox's namespaces (``setns``) and root, and runs the notebook with
:func:`runner.supervise`, whose child - the only process that runs student
code - first drops every privilege: its own user id, no capabilities (also
none in the bounding set), ``no_new_privs``, a new session, the sandbox's
resource limits, no open files but the two pipes.  It checks that in
``/proc/self/status`` before running anything and stops otherwise.

So each student's code runs in a process of its own that starts with the
libraries already imported, and shares nothing with the tests, the grader
or another student: the zygote itself never runs student code and forks a
fresh process for every submission.
"""

import ctypes
import json
import os
import resource
import signal
import socket
import sys

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
NAMESPACES = ("user", "cgroup", "ipc", "uts", "net", "pid", "mnt")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _enter(pid, cwd, out_fd, err_fd):
    """Move this (single-threaded) process into the namespaces and root of sandbox ``pid``."""
    root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY)
    targets = []
    for name in NAMESPACES:
        path = f"/proc/{pid}/ns/{name}"
        if not os.path.exists(path):
            continue
        if os.stat(path).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
            continue  # already shared (the user namespace when the grader runs as root)
        targets.append((name, os.open(path, os.O_RDONLY)))
    for name, fd in targets:
        _check(_libc.setns(fd, 0), f"setns {name}")
        os.close(fd)
    os.fchdir(root)
    os.chroot(".")
    os.close(root)
    os.chdir(cwd)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.closerange(3, 65536)
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")


def _last_cap():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 63


def _drop(request):
    """In the process that will run student code: give up everything, then check."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    os.setsid()
    limits = request["limits"]
    for name, value in (("RLIMIT_AS", limits["memory_mb"] * 1024 * 1024),
                        ("RLIMIT_FSIZE", limits["file_mb"] * 1024 * 1024),
                        ("RLIMIT_NOFILE", limits["open_files"]),
                        ("RLIMIT_CPU", limits["cpu_seconds"]),
                        ("RLIMIT_NPROC", limits["processes"]),
                        ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))
    for cap in range(_last_cap() + 1):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    uid = int(request["uid"])
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    else:  # in a user namespace of its own: clear the capabilities setns gave
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)()
        _check(_libc.capset(header, data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    with open("/proc/self/status") as fh:
        status = dict(line.split(":", 1) for line in fh if ":" in line)
    caps = [int(status[k].strip(), 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")]
    uids = [int(x) for x in status["Uid"].split()]
    if any(caps) or 0 in uids or status["NoNewPrivs"].strip() != "1":
        raise RuntimeError("could not drop privileges; not running the notebook")


def _load_lazy_names():
    """Packages that import their public names on first use (PEP 562 ``__getattr__``,
    as mlmhelpers does) would load them in every fork: load them here, once."""
    for module in list(sys.modules.values()):
        try:
            names = vars(module).get("__all__") if "__getattr__" in vars(module) else None
            if not isinstance(names, (list, tuple)) or not str(module.__name__).startswith("mlmhelpers"):
                continue
            for name in names:
                getattr(module, name)
        except Exception:  # noqa: BLE001 - the notebook meets the error itself
            pass


def _warm_up():
    """Do once here what every fork would otherwise do again: IPython's imports, the
    syntax highlighter's tables and ``inspect``'s map of module files (both used to
    format a traceback)."""
    import importlib

    for name in ("IPython.core.interactiveshell", "IPython.core.application", "IPython.core.completer",
                 "IPython.core.completerlib", "IPython.core.magics", "IPython.core.oinspect",
                 "IPython.core.ultratb", "IPython.utils.generics", "sqlite3", "traitlets.config"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    try:
        from IPython.core import ultratb

        formatter = ultratb.AutoFormattedTB(mode="Context")
        try:
            exec(compile("raise ValueError('warm-up')", "<warm-up>", "exec"), {})
        except ValueError:
            formatter.structured_traceback(*sys.exc_info())
    except Exception:  # noqa: BLE001 - only slower without it
        pass


def main():
    sys.modules.setdefault("rfc3987_syntax", None)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import protocol
    import runner

    for statement in json.loads(sys.argv[1]):
        try:
            exec(compile(statement, "<course imports>", "exec"), {})
        except Exception:  # noqa: BLE001 - the notebook imports it again and sees the error
            pass
    _load_lazy_names()
    _warm_up()

    sock = socket.socket(fileno=0)
    sock.sendall(protocol.READY)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 1 << 16, 2)
        except OSError:
            return
        if not message:
            return
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            code = 71
            try:
                os.dup2(fds[1], 2)  # a failure to enter is reported to the grader
                for procs in request.get("cgroup_procs") or []:
                    # the submission's control group (whole-submission limits), joined
                    # before anything of the sandbox runs; children inherit it
                    with open(procs, "w") as fh:
                        fh.write(str(os.getpid()))
                _enter(int(request["pid"]), request["cwd"], fds[0], fds[1])
                code = runner.supervise(request["job"], child_setup=lambda: _drop(request))
            except BaseException as err:  # noqa: BLE001
                try:
                    os.write(2, f"zygote: {type(err).__name__}: {err}\n".encode())
                except OSError:
                    pass
            os._exit(code)
        for fd in fds:
            os.close(fd)
        _, status = os.waitpid(pid, 0)
        sock.sendall(json.dumps({"status": status}).encode())


if __name__ == "__main__":
    main()
