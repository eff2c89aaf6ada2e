"""One submission, from the submitted file to an executed notebook nbgrader can score.

Three steps, each reporting what it found as named events:

1. :func:`stage` reads ``submitted/<student>/<assignment>/`` and writes a
   clean copy to the staging folder: outputs cleared, duplicate cell ids made
   unique, copied (duplicate) answer or test cells turned into ordinary cells,
   tampered nbgrader metadata and changed test or locked cells restored from
   the gradebook, a notebook saved under the browser's download name
   (``practical1 (1).ipynb``) renamed.  nbgrader autogrades this copy.
2. :func:`execute` runs the copy in a sandbox (:mod:`coursetools.sandbox`)
   with every test cell's code removed; at each test cell the variables the
   test needs are recorded as plain data.
3. The tests (code from the gradebook, never from the submission) run in a
   clean process (:mod:`coursetools.tester`) on those values; their verdicts
   become the test cells' outputs, which nbgrader's ``SaveAutoGrades`` scores.

Nothing that comes back from the sandbox is trusted: outputs are rebuilt field
by field, size-limited and restricted to plain text and images.
"""

from __future__ import annotations

import ast
import base64
import builtins
import binascii
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import sandbox

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"
PROGRESS = "@@coursetools-cell "
RESULT = "@@coursetools-result"
CUT_MARK = "[output cut by the grader"
SAFE_MIMES = ("text/plain", "image/png", "image/jpeg")
# Functions whose replacement in the student's kernel is reported (it has no
# effect on the tests, which run elsewhere, but the tutor should know).
ALWAYS_WATCHED = tuple(f"builtins.{name}" for name in (
    "abs", "float", "int", "round", "len", "isinstance", "min", "max", "sum", "bool", "str")) + \
    tuple(f"numpy.{name}" for name in ("isclose", "allclose", "ndim", "abs", "array_equal"))

# Event kinds, as they appear in the report.
RENAMED = "notebook renamed"
MISSING_NOTEBOOK = "notebook missing"
UNREADABLE = "unreadable notebook"
DUPLICATE_ID = "duplicate cell id"
DUPLICATE_CELL = "duplicate cell"
UNKNOWN_CELL = "unknown cell id"
METADATA_CHANGED = "cell metadata changed"
TEST_CHANGED = "test cell changed"
LOCKED_CHANGED = "locked cell changed"
CELL_DELETED = "cell deleted"
OUTPUT_CUT = "output cut"
PROCESSES_KILLED = "processes killed"
VIOLATION = "sandbox violation"
KERNEL_TAMPERING = "kernel tampering"
PLAIN_VALUE = "value converted"
UNSAFE = "no sandbox"


@dataclass
class Event:
    kind: str
    detail: str
    cell: str | None = None
    manual: bool = False  # the tutor must look at it (status "needs manual grading")

    def as_dict(self) -> dict:
        return {"kind": self.kind, "cell": self.cell, "detail": self.detail}


# ---------------------------------------------------------------------------
# what the gradebook knows about an assignment (read once, shared by threads)
# ---------------------------------------------------------------------------


@dataclass
class CellInfo:
    name: str
    cell_type: str
    locked: bool
    source: str
    checksum: str
    grade: bool = False
    solution: bool = False
    task: bool = False
    points: float | None = None


@dataclass
class NotebookInfo:
    name: str
    cells: dict[str, CellInfo]
    order: list[str]


@dataclass
class AssignmentInfo:
    name: str
    notebooks: dict[str, NotebookInfo]
    imports: dict[str, str]  # name bound -> import statement (from the source notebook)
    modules: dict[str, str]  # name bound -> module it names
    extra_files: list[Path]
    source_dir: Path


