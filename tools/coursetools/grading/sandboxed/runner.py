"""Execute one student notebook inside the grading sandbox (see coursetools.grading.sandbox).

Run as ``python -I runner.py /job/job.json`` inside a fresh sandbox, or called
by ``zygote.py`` in a process that has just entered one.  Nothing here is
trusted by the grader: whatever this process prints is parsed strictly and
size-limited on the other side.

There is no Jupyter kernel and no ZMQ: :func:`supervise` forks one process
that runs the cells in order in an IPython shell (the same shell a kernel
wraps), recording each cell's outputs, errors and displayed values as a kernel
would report them, while the supervising process watches the clock.  A cell
that outruns the timeout gets SIGINT (a kernel's interrupt); one that ignores
it is killed and reported as unresponsive; a process that dies is reported as
a dead kernel, with the cell it was running.

The job holds the notebook with every test cell's code removed; at each test
cell the runner instead records the values the test will need
(``capture.py``) into ``/tmp``.  At the end it prints one JSON document: the
outputs of every cell, the captured values and how the run ended.
"""

import io
import json
import os
import select
import signal
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from protocol import cut as _cut, progress_line, result_frame  # noqa: E402 - shared with the grader

GRACE = 5.0  # seconds a cell has to stop after its interrupt


def _limit_outputs(outputs, limit):
    """Cut a cell's texts and images to ``limit`` characters in all.

    Once the budget is spent, later outputs still appear (an error message
    after a flood of prints matters) but each is cut to a few lines.
    """
    budget = limit
    kept = []
    for out in outputs[:500]:
        out = dict(out)
        room = max(budget, 2000)
        if out.get("output_type") == "stream":
            out["text"] = _cut(out.get("text", ""), room, "a printed output")
            budget -= len(out["text"])
        elif out.get("output_type") in ("display_data", "execute_result"):
            data = {}
            for mime, value in (out.get("data") or {}).items():
                if isinstance(value, list):
                    value = "".join(value)
                if not isinstance(value, str):
                    value = json.dumps(value)[:limit]
                if len(value) > room:
                    if mime == "text/plain":
                        value = _cut(value, room, "a displayed value")
                    else:
                        data.setdefault("text/plain", f"[{mime} output of {len(value):,} characters "
                                                      "cut by the grader]")
                        continue
                data[mime] = value
                budget -= len(value)
            out["data"] = data
        elif out.get("output_type") == "error":
            out["traceback"] = [str(t)[:2000] for t in out.get("traceback", [])[:60]]
            out["evalue"] = str(out.get("evalue", ""))[:2000]
        kept.append(out)
    return kept


def _leftover(spare=()):
    """Processes still running in this sandbox (its own PID namespace) besides the runner."""
    if os.getpid() > 10:  # not in a PID namespace of its own (unsafe mode): nothing to list
        return []
    mine = {os.getpid(), 1, *spare}
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in mine:
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(stat[stat.index("(") + 1:stat.rindex(")")])
            except OSError:
                pass
    return found


def _emit(doc):
    # Anything else written to this stdout (a library printing from C) comes
    # before the marker; the grader reads what follows the last marker.
    os.write(1, result_frame(doc))


# ---------------------------------------------------------------------------
# the supervising process
# ---------------------------------------------------------------------------


