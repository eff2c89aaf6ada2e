"""Binder's install steps, replayed offline in a fresh virtual environment.

Binder (repo2docker) cannot be launched from here.  What it does with this
repository is: clone it, create a conda environment from ``environment.yml``
(Python 3.11 from conda-forge; every other package from the ``pip:`` section),
run ``postBuild`` in the repository folder, and start JupyterLab there.  This
test replays everything except conda:

* copies the files git would clone (tracked and new, not ignored) to a
  temporary folder;
* creates a fresh virtual environment with this machine's Python 3.11 and
  installs exactly the ``pip:`` section of ``environment.yml`` into it, from the
  wheelhouse ``.venv/wheelhouse`` that ``make test`` fills (``pip download``),
  with ``--no-index``: no network at test time;
* runs ``postBuild`` unchanged (pip pointed at the wheelhouse by environment
  variables);
* from an unrelated folder, imports the helpers (the installed copy, not the
  repository's ``helpers/``) and loads a data set without ``MLM_DATA_DIR``;
* checks the Jupyter server and Lab extensions that postBuild leaves on/off;
* starts the fresh environment's JupyterLab in the copy the way Binder does and
  asks nbgrader's *Validate* handler to run the solution of practical 1 (it
  must pass every test) and the student version (it must report the
  unanswered questions), and lists assignments without an exchange error.
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


def _repo_files() -> list[str]:
    """Files a clone of the repository would hold (tracked and not-ignored new files)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode()
    return [f for f in out.split("\0") if f and (REPO / f).is_file()]


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
    repo = base / "repo"
    for rel in _repo_files():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, repo / rel)
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
    assert info["names"] == ["chem97", "contraception", "guimmun", "scotssec", "tutorial"]


def test_nbgrader_extensions_for_students(binder):
    server = _run([binder["bin"] / "jupyter", "server", "extension", "list"],
                  cwd=binder["repo"], env=binder["env"])
    text = re.sub(r"\x1b\[[0-9;]*m", "", server.stdout + server.stderr)
    for ext in ("validate_assignment", "assignment_list"):
        assert re.search(rf"nbgrader\.server_extensions\.{ext}\s+enabled", text), text
    assert re.search(r"nbgrader\.server_extensions\.formgrader\s+disabled", text), text

    lab = _run([binder["bin"] / "jupyter", "labextension", "list"],
               cwd=binder["repo"], env=binder["env"])
    text = re.sub(r"\x1b\[[0-9;]*m", "", lab.stdout + lab.stderr)
    assert re.search(r"@jupyter/nbgrader v0\.9\.6 enabled\s+OK", text), text
    assert re.search(r"@jupyter-widgets/jupyterlab-manager v\S+ enabled\s+OK", text), text
    assert re.search(r"@jupyter/nbgrader:formgrader", text), text  # listed as disabled


@pytest.fixture(scope="module")
def binder_lab(binder):
    """The fresh environment's JupyterLab, started in the repository copy as Binder does."""
    port = free_port()
    token = secrets.token_hex(16)
    cmd = [str(binder["bin"] / "jupyter"), "lab", "--no-browser", f"--port={port}",
           "--ip=127.0.0.1", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # Binder runs as an ordinary user; CI runs as root
    log_path = binder["home"] / "jupyterlab.log"
    url = f"http://127.0.0.1:{port}"

    def call(path, data=None, timeout=300):
        req = urllib.request.Request(f"{url}/{path}", data=data,
                                     headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read().decode()

    with running_server(cmd, binder["repo"], binder["env"], port, token, log_path):
        yield {"call": call, "log": log_path}


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
    assert "@jupyter/nbgrader:formgrader" in config["disabledExtensions"], config["disabledExtensions"]
    assert "@jupyter/nbgrader:validate-assignment" not in config["disabledExtensions"]


def test_validate_solution_passes_in_fresh_environment(binder_lab):
    verdict = _validate(binder_lab, "solutions/practical1/practical1.ipynb")
    assert verdict == {}, f"the model answers should pass every test: {json.dumps(verdict)[:3000]}"


def test_validate_student_version_reports_unanswered(binder_lab):
    verdict = _validate(binder_lab, "practicals/practical1/practical1.ipynb")
    failed = verdict.get("failed", [])
    assert failed, verdict
    assert any("corr_gcse" in cell["source"] for cell in failed), [c["source"][:80] for c in failed]


def test_assignment_list_without_exchange_error(binder_lab):
    answer = json.loads(binder_lab["call"]("assignments?course_id=multilevel"))
    assert answer["success"], answer


def test_readme_badge_opens_landing_page_on_default_branch():
    readme = (REPO / "README.md").read_text()
    match = re.search(r"\(https://mybinder\.org/v2/gh/([^/\s]+)/([^/\s]+)/([^?\s]+)\?urlpath=([^)\s]+)\)",
                      readme)
    assert match, "README.md has no Binder badge link"
    _user, _repo, ref, urlpath = match.groups()
    assert ref == "HEAD", "the badge should follow the default branch (HEAD)"
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