def assignment_info(gb, coursedir, assignment: str) -> AssignmentInfo:
    """Everything grading needs from the gradebook and ``solutions/``, as plain data."""
    import nbformat

    notebooks = {}
    for nb in gb.find_assignment(assignment).notebooks:
        cells = {}
        for sc in nb.source_cells:
            cells[sc.name] = CellInfo(sc.name, sc.cell_type, bool(sc.locked), sc.source or "",
                                      sc.checksum or "")
        for gc in nb.grade_cells:
            info = cells.setdefault(gc.name, CellInfo(gc.name, gc.cell_type, True, "", ""))
            info.grade, info.points = True, float(gc.max_score)
        for sol in nb.solution_cells:
            if sol.name in cells:
                cells[sol.name].solution = True
        for task in nb.task_cells:
            if task.name in cells:
                cells[task.name].task = True
                cells[task.name].points = float(task.max_score)
        notebooks[nb.name] = NotebookInfo(nb.name, cells, [sc.name for sc in nb.source_cells])
    source_dir = Path(coursedir.format_path(coursedir.source_directory, ".", assignment))
    imports, modules = {}, {}
    for path in sorted(source_dir.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.cell_type != "code" or meta.get("solution") or meta.get("grade"):
                continue
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue
            for node in tree.body:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    for alias in node.names:
                        bound = (alias.asname or alias.name).split(".")[0]
                        single = (ast.Import(names=[alias]) if isinstance(node, ast.Import)
                                  else ast.ImportFrom(module=node.module, names=[alias], level=node.level))
                        imports[bound] = ast.unparse(single)
                        modules[bound] = (alias.name if isinstance(node, ast.Import) and alias.asname
                                          else alias.name.split(".")[0] if isinstance(node, ast.Import)
                                          else f"{node.module}.{alias.name}")
    extra = [p for p in sorted(source_dir.iterdir())
             if p.suffix != ".ipynb" and p.name not in (".ipynb_checkpoints", "__pycache__")]
    return AssignmentInfo(assignment, notebooks, imports, modules, extra, source_dir)


def strip_hidden(source: str) -> str:
    """A test cell's code as students see it (hidden region removed)."""
    return re.sub(re.escape(HIDDEN_BEGIN) + r".*?" + re.escape(HIDDEN_END) + r"\n?", "", source,
                  flags=re.S)


def _norm(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


# ---------------------------------------------------------------------------
# 1. staging
# ---------------------------------------------------------------------------


@dataclass
class Staged:
    student: str
    assignment: str
    notebooks: dict[str, object] = field(default_factory=dict)  # name -> NotebookNode
    events: list[Event] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)
    answers: dict[str, dict[str, str]] = field(default_factory=dict)  # notebook -> grade id -> hash


MAX_NOTEBOOK_BYTES = 200 * 1024 * 1024


def _expected_metadata(info: CellInfo) -> dict:
    meta = {"grade": info.grade, "grade_id": info.name, "locked": info.locked,
            "schema_version": 3, "solution": info.solution, "task": info.task,
            "checksum": info.checksum}
    if info.grade or info.task:
        meta["points"] = info.points
    return meta


def _cell_source(cell) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def stage(submitted: Path, staged: Path, student: str, info: AssignmentInfo) -> Staged:
    """Write a clean copy of one submission to ``staged``; report what was changed."""
    import nbformat

    out = Staged(student, info.name)
    files = sorted(p for p in submitted.glob("*.ipynb") if p.is_file())
    by_name = {p.stem: p for p in files}
    missing = [n for n in info.notebooks if n not in by_name]
    spare = [p for p in files if p.stem not in info.notebooks]
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir(parents=True)
    # nbgrader's own files of a submission: the time it was handed in and, for
    # a submission collected through the exchange, the secret that names its
    # feedback (``nbgrader release_feedback`` reads it from the feedback folder)
    for kept in ("timestamp.txt", "submission_secret.txt"):
        if (submitted / kept).is_file():
            shutil.copy(submitted / kept, staged / kept)
    if len(missing) == 1 and len(spare) == 1:
        by_name[missing[0]] = spare[0]
        out.events.append(Event(RENAMED, f"'{spare[0].name}' graded as {missing[0]}.ipynb"))
        missing = []
    for name in missing:
        out.events.append(Event(MISSING_NOTEBOOK, f"notebook {name}.ipynb not submitted "
                                "(nbgrader scores it 0)", manual=True))
    for name, nb_info in info.notebooks.items():
        path = by_name.get(name)
        if path is None:
            continue
        try:
            if path.stat().st_size > MAX_NOTEBOOK_BYTES:
                raise ValueError("larger than 200 MB")
            with open(path, encoding="utf-8") as fh:
                raw = json.load(fh)
            if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
                raise ValueError("no cells")
        except (OSError, ValueError, UnicodeDecodeError) as err:
            out.fatal.append(f"{path.name} is not a readable notebook ({type(err).__name__}: "
                             f"{str(err)[:80]})")
            continue
        nb = _clean_notebook(raw, nb_info, out)
        try:
            nbformat.validate(nb)
        except Exception as err:  # noqa: BLE001 - reported by name
            out.fatal.append(f"{path.name} is not a valid notebook after repair ({str(err)[:120]})")
            continue
        nbformat.write(nb, staged / f"{name}.ipynb")
        out.notebooks[name] = nb
        out.answers[name] = {
            _meta(c)["grade_id"]: hashlib.sha256(_norm(c.source).encode()).hexdigest()
            for c in nb.cells if _meta(c).get("solution")}
    return out


def _meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _clean_notebook(raw: dict, nb_info: NotebookInfo, out: Staged):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

    nb = new_notebook()
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    nb.metadata = nbformat.from_dict({k: v for k, v in metadata.items()
                                      if k in ("kernelspec", "language_info")})
    seen_ids: set[str] = set()
    dup_ids = 0
    for raw_cell in raw["cells"]:
        if not isinstance(raw_cell, dict):
            continue
        kind = raw_cell.get("cell_type")
        source = _cell_source(raw_cell)
        maker = {"code": new_code_cell, "markdown": new_markdown_cell, "raw": new_raw_cell}.get(kind)
        if maker is None:
            maker = new_markdown_cell
        cell = maker(source)
        cell_id = raw_cell.get("id")
        if not isinstance(cell_id, str) or not re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", cell_id) \
                or cell_id in seen_ids:
            if isinstance(cell_id, str) and cell_id in seen_ids:
                dup_ids += 1
            cell_id = uuid.uuid4().hex[:12]
        seen_ids.add(cell_id)
        cell["id"] = cell_id
        raw_meta = raw_cell.get("metadata") if isinstance(raw_cell.get("metadata"), dict) else {}
        if "nbgrader" in raw_meta:
            cell.metadata["nbgrader"] = raw_meta["nbgrader"]
        if kind == "markdown" and isinstance(raw_cell.get("attachments"), dict):
            cell["attachments"] = raw_cell["attachments"]
        nb.cells.append(cell)
    if dup_ids:
        out.events.append(Event(DUPLICATE_ID, f"{dup_ids} cell id(s) repeated (a copied cell); "
                                "new ids given"))

    # Which cell carries each grade id: the last copy, as nbgrader keeps it.
    holders: dict[str, list[int]] = {}
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if not isinstance(gid, str) or gid not in nb_info.cells:
            del cell.metadata["nbgrader"]
            if isinstance(gid, str) and gid:
                out.events.append(Event(UNKNOWN_CELL, f"cell id {gid[:40]!r} is not in the assignment; "
                                        "treated as an ordinary cell", cell=gid[:40]))
            elif not isinstance(meta, dict) or meta.get("grade") or meta.get("solution") or meta.get("locked"):
                out.events.append(Event(METADATA_CHANGED, f"cell {index + 1} has nbgrader metadata "
                                        "without a valid id; treated as an ordinary cell"))
            continue
        holders.setdefault(gid, []).append(index)
    for gid, indices in holders.items():
        info = nb_info.cells[gid]
        for index in indices[:-1]:
            del nb.cells[index].metadata["nbgrader"]
        if len(indices) > 1:
            out.events.append(Event(DUPLICATE_CELL, f"{len(indices) - 1} copy/copies of {gid}: the last "
                                    "one is graded, the others run as ordinary cells", cell=gid))
        cell = nb.cells[indices[-1]]
        old = cell.metadata["nbgrader"] if isinstance(cell.metadata["nbgrader"], dict) else {}
        expected = _expected_metadata(info)
        changed = [k for k in ("grade", "solution", "locked", "task", "points")
                   if _flag(old.get(k), k) != _flag(expected.get(k), k)]
        if cell.cell_type != info.cell_type:
            changed.append("cell_type")
            cell = _retype(nb, indices[-1], info.cell_type)
        if changed:
            out.events.append(Event(METADATA_CHANGED, f"{gid}: {', '.join(changed)} restored",
                                    cell=gid))
        cell.metadata["nbgrader"] = expected
        if info.locked:
            visible = strip_hidden(info.source) if HIDDEN_BEGIN in info.source else info.source
            if _norm(cell.source) != _norm(visible) and _norm(cell.source) != _norm(info.source):
                kind = TEST_CHANGED if info.grade and info.cell_type == "code" else LOCKED_CHANGED
                out.events.append(Event(kind, f"{gid} was edited; the original was restored", cell=gid))
            cell.source = info.source
    present = set(holders)
    for gid in nb_info.order:
        info = nb_info.cells[gid]
        if gid in present or not (info.grade or info.task or info.solution or info.locked):
            continue
        if info.grade or info.task:
            kind = "test cell" if info.cell_type == "code" and not info.solution else \
                "task cell" if info.task else "answer cell"
            out.events.append(Event(CELL_DELETED, f"{kind} {gid} deleted (nbgrader scores it 0 of "
                                    f"{info.points:g})", cell=gid, manual=True))
        else:
            out.events.append(Event(CELL_DELETED, f"{'answer' if info.solution else 'locked'} cell "
                                    f"{gid} deleted", cell=gid, manual=info.solution))
    return nb


def _flag(value, key):
    if key == "points":
        try:
            return None if value is None else float(value)
        except (TypeError, ValueError):
            return "invalid"
    return bool(value) if isinstance(value, (bool, int)) or value is None else "invalid"


def _retype(nb, index, cell_type):
    from nbformat.v4 import new_code_cell, new_markdown_cell

    old = nb.cells[index]
    new = (new_code_cell if cell_type == "code" else new_markdown_cell)(old.source)
    new["id"] = old["id"]
    new.metadata = old.metadata
    nb.cells[index] = new
    return new


# ---------------------------------------------------------------------------
# 2. execution in the sandbox
# ---------------------------------------------------------------------------


@dataclass
class Settings:
    """How submissions are executed (shared by every worker)."""

    timeout: float = 120
    max_time: float = 1260
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    max_output_chars: int = 100_000
    max_capture_bytes: int = 64 * 1024 * 1024
    unsafe: bool = False
    support_dir: Path | None = None  # per run: mpl cache, passwd files


@dataclass
class Executed:
    """The outcome of running one notebook: outputs to insert, or why it failed."""

    notebook: object | None = None  # NotebookNode with outputs (None when it failed)
    failure: str | None = None
    events: list[Event] = field(default_factory=list)
    seconds: float = 0.0
    timed_out: list[str] = field(default_factory=list)
    timing: dict = field(default_factory=dict)  # seconds, as reported by the sandbox (for benchmarks)


def test_cells(nb) -> dict[int, str]:
    """Index -> grade id of the autograded test cells of a staged notebook."""
    return {i: _meta(c)["grade_id"] for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and _meta(c).get("grade") and not _meta(c).get("solution")}


def needed_names(source: str, info: AssignmentInfo) -> tuple[list[str], list[str]]:
    """(variables a test reads from the notebook, library functions it calls)."""
    tree = ast.parse(source)
    loaded, stored, watch = [], set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                loaded.append(node.id)
            else:
                stored.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.Lambda, ast.comprehension)):
            pass
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in info.modules:
            watch.add(f"{info.modules[node.value.id]}.{node.attr}")
    names = []
    for name in loaded:
        if name in stored or name in info.imports or name in names:
            continue
        if hasattr(builtins, name):
            watch.add(f"builtins.{name}")
            continue
        names.append(name)
    return names, sorted(watch)


