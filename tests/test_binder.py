"""Binder's install of the student edition, replayed offline in a fresh virtual environment.

Students clone, and Binder builds, the student edition (``make release``,
``build/student``; published as the ``student`` branch), not this repository.
Binder (repo2docker) cannot be launched from here.  What it does with the
edition is: clone it, create a conda environment from ``environment.yml``
(Python 3.11 from conda-forge; every other package from the ``pip:`` section),
run ``postBuild`` in the folder, and start JupyterLab there.  This test
replays everything except conda:

* builds the student edition into a temporary folder with
  ``coursetools.release`` (what the ``student`` branch holds);
* creates a fresh virtual environment with this machine's Python 3.11 and
  installs exactly the ``pip:`` section of the edition's ``environment.yml``
  into it, from the wheelhouse ``.venv/wheelhouse`` that ``make test`` fills
  (``pip download``), with ``--no-index``: no network at test time;
* runs the edition's ``postBuild`` unchanged (pip pointed at the wheelhouse by
  environment variables; its ``pip install .`` builds the helpers' wheel with
  hatchling from there);
* from an unrelated folder, imports the helpers (the installed copy) and loads
  a data set without ``MLM_DATA_DIR``;
* checks the Jupyter server and Lab extensions that postBuild leaves on/off:
  Validate on; Formgrader, Create Assignment, the assignment and course lists
  (no exchange) and the news off;
* starts JupyterLab with the edition's own ``make lab`` (in this environment,
  which postBuild set up as the Makefile would) and asks nbgrader's
  *Validate* handler to run the solution of practical 1 (copied in from
  ``solutions/``; it must pass every test) and the student version (it must
  report the unanswered questions); Formgrader and the assignment list answer
  404.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from _labserver import free_port, running_server

from coursetools.lab import STUDENT_LAB_PLUGINS_OFF
from coursetools.release import build_edition

REPO = Path(__file__).resolve().parents[1]
WHEELHOUSE = REPO / ".venv" / "wheelhouse"

pytestmark = pytest.mark.slow


def _pip_section(environment_yml: Path) -> list[str]:
    """The requirements listed under ``- pip:`` in environment.yml."""
    reqs, in_pip = [], False
    for line in environment_yml.read_text().splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if re.match(r"^\s*-\s*pip\s*:\s*$", stripped):
            in_pip, indent = True, len(line) - len(line.lstrip())
            continue
        if in_pip:
            if not stripped.strip():
                continue
            if len(line) - len(line.lstrip()) <= indent:
                break
            reqs.append(stripped.strip().lstrip("-").strip())
    return reqs


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def binder(tmp_path_factory):
    if not (WHEELHOUSE / ".complete").exists():
        pytest.fail(f"{WHEELHOUSE} is missing or incomplete: `make test` fills it "
                    "(make .venv/wheelhouse/.complete)")
    base = tmp_path_factory.mktemp("binder")
    repo = base / "student"
    build_edition(repo)
    home = base / "home"
    home.mkdir()

    env_dir = base / "env"
    python = getattr(sys, "_base_executable", None) or shutil.which("python3.11") or sys.executable
    _run([python, "-m", "venv", str(env_dir)])
    bindir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "JUPYTER", "MLM_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        HOME=str(home),
        PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(env_dir),
        # Offline: every install comes from the wheelhouse, no index, no user config.
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(WHEELHOUSE),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        # Skip byte-compiling ~100 packages: a third of the install time, and
        # Python compiles on first import anyway.
        PIP_NO_COMPILE="1",
    )
    reqs = _pip_section(repo / "environment.yml")
    assert len(reqs) >= 10 and all("==" in r for r in reqs), reqs
    (base / "binder-requirements.txt").write_text("\n".join(reqs) + "\n")
    started = time.monotonic()
    _run([bindir / "python", "-m", "pip", "install", "--quiet", "-r",
          str(base / "binder-requirements.txt")], env=env)
    postbuild = repo / "postBuild"
    assert os.access(postbuild, os.X_OK), "postBuild must be executable (repo2docker runs it directly)"
    build = _run([str(postbuild)], cwd=repo, env=env)
    print(f"\nfresh environment installed and postBuild run in {time.monotonic() - started:.0f} s")
    # The edition's Makefile creates .venv the same way (requirements.txt, which pins what
    # environment.yml pins, then postBuild); mark this environment as done so that
    # `make lab VENV=...` only starts JupyterLab.
    (env_dir / ".installed").touch()
    return {"repo": repo, "env": env, "bin": bindir, "home": home, "postbuild": build}


def test_helpers_importable_and_data_found(binder):
    code = (
        "import json, mlmhelpers as mlm\n"
        "df = mlm.load_dataset('chem97')\n"
        "print(json.dumps({'file': mlm.__file__, 'data': str(mlm.data_dir()),"
        " 'shape': list(df.shape), 'names': mlm.dataset_names()}))\n"
    )
    out = _run([binder["bin"] / "python", "-c", code], cwd=binder["home"], env=binder["env"])
    info = json.loads(out.stdout.strip().splitlines()[-1])
    site = str(binder["bin"].parent)
    assert info["file"].startswith(site), f"mlmhelpers imported from {info['file']}, not the fresh environment"
    assert info["data"].startswith(site), f"data read from {info['data']}, not from the installed package"
    assert info["shape"] == [31022, 8]
    assert info["names"] == ["chem97", "contraception", "guimmun", "mmmec", "scotssec", "tutorial"]


def test_nbgrader_extensions_for_students(binder):
    server = _run([binder["bin"] / "jupyter", "server", "extension", "list"],
                  cwd=binder["repo"], env=binder["env"])
    text = re.sub(r"\x1b\[[0-9;]*m", "", server.stdout + server.stderr)
    assert re.search(r"nbgrader\.server_extensions\.validate_assignment\s+enabled", text), text
    for ext in ("formgrader", "assignment_list", "course_list"):
        assert re.search(rf"nbgrader\.server_extensions\.{ext}\s+disabled", text), text

    lab = _run([binder["bin"] / "jupyter", "labextension", "list"],
               cwd=binder["repo"], env=binder["env"])
    text = re.sub(r"\x1b\[[0-9;]*m", "", lab.stdout + lab.stderr)
    assert re.search(r"@jupyter/nbgrader v0\.9\.6 enabled\s+OK", text), text
    assert re.search(r"@jupyter-widgets/jupyterlab-manager v\S+ enabled\s+OK", text), text
    disabled = text.split("Disabled extensions:")[-1]
    for plugin in STUDENT_LAB_PLUGINS_OFF:
        assert plugin in disabled, f"{plugin} is not disabled:\n{text}"
    assert "validate-assignment" not in disabled


def test_widget_state_is_saved_with_the_notebook(binder):
    """postBuild turns on the widget manager's saveState (JupyterLab's overrides.json of the
    environment), so a lecture saved after running shows its widgets when reopened."""
    overrides = binder["bin"].parent / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings = json.loads(overrides.read_text())
    assert settings["@jupyter-widgets/jupyterlab-manager:plugin"]["saveState"] is True


def test_postbuild_rejects_a_bad_assignment_list_setting(binder):
    """NBGRADER_ASSIGNMENT_LIST is on or off; anything else stops postBuild before it changes anything."""
    bad = subprocess.run([str(binder["repo"] / "postBuild")], cwd=binder["repo"],
                         env=dict(binder["env"], NBGRADER_ASSIGNMENT_LIST="maybe"),
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "must be on or off" in bad.stderr


@pytest.fixture(scope="module")
def binder_lab(binder):
    """The fresh environment's JupyterLab, started in the edition by its `make lab`."""
    port = free_port()
    token = secrets.token_hex(16)
    # The edition's `make lab`, in the environment built above (Binder starts the same
    # JupyterLab in the same folder; its configuration comes from postBuild).
    cmd = ["make", "--no-print-directory", "lab", f"VENV={binder['bin'].parent}", f"PORT={port}",
           f"ARGS=--no-browser --ip=127.0.0.1 --ServerApp.port_retries=0 --IdentityProvider.token={token}"]
    log_path = binder["home"] / "jupyterlab.log"
    url = f"http://127.0.0.1:{port}"

    def call(path, data=None, timeout=300):
        req = urllib.request.Request(f"{url}/{path}", data=data,
                                     headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read().decode()

    def status(path):
        try:
            call(path, timeout=60)
        except urllib.error.HTTPError as err:
            return err.code
        return 200

    with running_server(cmd, binder["repo"], binder["env"], port, token, log_path):
        yield {"call": call, "status": status, "log": log_path}


def _validate(binder_lab, path):
    body = urllib.parse.urlencode({"path": path}).encode()
    answer = json.loads(binder_lab["call"]("assignments/validate", data=body))
    assert answer["success"], answer["value"]
    value = answer["value"]
    return json.loads(value) if isinstance(value, str) else value


def test_lab_page_has_nbgrader_and_widgets(binder_lab):
    page = binder_lab["call"]("lab/tree/index.ipynb")
    config = json.loads(re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S).group(1))
    federated = {ext["name"] for ext in config["federated_extensions"]}
    assert {"@jupyter/nbgrader", "@jupyter-widgets/jupyterlab-manager"} <= federated, federated
    assert set(STUDENT_LAB_PLUGINS_OFF) <= set(config["disabledExtensions"]), config["disabledExtensions"]
    assert set(STUDENT_LAB_PLUGINS_OFF) <= set(config["lockedExtensions"]), config["lockedExtensions"]
    assert "@jupyter/nbgrader:validate-assignment" not in config["disabledExtensions"]


