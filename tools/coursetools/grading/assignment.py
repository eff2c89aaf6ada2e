"""What grading needs to know about an assignment, read once from the gradebook and ``solutions/``.

Plain data (no database session), so that every worker gets a copy.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from ..markers import Markers


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
    markers: Markers = field(default_factory=Markers)
    tutor_sources: frozenset = frozenset()  # every cell of the source notebooks, stripped


def course_imports(source_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The imports of the source notebooks' ordinary cells: (name -> statement, name -> module).

    The clean test process runs these before the tests, and a worker's
    preloaded Python imports them once.  Read from ``solutions/`` (the
    tutor's), never from a submission.
    """
    import nbformat

    imports, modules = {}, {}
    for path in sorted(Path(source_dir).glob("*.ipynb")):
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
    return imports, modules


def assignment_info(gb, coursedir, assignment: str, markers: Markers | None = None) -> AssignmentInfo:
    """Everything grading needs from the gradebook and ``solutions/``, as plain data."""
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
    imports, modules = course_imports(source_dir)
    tutors = frozenset(_all_sources(source_dir))
    extra = [p for p in sorted(source_dir.iterdir())
             if p.suffix != ".ipynb" and p.name not in (".ipynb_checkpoints", "__pycache__")]
    return AssignmentInfo(assignment, notebooks, imports, modules, extra, source_dir,
                          markers or Markers(), tutors)


def _all_sources(source_dir: Path):
    """The tutor's cells, as written in the source notebooks (a student's untouched copy matches)."""
    import nbformat

    for path in sorted(Path(source_dir).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            yield cell.source.strip()