def _cell_name(nb, index) -> str:
    if index is None or not 0 <= index < len(nb.cells):
        return "a cell"
    gid = _meta(nb.cells[index]).get("grade_id")
    return f"cell {gid}" if gid else f"cell number {index + 1}"


def execute(nb, info: AssignmentInfo, settings: Settings, slot: int, student: str) -> Executed:
    """Run a staged notebook in a sandbox and its tests in a clean process."""
    result = Executed()
    tests = test_cells(nb)
    sandbox_nb = copy.deepcopy(nb)
    captures, needs = {}, {}
    watch = set(ALWAYS_WATCHED)
    for index, cell in enumerate(sandbox_nb.cells):
        if index in tests:
            names, calls = needed_names(cell.source, info)
            needs[index] = names
            captures[str(index)] = names
            watch.update(calls)
            cell.source = ""  # the test code never enters the student's kernel
        elif HIDDEN_BEGIN in cell.source and _meta(cell):
            cell.source = ""
        if cell.cell_type == "code":
            cell.outputs = []
    job = {
        "notebook": sandbox_nb, "captures": captures, "watch": sorted(watch),
        "timeout": int(settings.timeout), "max_output_chars": settings.max_output_chars,
        "max_capture_bytes": settings.max_capture_bytes,
        # In the sandbox's PID namespace, 1 is bubblewrap's and 2 the runner's parent.
        "spare_pids": [2],
        # where capture.py is seen from the notebook's process
        "grader_dir": None if settings.unsafe else "/grader",
    }
    start = time.monotonic()
    raw, failure = _run_sandbox(job, info, settings, slot, nb)
    result.seconds = time.monotonic() - start
    if failure:
        result.failure = failure
        return result
    result.timing = _phases(raw, start, result.seconds)
    try:
        executed = _merge_outputs(nb, raw, tests, result, settings.max_output_chars)
    except ValueError as err:
        result.failure = f"the sandbox returned malformed results ({err})"
        return result
    values = raw.get("values") if isinstance(raw.get("values"), dict) else {}
    _kernel_events(values, result)
    start = time.perf_counter()
    verdicts = _run_tests(nb, tests, needs, values, info, settings)
    result.timing["clean test run"] = time.perf_counter() - start
    if isinstance(verdicts, str):
        result.failure = verdicts
        return result
    from nbformat import NotebookNode

    for index in tests:
        cell = executed.cells[index]
        verdict = verdicts.get(str(index)) or {"ok": False, "ename": "RuntimeError",
                                                "evalue": "the test did not run", "traceback": []}
        cell.outputs = [] if verdict.get("ok") else [NotebookNode(
            output_type="error", ename=str(verdict.get("ename", "Error"))[:100],
            evalue=str(verdict.get("evalue", ""))[:2000],
            traceback=[str(t)[:2000] for t in verdict.get("traceback", [])][:50])]
    result.notebook = executed
    return result