def test_formgrader_and_assignment_list_are_off(binder_lab):
    assert binder_lab["status"]("lab/tree/index.ipynb") == 200
    for path in ("formgrader", "formgrader/manage_assignments", "assignments?course_id=multilevel",
                 "courses"):
        assert binder_lab["status"](path) == 404, f"/{path} should not exist for students"


def test_validate_solution_passes_in_fresh_environment(binder, binder_lab):
    # The edition has no solutions: bring the model answers of practical 1 in from the tutor's tree.
    check = binder["repo"] / "solution-check"
    check.mkdir(exist_ok=True)
    shutil.copy2(REPO / "solutions/practical1/practical1.ipynb", check / "practical1.ipynb")
    verdict = _validate(binder_lab, "solution-check/practical1.ipynb")
    assert verdict == {}, f"the model answers should pass every test: {json.dumps(verdict)[:3000]}"


def test_validate_student_version_reports_unanswered(binder_lab):
    verdict = _validate(binder_lab, "practicals/practical1/practical1.ipynb")
    failed = verdict.get("failed", [])
    assert failed, verdict
    # named by its question, with the message (mlmhelpers.validation), not the check's code
    assert any(cell["source"] == "Question 1" and "corr_gcse" in cell["error"] for cell in failed), \
        [(c["source"][:80], c["error"][:80]) for c in failed]


