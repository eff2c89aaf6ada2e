"""Build the student edition of the course (``make release``).

This repository is the tutor's source: it holds ``solutions/`` (model answers,
hidden tests, marking rubrics), the grading and release tools and the tests.
The student edition is what students clone or open on Binder: a complete
folder that can be pushed as its own repository or branch.  It holds

* the landing page ``index.ipynb``, the lectures ``course/``, the student
  versions of the practicals ``practicals/``, the data ``data/`` with its
  codebook, and the helper library ``helpers/mlmhelpers``;
* ``requirements.txt`` (the runtime pins), ``environment.yml`` and
  ``postBuild`` (Binder), copied from this repository;
* ``docs/``, the website's source for the students' pages (its configuration, the further
  reading and the helper library's guide and reference), without the tutors' and
  maintainers' guides (``docs/tutors/``, ``docs/maintainers/``);
* from ``tools/student-edition/``: the student README, a student Makefile
  (``make lab``), the students' ``nbgrader_config.py`` (Validate only) and a
  ``.gitignore``;
* ``pyproject.toml``: this repository's, without the test configuration (it
  packages only ``mlmhelpers``, with the data inside the wheel).

Nothing else is copied: no ``solutions/``, ``tests/``, ``tools/``,
``benchmarks/`` or tutor configuration.  Files are taken from what git would
commit (tracked and new files, not ignored ones), so notebook checkpoints,
caches, gradebooks and submissions never leak.  After copying, the builder
scans every file of the edition for the lines of the model answers, hidden
tests and rubrics in ``solutions/`` and for nbgrader's solution and
hidden-test markers, and fails if it finds one.

Usage::

    python -m coursetools.release [--out build/student] [--mode practice|assessed]

Without ``--mode`` the edition gets the committed student versions of the
practicals (``practicals/``, generated in practice mode).  With ``--mode`` they
are generated afresh from ``solutions/`` in that mode (see
:mod:`coursetools.practicals`): ``assessed`` for practicals that count towards
a mark, whose checks test the form only.

``--out`` is emptied first, except its ``.git`` and ``.venv``: the output
folder can be a git worktree of the ``student`` branch (see docs/tutors/01-release.md) in
which a tutor has tried the edition's ``make lab``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "tools" / "student-edition"
DEFAULT_OUT = REPO / "build" / "student"

#: Paths of this repository copied into the student edition (folders recursively).
SHIPPED = (
    "index.ipynb",
    "course",
    "practicals",
    "data",
    "helpers/mlmhelpers",
    "requirements.txt",
    "environment.yml",
    "postBuild",
    "docs",
)
#: Under the shipped paths, but for tutors and maintainers only: the website's guides.
NOT_SHIPPED = ("docs/tutors/", "docs/maintainers/")
#: Student-only files, copied from tools/student-edition/ to the edition's root.
STUDENT_FILES = ("README.md", "Makefile", "nbgrader_config.py", ".gitignore")

#: The headings of the model answers and rubrics; nbgrader's own delimiters come from
#: the course's configuration (:mod:`coursetools.markers`).
HEADINGS = ("**Model answer", "**Marking rubric")
#: Kept when the output folder is emptied: the student branch's git worktree link and the
#: .venv of the edition's own `make lab` (both ignored by the edition's git).
KEPT = (".git", ".venv")
# Shorter lines (``plt.show()``, the tail of a wrapped sentence) are not secrets.
MIN_SECRET_LENGTH = 12

__all__ = ["build_edition", "secret_lines", "public_lines", "find_leaks", "binder_badge", "main"]


def _git_files(repo: Path, paths) -> list[str]:
    """Files under ``paths`` that a commit of ``repo`` would hold (tracked or new, not ignored)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *paths],
            cwd=repo, capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(
            f"{repo} is not a git checkout (or git is missing): the student edition is built "
            "from the files git tracks, so clone the course with git first") from exc
    return sorted({f for f in out.split("\0") if f and (repo / f).is_file()})


def _cell_sources(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(cell.get("source", "")) for cell in nb.get("cells", [])]


def public_lines(repo: Path) -> set[str]:
    """Lines students are meant to see: the lectures and the practicals outside the secret regions."""
    from .markers import course_markers

    markers = course_markers(repo)
    public = set()
    notebooks = [repo / f for f in _git_files(repo, ["course", "solutions"]) if f.endswith(".ipynb")]
    for path in notebooks:
        for source in _cell_sources(path):
            public.update(line.strip() for line in markers.without_regions(source).splitlines())
    return public