def _phases(raw: dict, start: float, total: float) -> dict[str, float]:
    """Seconds of each phase of a sandbox run (for the report and ``make bench``).

    Worked out from clock readings taken here and in the sandbox; they only
    describe the run, nothing depends on them.
    """
    got = raw.get("timing") if isinstance(raw.get("timing"), dict) else {}
    stamps = {k: float(v) for k, v in got.items() if isinstance(v, (int, float)) and v == v}
    sent = raw.get("_sent")
    keys = ("at shell ready", "at cells done", "at done")
    if not isinstance(sent, float) or not all(k in stamps for k in keys) \
            or not sent <= stamps["at shell ready"] <= stamps["at cells done"] <= stamps["at done"]:
        return {"sandbox run": total}
    capturing = min(max(stamps.get("capturing", 0.0), 0.0), stamps["at cells done"] - stamps["at shell ready"])
    preloading = raw.get("_preloading") if isinstance(raw.get("_preloading"), float) else 0.0
    return {
        # starting this worker's preloaded Python: once per worker, not per submission
        "worker start": preloading,
        "sandbox start": sent - start - preloading,
        "runner and shell start": stamps["at shell ready"] - sent,
        "student cells": stamps["at cells done"] - stamps["at shell ready"] - capturing,
        "answer extraction": capturing + stamps["at done"] - stamps["at cells done"],
        "sandbox end": start + total - stamps["at done"],
    }