def supervise(job_path, child_setup=None):
    """Run the notebook of ``job_path`` in a child process; return an exit status.

    ``child_setup`` runs in the child first (the zygote drops its privileges
    there).  When the child dies or stops answering, a result saying so is
    printed here.
    """
    with open(job_path) as fh:
        timeout = float(json.load(fh)["timeout"])
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            if child_setup is not None:
                try:
                    child_setup()
                except BaseException as err:  # noqa: BLE001 - no student code has run
                    os.write(2, f"zygote: {type(err).__name__}: {err}\n".encode()[:2000])
                    os._exit(71)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            execute(job_path, write_end)
        except BaseException as err:  # noqa: BLE001 - reported through the status
            try:
                os.write(2, f"runner: {type(err).__name__}: {err}\n".encode()[:2000])
            except OSError:
                pass
            os._exit(70)
        os._exit(0)
    os.close(write_end)
    current, started, interrupted, buffer, finished = None, None, None, b"", False
    status = None
    while status is None:
        now = time.monotonic()
        wait = 1.0
        if current is not None:
            wait = max(0.05, min(wait, started + timeout - now if interrupted is None
                                 else interrupted + GRACE - now))
        ready, _, _ = select.select([read_end], [], [], wait)
        if ready:
            chunk = os.read(read_end, 4096)
            if not chunk:  # the child is gone
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"s"):
                    try:
                        current, started, interrupted = int(line[1:]), time.monotonic(), None
                    except ValueError:
                        pass
                elif line == b"e":
                    current, interrupted = None, None
                elif line == b"d":
                    finished = True
        now = time.monotonic()
        if current is not None and interrupted is None and now - started > timeout:
            _signal(pid, signal.SIGINT)
            interrupted = now
        elif current is not None and interrupted is not None and now - interrupted > GRACE:
            _signal(pid, signal.SIGKILL)
            status = "unresponsive"
    _, code = os.waitpid(pid, 0)
    if status is None and (not finished or os.WIFSIGNALED(code) or os.WEXITSTATUS(code) != 0):
        status = "dead"
    if status is not None:
        _emit({"status": status, "cell": current})
        return 1
    return 0


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass


# ---------------------------------------------------------------------------
# the process that runs the cells
# ---------------------------------------------------------------------------