def secret_lines(repo: Path | str = REPO) -> dict[str, set[str]]:
    """The lines of ``solutions/`` that students must never see.

    Every line inside nbgrader's ``### BEGIN SOLUTION`` ... ``### END SOLUTION``
    regions (model answers in code and written answers with their marking
    rubrics) and ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS``
    regions, stripped; except lines shorter than ``MIN_SECRET_LENGTH`` and
    lines the course shows students anyway (a lecture line, or a line a later
    practical gives as its starting code).

    Parameters
    ----------
    repo : path
        The tutor's repository (default: this one).

    Returns
    -------
    dict
        ``{"SOLUTION": {...}, "HIDDEN TESTS": {...}}``.

    Examples
    --------
    >>> secrets = secret_lines()
    >>> any(line.startswith("assert np.isclose(corr_gcse") for line in secrets["HIDDEN TESTS"])
    True
    >>> 'corr_gcse = chem["score"].corr(chem["gcsescore"])' in secrets["SOLUTION"]
    True
    """
    repo = Path(repo)
    from .markers import course_markers

    markers = course_markers(repo)
    public = public_lines(repo)
    found: dict[str, set[str]] = {"SOLUTION": set(), "HIDDEN TESTS": set()}
    for rel in _git_files(repo, ["solutions"]):
        if not rel.endswith(".ipynb"):
            continue
        for source in _cell_sources(repo / rel):
            for kind, body in markers.regions(source):
                found[kind].update(
                    s for s in (line.strip() for line in body.splitlines())
                    if len(s) >= MIN_SECRET_LENGTH and s not in public)
    return found


def _text_lines(path: Path) -> list[str] | None:
    """The lines of a text file; for a notebook, of its cell sources and text outputs."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None  # binary
    lines = text.splitlines()
    if path.suffix == ".ipynb":
        nb = json.loads(text)
        for cell in nb.get("cells", []):
            lines += "".join(cell.get("source", "")).splitlines()
            for out in cell.get("outputs", []):
                blobs = [out.get("text", "")] + [v for k, v in out.get("data", {}).items()
                                                 if k.startswith("text/")]
                for blob in blobs:
                    lines += ("".join(blob) if isinstance(blob, list) else str(blob)).splitlines()
    return [line.strip() for line in lines]


def find_leaks(edition: Path | str, secrets: dict[str, set[str]] | None = None) -> list[str]:
    """Every place in ``edition`` that shows a secret line or an nbgrader marker.

    Returns a list of ``"path: what"`` strings (empty when the edition is clean).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "notes.md").write_text("### BEGIN HIDDEN TESTS\\n")
    >>> find_leaks(folder)
    ["notes.md: marker 'BEGIN HIDDEN TESTS'"]
    """
    from .markers import course_markers

    edition = Path(edition)
    markers = course_markers().all + HEADINGS
    secrets = secret_lines() if secrets is None else secrets
    leaks = []
    for path in sorted(p for p in edition.rglob("*")
                       if p.is_file() and not set(KEPT) & set(p.relative_to(edition).parts)):
        rel = path.relative_to(edition).as_posix()
        lines = _text_lines(path)
        if lines is None:
            continue
        text = "\n".join(lines)
        leaks += [f"{rel}: marker {m!r}" for m in markers if m in text]
        present = set(lines)
        for kind, kind_lines in secrets.items():
            leaks += [f"{rel}: {kind.lower()} line {s!r}" for s in sorted(kind_lines & present)]
    return leaks


def _student_pyproject(text: str) -> str:
    """The tutor's pyproject.toml without its ``[tool.pytest...]`` tables."""
    kept, skipping = [], False
    for line in text.splitlines(keepends=True):
        header = re.match(r"^\s*\[+\s*([^\]]+?)\s*\]+\s*$", line)
        if header:
            skipping = header.group(1).startswith("tool.pytest")
        if not skipping:
            kept.append(line)
    return "".join(kept).rstrip() + "\n"


def binder_badge(remote_url: str | None) -> str | None:
    """``owner/name`` of a GitHub remote, for the Binder badge (None for any other remote).

    Examples
    --------
    >>> binder_badge("git@github.com:jane/multilevel-course.git")
    'jane/multilevel-course'
    >>> binder_badge("https://github.com/jane/multilevel-course")
    'jane/multilevel-course'
    >>> binder_badge("/srv/git/course.git") is None
    True
    """
    match = re.search(r"github\.com[:/]([\w.-]+)/([\w.-]+?)(?:\.git)?/?$", remote_url or "")
    return f"{match.group(1)}/{match.group(2)}" if match else None