def test_binder_badges_start_the_student_branch():
    """Both READMEs' badges open the landing page of the student edition (branch `student`)."""
    for readme in (REPO / "README.md", REPO / "tools/student-edition/README.md"):
        match = re.search(r"\(https://mybinder\.org/v2/gh/([^/\s]+)/([^/\s]+)/([^?\s]+)\?urlpath=([^)\s]+)\)",
                          readme.read_text())
        assert match, f"{readme} has no Binder badge link"
        _user, _repo, ref, urlpath = match.groups()
        assert ref == "student", f"{readme}: the badge should start the student branch"
        assert urlpath.startswith("lab/tree/"), urlpath
        assert (REPO / urlpath.removeprefix("lab/tree/")).is_file(), f"{urlpath} does not exist"


def test_landing_page_links_every_notebook_in_order():
    """index.ipynb (where Binder and `make lab` open) links the day's notebooks in teaching order."""
    import nbformat

    landing = nbformat.read(REPO / "index.ipynb", as_version=4)
    text = "\n".join(cell.source for cell in landing.cells if cell.cell_type == "markdown")
    links = re.findall(r"\]\(([^)\s]+\.ipynb)\)", text)
    expected = [
        "course/01-linear-regression.ipynb", "course/02-multilevel-data.ipynb",
        "course/03-variance-components.ipynb", "practicals/practical1/practical1.ipynb",
        "course/04-random-intercepts.ipynb", "practicals/practical2/practical2.ipynb",
        "course/05-binary-responses.ipynb", "practicals/practical3/practical3.ipynb",
        "course/06-random-slopes.ipynb", "practicals/practical4/practical4.ipynb",
        "course/07-going-further.ipynb",
    ]
    assert links == expected
    missing = [link for link in links if not (REPO / link).is_file()]
    assert not missing, f"the landing page links to missing notebooks: {missing}"
    assert "Validate" in text and "File → Download" in text, "say how to validate and how to hand in"
    assert "solutions" not in text, "students get no solutions folder: do not send them to one"