def _shell():
    """An IPython shell whose outputs are recorded the way a kernel reports them."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    record = {"outputs": None, "count": None}

    def add(out):
        if record["outputs"] is not None:
            record["outputs"].append(out)

    class Stream:
        """sys.stdout / sys.stderr of the cells: text becomes stream outputs."""

        encoding = "utf-8"
        errors = "replace"

        def __init__(self, name):
            self.name = name

        def write(self, text):
            if not isinstance(text, str):
                text = str(text)
            outputs = record["outputs"]
            if outputs is None or not text:
                return len(text)
            if outputs and outputs[-1].get("output_type") == "stream" and outputs[-1]["name"] == self.name:
                if len(outputs[-1]["text"]) < 4_000_000:  # the rest would be cut anyway
                    outputs[-1]["text"] += text
            else:
                outputs.append({"output_type": "stream", "name": self.name, "text": text})
            return len(text)

        def writelines(self, lines):
            for line in lines:
                self.write(line)

        def flush(self):
            pass

        def isatty(self):
            return False

        def fileno(self):
            raise io.UnsupportedOperation("no file descriptor")

        @property
        def closed(self):
            return False

        def readable(self):
            return False

        def writable(self):
            return True

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            add({"output_type": "display_data", "data": dict(data), "metadata": {}})

        def clear_output(self, wait=False):
            if record["outputs"] is not None:
                record["outputs"].clear()

    class Hook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            add({"output_type": "execute_result", "data": dict(format_dict), "metadata": {},
                 "execution_count": self.prompt_count})

        def finish_displayhook(self):
            pass

    class Shell(InteractiveShell):
        displayhook_class = Hook
        display_pub_class = Publisher

        def _showtraceback(self, etype, evalue, stb):
            add({"output_type": "error", "ename": getattr(etype, "__name__", str(etype)),
                 "evalue": str(evalue), "traceback": list(stb)})

        def enable_gui(self, gui=None):
            pass

    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"  # kept in memory: a trailing ";" still hides a value
    cfg.InteractiveShell.colors = "Linux"
    cfg.InteractiveShell.xmode = "Plain"
    # The instance, so that display() (and a library calling it) publishes through it.
    shell = Shell.instance(config=cfg)
    shell.system = shell.system_piped
    sys.stdout, sys.stderr = Stream("stdout"), Stream("stderr")
    return shell, record


def execute(job_path, progress_fd):
    """Run every code cell of the job's notebook in order; print the result document."""
    started = time.monotonic()
    with open(job_path) as fh:
        job = json.load(fh)
    job_dir = os.path.dirname(os.path.abspath(job_path))
    here = job.get("grader_dir") or os.path.dirname(os.path.abspath(__file__))
    files = os.path.join(job_dir, "files")
    for name in os.listdir(files) if os.path.isdir(files) else []:
        src = os.path.join(files, name)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, os.path.join(os.getcwd(), name))
    mpl = os.environ.get("MPLCONFIGDIR")
    for cache in (os.path.join(job_dir, "mplcache"), "/mplcache"):
        if mpl and os.path.isdir(cache) and not os.path.isdir(mpl):
            shutil.copytree(cache, mpl, dirs_exist_ok=True)
            break
    capture_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), ".coursetools-capture")
    os.makedirs(capture_dir, exist_ok=True)

    cells = job["notebook"]["cells"]
    captures = {int(k): v for k, v in job["captures"].items()}

    def snippet(**args):
        args = json.dumps({"watch": job.get("watch", []), "max_bytes": job["max_capture_bytes"], **args})
        return (f"__import__('runpy').run_path({os.path.join(here, 'capture.py')!r}, "
                f"{{'__grader_args__': {args!r}, '__grader_ns__': globals()}});")

    sources = {index: snippet(names=names, path=f"{capture_dir}/{index}.json")
               for index, names in captures.items()}
    # Clock readings (CLOCK_MONOTONIC is the same in every process of the
    # machine): the grader works out the phases of the run from them.
    timing = {}
    shell, record = _shell()
    timing["at shell ready"] = time.monotonic()
    timeout = float(job["timeout"])

    def run(source, index):
        outputs = []
        record["outputs"] = outputs
        os.write(progress_fd, f"s{index}\n".encode())
        if index >= 0:
            print(progress_line(index), file=sys.__stderr__, flush=True)
        now = time.monotonic()
        try:
            shell.run_cell(source, store_history=True)
        except KeyboardInterrupt:  # arrived outside the cell's own code
            outputs.append({"output_type": "error", "ename": "KeyboardInterrupt", "evalue": "",
                            "traceback": ["KeyboardInterrupt"]})
        finally:
            os.write(progress_fd, b"e\n")
            record["outputs"] = None
        elapsed = time.monotonic() - now
        if elapsed >= timeout and any(o.get("ename") == "KeyboardInterrupt" for o in outputs
                                      if o.get("output_type") == "error"):
            outputs.append({"output_type": "error", "ename": "CellTimeoutError", "evalue": "",
                            "traceback": ["\x1b[0;31mCellTimeoutError\x1b[0m: No reply from kernel "
                                          "before timeout"]})
        return outputs, elapsed

    # A first cell, before any student code, records the shell's initial state.
    run(snippet(baseline=True, names=[], path=f"{capture_dir}/baseline.json"), -1)
    results = []
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            results.append(None)
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        if index in sources:
            timing["capturing"] = timing.get("capturing", 0.0) + run(sources[index], index)[1]
            results.append(None)
            continue
        if not source.strip():
            results.append({"execution_count": None, "outputs": []})
            continue
        outputs, elapsed = run(source, index)
        results.append({"execution_count": shell.execution_count - 1,
                        "outputs": _limit_outputs(outputs, job["max_output_chars"])})
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    timing["at cells done"] = time.monotonic()

    values = {}
    try:
        with open(f"{capture_dir}/baseline.json") as fh:
            values["baseline"] = json.load(fh)
    except (OSError, ValueError):
        pass
    budget = job["max_capture_bytes"]
    for index in captures:
        path = f"{capture_dir}/{index}.json"
        try:
            size = os.path.getsize(path)
            if size > budget:
                values[str(index)] = {"__error__": "the values for this test were too large to check"}
                continue
            budget -= size
            with open(path) as fh:
                values[str(index)] = json.load(fh)
        except (OSError, ValueError):
            values[str(index)] = None
    timing["at done"] = time.monotonic()
    _emit({"status": "ok", "cell": None, "cells": results, "values": values,
           "leftover": _leftover(job.get("spare_pids", [])), "timing": timing,
           "seconds": time.monotonic() - started})
    os.write(progress_fd, b"d\n")


def main():
    # jsonschema would otherwise build an RFC 3987 parser at import: over a
    # second of CPU per submission for a check nobody needs here.
    sys.modules.setdefault("rfc3987_syntax", None)
    sys.exit(supervise(sys.argv[1]))


if __name__ == "__main__":
    main()
