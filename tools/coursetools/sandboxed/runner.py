"""Execute one student notebook inside the grading sandbox (see coursetools.sandbox).

Run as ``python -I runner.py /job/job.json``.  Nothing here is trusted by the
grader: whatever this process prints is parsed strictly and size-limited on
the other side.  The job holds the notebook with every test cell's code
removed; at each test cell the runner instead records the values the test
will need (``capture.py``) into ``/tmp``.  At the end it prints one JSON
document: the outputs of every cell, the captured values and how the run ended.
"""

import asyncio
import json
import os
import shutil
import sys
import time

PROGRESS = "@@coursetools-cell "
RESULT = "@@coursetools-result"


def _cut(text, limit, what):
    if len(text) <= limit:
        return text
    return (text[:limit] + f"\n... [output cut by the grader: {what} of {len(text):,} characters; "
            f"the limit is {limit:,}] ...\n")


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


def _leftover():
    """Processes still running in this sandbox (its own PID namespace) besides the runner."""
    if os.getpid() > 10:  # not in a PID namespace of its own (unsafe mode): nothing to list
        return []
    mine = {os.getpid(), 1}
    found = []
    time.sleep(0.2)  # let the kernel that was just shut down exit
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


def main():
    started = time.monotonic()
    # jsonschema (via nbformat) would otherwise build an RFC 3987 parser at
    # import: over a second of CPU per submission for a check nobody needs here.
    sys.modules.setdefault("rfc3987_syntax", None)
    with open(sys.argv[1]) as fh:
        job = json.load(fh)
    job_dir = os.path.dirname(os.path.abspath(sys.argv[1]))
    here = os.path.dirname(os.path.abspath(__file__))
    files = os.path.join(job_dir, "files")
    for name in os.listdir(files) if os.path.isdir(files) else []:
        src = os.path.join(files, name)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, os.path.join(os.getcwd(), name))
    mpl = os.environ.get("MPLCONFIGDIR")
    for cache in (os.path.join(job_dir, "mplcache"), "/mplcache"):
        if mpl and os.path.isdir(cache):
            shutil.copytree(cache, mpl, dirs_exist_ok=True)
            break
    capture_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), ".coursetools-capture")
    os.makedirs(capture_dir, exist_ok=True)

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbformat import NotebookNode

    nb = nbformat.from_dict(job["notebook"])
    captures = {int(k): v for k, v in job["captures"].items()}
    def snippet(**args):
        args = json.dumps({"watch": job.get("watch", []), "max_bytes": job["max_capture_bytes"], **args})
        return (f"__import__('runpy').run_path({os.path.join(here, 'capture.py')!r}, "
                f"{{'__grader_args__': {args!r}, '__grader_ns__': globals()}});")

    for index, names in captures.items():
        nb.cells[index].source = snippet(names=names, path=f"{capture_dir}/{index}.json")
    # A first cell, before any student code, records the kernel's initial state.
    nb.cells.insert(0, nbformat.v4.new_code_cell(snippet(baseline=True, names=[],
                                                         path=f"{capture_dir}/baseline.json")))

    class Client(NotebookClient):
        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            now = time.monotonic()
            timing.setdefault("kernel_ready", now - started)
            if cell_index == 1:
                timing["setup_cells_from"] = now - started
            self._coursetools_last = cell_index - 1
            print(PROGRESS + str(cell_index - 1), file=sys.stderr, flush=True)
            try:
                return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            finally:
                if cell.cell_type == "code":
                    timing[f"cell {cell_index - 1}"] = time.monotonic() - now

        def on_cell_executed(self, **kwargs):
            # As nbgrader's Execute: a timeout or a swallowed error still shows.
            cell, reply = kwargs["cell"], kwargs["execute_reply"]
            if reply and reply["content"]["status"] == "error":
                if not any(o.output_type == "error" and o.ename == reply["content"]["ename"]
                           for o in cell.outputs):
                    cell.outputs.append(NotebookNode(
                        output_type="error", ename=reply["content"]["ename"],
                        evalue=reply["content"]["evalue"],
                        traceback=reply["content"]["traceback"] or ["(no traceback)"]))

    client = Client(
        nb, timeout=job["timeout"], interrupt_on_timeout=True, allow_errors=True,
        raise_on_iopub_timeout=True, iopub_timeout=5, record_timing=False,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": "",
                          "traceback": ["\x1b[0;31mCellTimeoutError\x1b[0m: No reply from kernel before timeout"]},
        shutdown_kernel="immediate", kernel_name="python3",
        extra_arguments=["--HistoryManager.hist_file=:memory:", "--IPKernelApp.log_level=ERROR"],
        resources={"metadata": {"path": os.getcwd()}},
    )
    status, where = "ok", None
    timing = {"imports_done": time.monotonic() - started}
    start = time.monotonic()
    try:
        client.execute()
    except DeadKernelError:
        status = "dead"
    except CellTimeoutError:
        status = "unresponsive"
    except Exception as err:  # noqa: BLE001 - reported to the grader
        status = "error:" + type(err).__name__ + ": " + str(err)[:300]
        if "Timeout waiting for IOPub output" in str(err) or "execute reply" in str(err):
            status = "unresponsive"
    where = getattr(client, "_coursetools_last", None)

    cells = []
    for index, cell in enumerate(nb.cells[1:]):
        if cell.cell_type != "code" or index in captures:
            cells.append(None)
            continue
        cells.append({"execution_count": cell.get("execution_count"),
                      "outputs": _limit_outputs(cell.get("outputs", []), job["max_output_chars"])})
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
    # Anything else written to this stdout (a library printing from C) comes
    # before the marker; the grader reads what follows the last marker.
    sys.stdout.write("\n" + RESULT + "\n")
    json.dump({"status": status, "cell": where, "cells": cells, "values": values,
               "leftover": _leftover(), "timing": timing,
               "seconds": time.monotonic() - start}, sys.stdout)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