def _job_dir(job: dict, info: AssignmentInfo, settings: Settings) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="coursetools-job-"))
    os.chmod(folder, 0o755)
    with open(folder / "job.json", "w") as fh:
        json.dump(job, fh)
    os.chmod(folder / "job.json", 0o644)
    files = folder / "files"
    files.mkdir()
    for path in info.extra_files:
        (shutil.copytree if path.is_dir() else shutil.copy)(path, files / path.name)
    for root, dirs, names in os.walk(folder):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for n in names:
            os.chmod(os.path.join(root, n), 0o644)
    return folder


def _environment(venv_bin: str) -> dict[str, str]:
    return {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/home/student", "USER": "student", "LOGNAME": "student",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TMPDIR": "/tmp",
        "MPLCONFIGDIR": "/home/student/.config/matplotlib", "MPLBACKEND": "agg",
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "JUPYTER_PLATFORM_DIRS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }


def _sandbox_binds(folder: Path, runner_dir: Path, env: dict, settings: Settings, slot: int) -> dict:
    """What a sandbox sees (read-only) besides the Python environment."""
    binds = {str(folder): "/job", str(runner_dir): "/grader"}
    pkg = sandbox.package_dir("mlmhelpers")
    if pkg is not None and not sandbox._under_site_packages(pkg):
        binds[str(pkg)] = str(pkg)
    data = sandbox.course_data_dir()
    if data is not None:
        binds[str(data)] = "/coursedata"
        env["MLM_DATA_DIR"] = "/coursedata"
    if settings.support_dir is not None:
        binds.update(sandbox.write_identity(settings.support_dir, slot))
        mpl = settings.support_dir / "mplcache"
        if mpl.is_dir():
            binds[str(mpl)] = "/mplcache"
            # where the zygote's matplotlib found its font cache, at the same path
            binds[str(mpl.resolve())] = str(mpl.resolve())
    return binds


class _Zygote:
    """This worker's preloaded Python (``sandboxed/zygote.py``), used when grading as root.

    It imports the course's libraries once; every submission then runs in a
    fresh fork of it that enters that submission's own new sandbox and drops
    every privilege before any student code runs.  Started on first use and
    again when the course's imports change; when it cannot be used, each
    notebook runs in a fresh Python in its sandbox instead (slower, as safe).
    """

    def __init__(self):
        self.proc = None
        self.sock = None
        self.imports: set[str] = set()
        self.disabled = False

    def get(self, info: AssignmentInfo, settings: Settings):
        if self.disabled or settings.unsafe or os.geteuid() != 0 or settings.support_dir is None:
            return None
        imports = set(info.imports.values())
        if self.proc is not None and self.proc.poll() is None and imports <= self.imports:
            return self
        self.stop()
        import socket

        venv_bin = str(Path(sys.executable).parent)
        # The environment every fork starts with (and shows in /proc/self/environ):
        # the sandbox's own, as for a fresh Python in a sandbox.
        env = _environment(venv_bin)
        if sandbox.course_data_dir() is not None:
            env["MLM_DATA_DIR"] = "/coursedata"
        mpl = settings.support_dir / "mplcache"
        if mpl.is_dir():
            env["MPLCONFIGDIR"] = str(mpl.resolve())
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        script = Path(__file__).resolve().parent / "sandboxed" / "zygote.py"
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(script), json.dumps(sorted(imports))],
                stdin=theirs.fileno(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=env, cwd="/", start_new_session=True)
        finally:
            theirs.close()
        self.sock = ours
        ours.settimeout(300)
        try:
            ready = ours.recv(16) == b"ready"
        except OSError:
            ready = False
        if not ready:
            self.stop()
            self.disabled = True
            return None
        self.imports = imports
        return self

    def run(self, pid: int, out_w: int, err_w: int, slot: int, settings: Settings) -> None:
        import socket
        from dataclasses import asdict

        request = {"pid": pid, "cwd": "/submission", "job": "/job/job.json",
                   "uid": sandbox.sandbox_uid(slot), "limits": asdict(settings.limits)}
        socket.send_fds(self.sock, [json.dumps(request).encode()], [out_w, err_w])

    def answer(self, timeout: float):
        """The zygote's report that the run ended, or None if none came in ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1024)
        except (TimeoutError, OSError):
            return None
        return json.loads(data) if data else None

    def stop(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            _kill(self.proc)
            self.proc.wait()
            self.proc = None


_ZYGOTE = _Zygote()


def _start_holder(binds, env, settings: Settings, slot: int):
    """A fresh sandbox whose only process waits: the zygote's fork joins it.

    Returns (bwrap process, the process id whose namespaces are the sandbox's).
    """
    read_info, write_info = os.pipe()
    try:
        cmd = sandbox.sandbox_command(["/bin/sh", "-c", "echo ready; exec sleep infinity"],
                                      slot=slot, ro_binds=binds, limits=settings.limits, env=env,
                                      cwd="/submission", info_fd=write_info)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, env={}, start_new_session=True,
                                pass_fds=(write_info,))
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
        _kill(proc)
        proc.wait()
        return None, None
    return proc, pid


def _run_sandbox(job, info, settings: Settings, slot: int, nb):
    """Run the job; return (parsed result, None) or (None, why it failed)."""
    folder = _job_dir(job, info, settings)
    runner_dir = Path(__file__).resolve().parent / "sandboxed"
    venv_bin = str(Path(sys.executable).parent)
    env = _environment(venv_bin)
    preloading = time.monotonic()
    zygote, holder = _ZYGOTE.get(info, settings), None
    preloading = time.monotonic() - preloading
    work = None
    try:
        if settings.unsafe:
            work = Path(tempfile.mkdtemp(prefix="coursetools-unsafe-"))
            env = dict(env, HOME=str(work / "home"), MPLCONFIGDIR=str(work / "home" / "mpl"),
                       TMPDIR=str(work / "tmp"))
            (work / "tmp").mkdir()
            (work / "home").mkdir()
            (work / "cwd").mkdir()
            cmd = [sys.executable, "-I", str(runner_dir / "runner.py"), str(folder / "job.json")]
            cwd = str(work / "cwd")
        else:
            binds = _sandbox_binds(folder, runner_dir, env, settings, slot)
            if zygote is not None:
                holder, ns_pid = _start_holder(binds, env, settings, slot)
            if holder is None:  # a fresh Python in the sandbox
                cmd = sandbox.sandbox_command(
                    [f"{venv_bin}/python", "-I", "/grader/runner.py", "/job/job.json"],
                    slot=slot, ro_binds=binds, limits=settings.limits, env=env, cwd="/submission")
            cwd = None
        if holder is not None:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            try:
                sent = time.monotonic()
                zygote.run(ns_pid, out_w, err_w, slot, settings)
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
        state = {"cell": None, "stderr": [], "stdout": bytearray(), "too_big": False}
        cap = settings.max_capture_bytes + 64 * 1024 * 1024

        def read_out():
            while True:
                chunk = stdout.read(1 << 20)
                if not chunk:
                    return
                if len(state["stdout"]) + len(chunk) > cap:
                    state["too_big"] = True
                    _kill(proc)
                    return
                state["stdout"] += chunk

        def read_err():
            for line in stderr:
                text = line[:2000].decode(errors="replace").rstrip()
                if text.startswith(PROGRESS):
                    try:
                        state["cell"] = int(text[len(PROGRESS):])
                    except ValueError:
                        pass
                elif len(state["stderr"]) < 40:
                    state["stderr"].append(text)
                    if text.startswith("zygote: ") and state["cell"] is None:
                        state["zygote failed"] = True  # before any student code ran

        threads = [threading.Thread(target=read_out, daemon=True),
                   threading.Thread(target=read_err, daemon=True)]
        for t in threads:
            t.start()
        killed = False
        if holder is not None:
            if zygote.answer(settings.max_time) is None:
                killed = True
                _kill(holder)
                if zygote.answer(30) is None:
                    zygote.stop()
            _kill(holder)  # ends the sandbox: every process the notebook left behind
            holder.wait()
        else:
            try:
                proc.wait(timeout=settings.max_time)
            except subprocess.TimeoutExpired:
                killed = True
                _kill(proc)
                proc.wait()
        for t in threads:
            t.join(timeout=10)
        if holder is not None:
            stdout.close()
            stderr.close()
        if settings.unsafe and work is not None:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if holder is not None and not killed and state.get("zygote failed"):
        # The fork could not enter the sandbox: no student code ran.  Run this and
        # every later notebook of this worker in a fresh Python instead.
        _ZYGOTE.stop()
        _ZYGOTE.disabled = True
        return _run_sandbox(job, info, settings, slot, nb)
    where = _cell_name(nb, state["cell"])
    if killed:
        return None, (f"timeout: autograding took longer than {settings.max_time:g} s and was stopped"
                      + (f" in {where}" if state["cell"] is not None else ""))
    if state["too_big"]:
        return None, f"the notebook produced more data than the grader accepts (stopped in {where})"
    try:
        _, marker, payload = bytes(state["stdout"]).rpartition(RESULT.encode() + b"\n")
        if not marker:
            raise ValueError("no result")
        raw = json.loads(payload)
        if not isinstance(raw, dict):
            raise ValueError
    except ValueError:
        detail = next((line for line in reversed(state["stderr"]) if line.strip()), "")
        return None, (f"the sandbox stopped while running {where} (exit status {proc.returncode})"
                      + (f": {detail[:200]}" if detail else ""))
    status = raw.get("status")
    cell = raw.get("cell") if isinstance(raw.get("cell"), int) else state["cell"]
    where = _cell_name(nb, cell)
    if status == "dead":
        return None, f"the kernel died while running {where}"
    if status == "unresponsive":
        return None, (f"{where} outran the {settings.timeout:g} s timeout and ignored the interrupt "
                      "(it catches KeyboardInterrupt)")
    if status != "ok":
        return None, f"the notebook could not be run ({str(status)[:200]})"
    raw["_sent"] = sent
    raw["_preloading"] = preloading
    leftover = raw.get("leftover")
    if isinstance(leftover, list) and leftover:
        raw["_leftover"] = [str(x)[:40] for x in leftover[:10]]
    return raw, None


def _kill(proc) -> None:
    try:
        os.killpg(proc.pid, 9)
    except OSError:
        pass
    try:
        proc.kill()
    except OSError:
        pass


def _clean_output(out, cell_name: str, limit: int, result: Executed):
    """Rebuild one output from the sandbox with checked types and sizes."""
    from nbformat import NotebookNode

    if not isinstance(out, dict):
        raise ValueError("an output is not an object")
    kind = out.get("output_type")

    def text(value, cap):
        if isinstance(value, list):
            value = "".join(v for v in value if isinstance(v, str))
        if not isinstance(value, str):
            return ""
        if len(value) > cap:
            value = value[:cap] + (f"\n... [output cut by the grader: {len(value):,} characters; "
                                   f"the limit is {cap:,}] ...\n")
        if CUT_MARK in value:
            result.events.append(Event(OUTPUT_CUT, f"{cell_name}: oversized output cut to "
                                       f"{cap:,} characters", cell=cell_name))
        return value

    if kind == "stream":
        name = out.get("name") if out.get("name") in ("stdout", "stderr") else "stdout"
        return NotebookNode(output_type="stream", name=name, text=text(out.get("text"), limit))
    if kind in ("display_data", "execute_result"):
        data = {}
        raw = out.get("data") if isinstance(out.get("data"), dict) else {}
        for mime in SAFE_MIMES:
            if mime not in raw:
                continue
            if mime == "text/plain":
                data[mime] = text(raw[mime], limit)
                continue
            value = raw[mime]
            value = "".join(value) if isinstance(value, list) else value
            if not isinstance(value, str) or len(value) > max(limit, 4_000_000):
                continue
            try:
                base64.b64decode(value.replace("\n", ""), validate=True)
            except (binascii.Error, ValueError):
                continue
            data[mime] = value
        if not data and raw:
            data["text/plain"] = "[rich output not shown by the grader]"
        node = NotebookNode(output_type=kind, data=data, metadata={})
        if kind == "execute_result":
            count = out.get("execution_count")
            node.execution_count = count if isinstance(count, int) else None
        return node
    if kind == "error":
        tb = out.get("traceback") if isinstance(out.get("traceback"), list) else []
        return NotebookNode(output_type="error", ename=text(out.get("ename"), 200),
                            evalue=text(out.get("evalue"), 2000),
                            traceback=[text(t, 2000) for t in tb[:60]])
    raise ValueError(f"unknown output type {str(kind)[:30]!r}")


def _merge_outputs(nb, raw: dict, tests: dict[int, str], result: Executed, limit: int):
    executed = copy.deepcopy(nb)
    cells = raw.get("cells")
    if not isinstance(cells, list) or len(cells) != len(executed.cells):
        raise ValueError("wrong number of cells")
    for index, (cell, got) in enumerate(zip(executed.cells, cells)):
        if cell.cell_type != "code" or index in tests:
            continue
        if not isinstance(got, dict):
            raise ValueError("missing cell outputs")
        outputs = got.get("outputs") if isinstance(got.get("outputs"), list) else []
        name = _cell_name(nb, index).removeprefix("cell ")
        before = len(result.events)
        # The sandbox already cut the outputs; nothing from it is trusted, so cut again.
        budget, cleaned = limit, []
        for o in outputs[:200]:
            out = _clean_output(o, name, max(budget, 2000) + 300, result)
            budget -= sum(len(v) for v in _texts(out))
            cleaned.append(out)
        cell.outputs = cleaned
        # Keep one "output cut" event per cell.
        cut = [e for e in result.events[before:] if e.kind == OUTPUT_CUT]
        result.events[before:] = [e for e in result.events[before:] if e.kind != OUTPUT_CUT] + cut[:1]
        count = got.get("execution_count")
        cell.execution_count = count if isinstance(count, int) else None
        for out in cell.outputs:
            if out.output_type == "error" and out.ename == "CellTimeoutError":
                result.timed_out.append(name)
        _violations(cell.outputs, name, result)
    leftover = raw.get("_leftover")
    if leftover:
        result.events.append(Event(PROCESSES_KILLED, f"{len(leftover)} process(es) still running when "
                                   f"the notebook ended were killed ({', '.join(leftover)})"))
    return executed


def _texts(out) -> list[str]:
    if out.output_type == "stream":
        return [out.text]
    if out.output_type == "error":
        return [out.evalue] + list(out.traceback)
    return [v for v in out.get("data", {}).values() if isinstance(v, str)]


_SIGNS = [
    ("memory limit reached", re.compile(r"MemoryError|Cannot allocate memory|std::bad_alloc")),
    ("network blocked", re.compile(r"Network is unreachable|Temporary failure in name resolution|"
                                   r"Name or service not known|\[Errno (101|-2|-3)\]")),
    ("process limit reached", re.compile(r"Resource temporarily unavailable|can't start new thread")),
    ("file size limit reached", re.compile(r"File too large|\[Errno 27\]|No space left on device")),
    ("grader files out of reach", re.compile(r"gradebook\.db|/solutions|/submitted/|/autograded/|"
                                             r"/feedback/|/root\b")),
]


def _violations(outputs, name: str, result: Executed) -> None:
    text = " ".join(
        (o.get("ename", "") + " " + o.get("evalue", "")) if o.output_type == "error"
        else o.get("text", "") if o.output_type == "stream" and o.get("name") == "stderr" else ""
        for o in outputs)
    if not text.strip():
        return
    for label, pattern in _SIGNS:
        if pattern.search(text):
            result.events.append(Event(VIOLATION, f"{label} in {name}", cell=name))


def _kernel_events(values: dict, result: Executed) -> None:
    base = values.get("baseline") if isinstance(values.get("baseline"), dict) else {}
    changes: dict[str, None] = {}
    notes: dict[str, None] = {}
    for key, entry in values.items():
        if key == "baseline" or not isinstance(entry, dict):
            continue
        state = entry.get("__kernel__") if isinstance(entry.get("__kernel__"), dict) else {}
        for what, count in state.items():
            if not isinstance(count, int) or not isinstance(what, str):
                continue
            if count > (base.get(what, 0) if isinstance(base.get(what, 0), int) else 0):
                changes[what[:60]] = None
        for note in entry.get("__notes__", []) if isinstance(entry.get("__notes__"), list) else []:
            if isinstance(note, str):
                notes[note[:200]] = None
    if changes:
        result.events.append(Event(KERNEL_TAMPERING, "the notebook changed its kernel ("
                                   + ", ".join(sorted(changes)) + "); tests run in a clean "
                                   "process, so this has no effect on the marks"))
    for note in notes:
        result.events.append(Event(PLAIN_VALUE, note))


def _run_tests(nb, tests, needs, values, info: AssignmentInfo, settings: Settings):
    """Verdicts of every test cell (run in a fresh Python), or why they could not run."""
    used = set()
    job_tests = []
    for index in tests:
        source = nb.cells[index].source
        tree_names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
        used.update(tree_names & set(info.imports))
        entry = values.get(str(index))
        job_tests.append({"index": index, "source": source, "names": needs[index],
                          "values": entry if isinstance(entry, dict) else None})
    job = {"imports": [info.imports[n] for n in sorted(used)], "tests": job_tests,
           "timeout": max(10, int(settings.timeout))}
    out = _TESTER.ask(job, settings, timeout=max(120, 5 * settings.timeout))
    if isinstance(out, str):
        return out
    verdicts = out.get("verdicts")
    if not isinstance(verdicts, dict):
        return "the tests could not be run: " + str(out.get("error", "no verdicts"))[:200]
    return verdicts


class _CleanTester:
    """One clean test process (:mod:`coursetools.tester`), reused for a worker's submissions.

    It holds numpy and pandas, the course's imports and, for each job, only
    the plain values a sandbox recorded: no student code runs in it.  It is
    started again after a job it does not answer in time or at all.
    """

    def __init__(self):
        self.proc = None
        self.errors = None
        self.lock = threading.Lock()

    def _start(self, settings: Settings):
        tester = Path(__file__).resolve().parent / "tester.py"
        env = {"PATH": "/usr/bin:/bin", "HOME": tempfile.gettempdir(), "LANG": "C.UTF-8",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "agg"}
        cmd = [sys.executable, "-I", str(tester), "--serve"]
        if not settings.unsafe and shutil.which("prlimit"):
            cmd = ["prlimit", f"--as={settings.limits.memory_mb * 1024 * 1024}", "--"] + cmd
        self.errors = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errors, env=env, cwd=tempfile.gettempdir())

    def stop(self):
        if self.proc is not None:
            _kill(self.proc)
            self.proc.wait()
            self.proc = None
        if self.errors is not None:
            self.errors.close()
            self.errors = None

    def ask(self, job: dict, settings: Settings, timeout: float):
        """The tester's answer to ``job`` (a dict), or why there is none (a str)."""
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.stop()
                self._start(settings)
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


_TESTER = _CleanTester()


def shutdown_worker() -> None:
    """Stop this worker's clean test process and zygote (both also end with the worker)."""
    _TESTER.stop()
    _ZYGOTE.stop()
