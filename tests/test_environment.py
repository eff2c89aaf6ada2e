"""The pins: exact, in one place, and apart for students and maintainers.

* ``requirements.txt`` pins what the course runs on (students install it);
  ``environment.yml`` (Binder) pins exactly the same and nothing else;
* ``requirements-dev.txt`` adds the maintainers' test and build tools on top
  (``-r requirements.txt``), and none of those reaches students;
* ``tools/requirements-grading.txt`` pins what grading adds (the HTML
  sanitiser), included by ``requirements-dev.txt`` and installed by the hub's
  ``setup.sh``; students never get it;
* ``hub/requirements.txt`` pins the hub; the test environment has its
  JupyterHub and LTI 1.3 authenticator at the same versions (tests/test_lti.py);
* the build backend the two ``pyproject.toml`` files ask for is the pinned one;
* the installed versions are the pinned ones.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*-?\s*([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s#]+)")
DEV_TOOLS = {"pytest", "pytest-xdist", "nbval", "playwright", "hatchling",
             # the hub's tests: a real JupyterHub with LTI 1.3 log-in (the hub's own pins),
             # a signed launch, the Helm values' schema
             "jupyterhub", "jupyterhub-ltiauthenticator", "pyjwt", "cryptography", "jsonschema", "pyyaml",
             # the course website (make site): Sphinx, MyST-NB, the book theme, numpydoc
             "sphinx", "myst-nb", "myst-parser", "jupyter-cache", "sphinx-book-theme",
             "pydata-sphinx-theme", "numpydoc", "docutils"}
GRADING = REPO / "tools" / "requirements-grading.txt"
HUB = REPO / "hub" / "requirements.txt"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def _entries(path: Path) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line]


def test_requirements_pin_exactly():
    runtime = _entries(REPO / "requirements.txt")
    assert runtime, "requirements.txt is empty"
    dev = _entries(REPO / "requirements-dev.txt")
    assert dev[0] == "-r requirements.txt", "requirements-dev.txt builds on the runtime pins"
    assert dev[1] == "-r tools/requirements-grading.txt", "requirements-dev.txt includes grading's pins"
    grading = _entries(GRADING)
    loose = [e for e in runtime + dev[2:] + grading + _entries(HUB) if "==" not in e]
    assert not loose, f"every requirement must be pinned with ==: {loose}"


def test_runtime_and_development_apart():
    runtime, dev = _pins(REPO / "requirements.txt"), _pins(REPO / "requirements-dev.txt")
    assert set(dev) == DEV_TOOLS, f"requirements-dev.txt should add exactly {sorted(DEV_TOOLS)}"
    assert not set(runtime) & DEV_TOOLS, f"students would install {sorted(set(runtime) & DEV_TOOLS)}"
    assert set(_pins(GRADING)) == {"nh3"} and not set(runtime) & {"nh3"}
    assert not set(runtime) & set(_pins(HUB)), "the hub's packages are not the students'"
    hub = _pins(HUB)
    for name in ("jupyterhub", "jupyterhub-ltiauthenticator"):
        assert dev[name] == hub[name], f"{name}: {dev[name]} in requirements-dev.txt, {hub[name]} in the hub's"
    assert {"jupyterlab", "nbgrader", "numpy", "scipy", "pandas", "statsmodels", "matplotlib",
            "ipywidgets"} <= set(runtime)


def test_environment_yml_matches_requirements():
    req = _pins(REPO / "requirements.txt")
    env = _pins(REPO / "environment.yml")
    assert env == req, (
        "environment.yml and requirements.txt pin different versions: "
        f"only in requirements {sorted(set(req.items()) - set(env.items()))}, "
        f"only in environment.yml {sorted(set(env.items()) - set(req.items()))}"
    )
    assert "python=3.11" in (REPO / "environment.yml").read_text()


def test_binder_python_is_the_one_the_notebooks_were_saved_with():
    """JupyterLab rewrites a notebook's language_info when its kernel starts and marks the
    notebook changed (●) if the Python version differs: Binder's Python must match the
    version the committed lectures and practicals record, so they open unmodified."""
    import json
    import re

    pin = re.search(r"^\s*-\s*python=(\S+)", (REPO / "environment.yml").read_text(), re.M).group(1)
    notebooks = sorted((REPO / "course").glob("*.ipynb")) + sorted((REPO / "practicals").glob("*/*.ipynb"))
    assert notebooks
    versions = {
        path.relative_to(REPO).as_posix(): json.loads(path.read_text())["metadata"].get("language_info", {}).get("version")
        for path in notebooks
    }
    wrong = {name: version for name, version in versions.items() if version != pin}
    assert not wrong, (
        f"environment.yml pins python={pin} but these notebooks were saved with another Python: {wrong}; "
        "re-execute/regenerate them with that Python or change the pin"
    )


def test_build_backend_is_the_pinned_hatchling():
    pinned = f"hatchling=={_pins(REPO / 'requirements-dev.txt')['hatchling']}"
    for pyproject in (REPO / "pyproject.toml", REPO / "tools" / "pyproject.toml"):
        build = tomllib.loads(pyproject.read_text())["build-system"]
        assert build["requires"] == [pinned], f"{pyproject}: {build['requires']}, pinned {pinned}"


def test_installed_versions_match_pins():
    from importlib.metadata import version

    pins = _pins(REPO / "requirements.txt") | _pins(REPO / "requirements-dev.txt") | _pins(GRADING)
    for name, pinned in pins.items():
        assert version(name) == pinned, f"{name}: installed {version(name)}, pinned {pinned}"