def _origin(repo: Path) -> str | None:
    proc = subprocess.run(["git", "remote", "get-url", "origin"], cwd=repo,
                          capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _top_level_names() -> set[str]:
    return {Path(p).parts[0] for p in SHIPPED} | set(STUDENT_FILES) | {"pyproject.toml"}


def _empty(out: Path) -> None:
    """Empty ``out`` but keep its ``.git`` (a worktree of the student branch) and ``.venv``.

    Refuses a folder holding anything but a student edition (and what JupyterLab
    and pip leave in one), so a mistyped ``--out`` never wipes other files.
    """
    if out.exists():
        allowed = _top_level_names() | set(KEPT) | {".ipynb_checkpoints", "__pycache__"}
        foreign = sorted(p.name for p in out.iterdir() if p.name not in allowed)
        if foreign:
            raise ValueError(f"{out} holds files that are not part of a student edition "
                             f"({', '.join(foreign[:5])}): give an empty or new folder, or "
                             "one that holds an earlier student edition")
    out.mkdir(parents=True, exist_ok=True)
    for child in out.iterdir():
        if child.name in KEPT:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def build_edition(out: Path | str = DEFAULT_OUT, repo: Path | str = REPO,
                  mode: str | None = None) -> list[Path]:
    """Write the student edition of ``repo`` to ``out``; return the files written.

    ``mode`` (``"practice"`` or ``"assessed"``) generates the practicals afresh
    in that mode instead of copying the committed ``practicals/``.

    Raises ``RuntimeError`` (and leaves the incomplete edition for inspection)
    if a file of the edition shows a model answer, hidden test, rubric or
    nbgrader marker.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "student"
    >>> files = build_edition(out)
    >>> sorted(p.name for p in out.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['.gitignore', 'Makefile', 'README.md', 'course', 'data', 'docs', 'environment.yml', 'helpers',
     'index.ipynb', 'nbgrader_config.py', 'postBuild', 'practicals', 'pyproject.toml',
     'requirements.txt']
    """
    repo, out = Path(repo).resolve(), Path(out).resolve()
    if out == repo or repo in out.parents and not out.is_relative_to(repo / "build"):
        raise ValueError(f"write the student edition outside the course's own folders (e.g. "
                         f"{repo / 'build' / 'student'}), not to {out}")
    if mode is not None:
        from .practicals import MODES
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    _empty(out)
    written = []
    for rel in _git_files(repo, SHIPPED):
        if rel.startswith(NOT_SHIPPED):
            continue
        if mode is not None and rel.startswith("practicals/"):
            continue  # generated below in the tutor's mode
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, target)
        written.append(target)
    if mode is not None:
        from .practicals import generate_practicals
        generate_practicals(root=repo, output=out / "practicals", mode=mode)
        written += [p for p in (out / "practicals").rglob("*") if p.is_file()]
    templates = repo / "tools" / "student-edition"
    for name in STUDENT_FILES:
        shutil.copy2(templates / name, out / name)
        written.append(out / name)
    (out / "pyproject.toml").write_text(_student_pyproject((repo / "pyproject.toml").read_text()))
    written.append(out / "pyproject.toml")

    path = binder_badge(_origin(repo))
    if path:
        readme = out / "README.md"
        readme.write_text(readme.read_text().replace("GITHUB-USER/REPOSITORY", path))

    leaks = find_leaks(out, secret_lines(repo))
    if leaks:
        raise RuntimeError("the student edition would show tutor-only material:\n  "
                           + "\n  ".join(leaks[:40]))
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursetools.release",
                                     description="Write the student edition of the course.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default: {DEFAULT_OUT.relative_to(REPO)}); "
                             "emptied first, except its .git and .venv")
    parser.add_argument("--mode", choices=("practice", "assessed"), default=None,
                        help="generate the practicals in this mode (practice: answers checked "
                             "against hashes; assessed: form checks only); default: copy the "
                             "committed practicals/ (practice mode)")
    args = parser.parse_args(argv)
    try:
        files = build_edition(args.out, mode=args.mode)
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"student edition: {len(files)} files in {args.out.resolve()}")
    if binder_badge(_origin(REPO)) is None:
        print("note: the remote origin is not a GitHub address (yet); the Binder badge of its README keeps the "
              "placeholder GITHUB-USER/REPOSITORY (see docs/tutors/01-release.md)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
