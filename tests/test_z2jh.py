"""Zero to JupyterHub: the Helm values and the user image, checked rather than only written.

* ``hub/zero-to-jupyterhub.values.yaml`` against the chart's own values
  schema, merged with the chart's default values first as helm does (the
  schema requires keys that only the defaults give).  The schema and defaults
  of the pinned chart version live in ``hub/vendor/z2jh-<version>/``
  (``hub/vendor/get-z2jh-chart.sh`` fetches them; ``MLM_Z2JH_CHART_DIR``
  may point to another folder with the same two files);
* the parts of the values the course relies on: LTI 1.3 log-in with groups
  managed by the authenticator and the rule of ``hub/lti_login.py`` (run
  here, with the values' own hook code), the instructors' tools, the exchange
  service on both sides (hub service, every user's nbgrader), memory and CPU
  limits against the measured figures, the idle culler;
* ``hub/image/Dockerfile``: built FROM the Python the notebooks were saved
  with, installing the course's ``requirements.txt`` and the other pins
  exactly as the repository pins them.  Building the image needs the
  network and stays out of the tests.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VALUES = REPO / "hub" / "zero-to-jupyterhub.values.yaml"
DOCKERFILE = REPO / "hub" / "image" / "Dockerfile"
sys.path.insert(0, str(REPO / "hub"))
import lti_login  # noqa: E402 - hub/lti_login.py

LIS = "http://purl.imsglobal.org/vocab/lis/v2"
# tests/test_hub.py's measurement (README, "How big a machine"): a student's
# server with a kernel that has run practical 1.
MEASURED_SERVER_MIB, MEASURED_KERNEL_PEAK_MIB = 166, 230


def _chart_version() -> str:
    match = re.search(r"jupyterhub/jupyterhub --version (\S+)", VALUES.read_text())
    assert match, "the helm command in the values file pins the chart version"
    return match.group(1)


def _chart_dir() -> Path:
    return Path(os.environ.get("MLM_Z2JH_CHART_DIR") or REPO / "hub" / "vendor" / f"z2jh-{_chart_version()}")


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def helm_merge(base, override):
    """Helm's merge of user values over chart defaults: maps deep, lists and scalars replaced, null removes."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = helm_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def with_set_file(values: dict) -> dict:
    """The values as helm sees them with the --set-file of the values file's helm command."""
    merged = copy.deepcopy(values)
    merged["hub"]["extraFiles"]["lti-login"]["stringData"] = (REPO / "hub" / "lti_login.py").read_text()
    return merged


# --------------------------------------------------------------------------- the chart's schema


@pytest.fixture(scope="module")
def chart():
    folder = _chart_dir()
    schema, defaults = folder / "values.schema.json", folder / "values.yaml"
    if not (schema.exists() and defaults.exists()):
        pytest.skip(f"no chart schema in {folder}: run hub/vendor/get-z2jh-chart.sh (needs the network) "
                    "or set MLM_Z2JH_CHART_DIR")
    return json.loads(schema.read_text()), yaml.safe_load(defaults.read_text())


def _errors(chart, values) -> list[str]:
    import jsonschema

    schema, defaults = chart
    validator = jsonschema.validators.validator_for(schema)(schema)
    merged = helm_merge(defaults, values)
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in validator.iter_errors(merged)]


def test_values_pass_the_charts_schema(chart, values):
    if (_chart_dir() / "SOURCE.md").exists():
        assert _chart_version() in (_chart_dir() / "SOURCE.md").read_text()
    errors = _errors(chart, with_set_file(values))
    assert not errors, "helm would refuse these values:\n" + "\n".join(errors)


@pytest.mark.parametrize("path, bad", [
    (("singleuser", "memory", "limt"), "1G"),          # a typo
    (("cull", "timeout"), "one hour"),                  # not a number of seconds
    (("singleuser", "extraFiles", "nbgrader-config", "mountPath"), None),  # a file with nowhere to go
    (("scheduling", "userPlaceholder", "replicas"), "ten"),
], ids=["typo", "wrong-type", "missing-required", "not-a-count"])
def test_the_schema_check_catches_mistakes(chart, values, path, bad):
    broken = with_set_file(values)
    node = broken
    for key in path[:-1]:
        node = node[key]
    if bad is None:
        del node[path[-1]]
    else:
        node[path[-1]] = bad
    assert _errors(chart, broken), f"a wrong {'.'.join(path)} went through"


# --------------------------------------------------------------------------- what the course relies on


def _exec_extra_config(values, name: str, **names):
    """Run one hub.extraConfig snippet as the chart's hub does (a `c` in its namespace)."""
    c = SimpleNamespace(Authenticator=SimpleNamespace(), Spawner=SimpleNamespace())
    namespace = {"c": c, **names}
    exec(compile(values["hub"]["extraConfig"][name], name, "exec"), namespace)
    return c


def test_lti_log_in_with_groups_from_the_platforms_roles(values):
    config = values["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] == lti_login.AUTHENTICATOR
    lti = config["LTI13Authenticator"]
    for key in ("issuer", "authorize_url", "jwks_endpoint", "client_id", "username_key"):
        assert lti.get(key), f"LTI13Authenticator.{key} is not set"
    assert config["Authenticator"]["manage_groups"] is True
    if lti["username_key"] == "email":
        # e-mail addresses as user names: also nbgrader's student ids, which grading accepts
        from coursetools.grading.course import STUDENT_ID

        assert STUDENT_ID.fullmatch("sam.o-neil_2@students.uni.example.ac.uk")
    # With groups managed by the authenticator JupyterHub refuses load_groups.
    assert "load_groups" not in json.dumps(values["hub"])
    assert values["hub"]["extraFiles"]["lti-login"]["mountPath"] == "/usr/local/etc/jupyterhub/lti_login.py"
    # The hook the values install is hub/lti_login.py's: same groups for the same roles.
    c = _exec_extra_config(values, "10-lti-groups.py")
    hook = c.Authenticator.post_auth_hook
    log = SimpleNamespace(warning=lambda *a: None)
    for roles, group in (([f"{LIS}/membership#Instructor"], "instructors"),
                         ([f"{LIS}/membership/Instructor#TeachingAssistant"], "instructors"),
                         ([f"{LIS}/membership#Learner"], "students"),
                         ([f"{LIS}/institution/person#Instructor", f"{LIS}/membership#Learner"], "students")):
        model = hook(SimpleNamespace(log=log), None,
                     {"name": "x@uni.example", "auth_state": {lti_login.ROLES_CLAIM: roles}})
        assert model["groups"] == [group] == lti_login.groups_for_roles(roles)


def test_instructors_get_their_tools_and_room_to_grade(values):
    c = _exec_extra_config(values, "20-instructor-tools.py")

    def spawn(groups):
        spawner = SimpleNamespace(environment={}, user=SimpleNamespace(
            groups=[SimpleNamespace(name=g) for g in groups]))
        c.Spawner.pre_spawn_hook(spawner)
        return spawner

    tutor, student = spawn(["instructors"]), spawn(["students"])
    assert tutor.environment["JUPYTER_CONFIG_PATH"] == "/opt/course/instructor-config"
    assert "/opt/course/instructor-config" in DOCKERFILE.read_text()
    assert student.environment == {} and not hasattr(student, "mem_limit")
    # Autograding one submission takes up to the grading sandbox's default memory.
    from coursetools.grading.sandbox import Limits

    assert _bytes(tutor.mem_limit) >= Limits.total_memory_mb * 2**20 + _bytes(values["singleuser"]["memory"]["limit"])


def test_the_exchange_service_on_both_sides(values):
    service = values["hub"]["services"]["ngshare"]
    assert service["url"].startswith("http") and service["apiToken"]
    scopes = values["hub"]["loadRoles"]["user"]["scopes"]
    assert "self" in scopes and "access:services!service=ngshare" in scopes
    nbgrader = values["singleuser"]["extraFiles"]["nbgrader-config"]
    assert nbgrader["mountPath"] == "/etc/jupyter/nbgrader_config.py"
    code = nbgrader["stringData"]
    compile(code, "nbgrader_config.py", "exec")
    assert 'configureExchange(c, os.environ["MLM_NGSHARE_URL"])' in code
    env = values["singleuser"]["extraEnv"]
    assert env["MLM_EXCHANGE"] == "service" and env["MLM_NGSHARE_URL"].endswith("/services/ngshare")
    assert 'course_id = "multilevel"' in code
    assert "ngshare-exchange==" in DOCKERFILE.read_text()


def _bytes(text) -> float:
    """Kubernetes/KubeSpawner quantities: 512M, 1G, 1Gi."""
    match = re.fullmatch(r"([\d.]+)\s*([KMGT]?)(i?)", str(text))
    assert match, text
    number, unit, binary = match.groups()
    power = " KMGT".index(unit or " ")
    return float(number) * ((1024 if binary else 1000) ** power if unit else 1)


def _measured_mib() -> float:
    """The measured memory of a working student's server (tests/test_hub.py's latest run if any)."""
    capacity = REPO / "build" / "hub-capacity.json"
    if capacity.exists():
        figure = json.loads(capacity.read_text()).get("user_memory_mib")
        if figure:
            return float(figure)
    return MEASURED_SERVER_MIB + MEASURED_KERNEL_PEAK_MIB


def test_memory_and_cpu_from_the_measured_figures(values):
    memory, cpu = values["singleuser"]["memory"], values["singleuser"]["cpu"]
    measured = _measured_mib() * 2**20
    guarantee, limit = _bytes(memory["guarantee"]), _bytes(memory["limit"])
    # The guarantee covers a working student, without reserving much more (packing);
    # the limit leaves room for a second kernel.
    assert measured <= guarantee <= 1.5 * measured, (memory, measured / 2**20)
    assert limit >= (_measured_mib() + MEASURED_KERNEL_PEAK_MIB) * 2**20, memory
    assert 0 < cpu["guarantee"] <= 0.25 and cpu["limit"] >= 1


def test_idle_servers_are_culled(values):
    cull = values["cull"]
    assert cull["enabled"] is True and 600 <= cull["timeout"] <= 4 * 3600 and cull["every"] < cull["timeout"]


# --------------------------------------------------------------------------- the user image


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def _dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments and heredoc bodies left out."""
    lines, out, heredoc = DOCKERFILE.read_text().splitlines(), [], None
    current = ""
    for line in lines:
        if heredoc:
            if line.strip() == heredoc:
                heredoc = None
            continue
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue
        current += " " + line.strip().rstrip("\\")
        if not line.rstrip().endswith("\\"):
            out.append(current.strip())
            match = re.search(r"<<'?(\w+)'?", current)
            heredoc = match.group(1) if match else None
            current = ""
    return out


def test_the_image_is_built_from_the_pinned_python():
    base = next(i for i in _dockerfile_instructions() if i.startswith("FROM "))
    python = re.search(r"^\s*-\s*python=(\S+)", (REPO / "environment.yml").read_text(), re.M).group(1)
    assert re.fullmatch(rf"FROM python:{re.escape(python)}-slim(-\w+)?", base), \
        f"{base}: the image's Python must be environment.yml's python={python} (the notebooks were saved with it)"


def test_the_images_pins_are_the_repositorys():
    instructions = _dockerfile_instructions()
    text = " ".join(instructions)
    # The course's packages come from the edition's requirements.txt, a copy of this one.
    from coursetools.release import SHIPPED

    assert "requirements.txt" in SHIPPED and "postBuild" in SHIPPED
    assert "COPY requirements.txt /opt/course/requirements.txt" in instructions
    assert "-r /opt/course/requirements.txt" in text
    # Every package named with a version in the Dockerfile is pinned as the repository pins it.
    named = dict(re.findall(r"\b([A-Za-z0-9][A-Za-z0-9_.\-]*)==([^\s\"']+)", text))
    named = {k.lower().replace("_", "-"): v for k, v in named.items()}
    wanted = (_pins(REPO / "requirements.txt") | _pins(REPO / "tools" / "requirements-grading.txt")
              | {"jupyterhub": _pins(REPO / "hub" / "requirements.txt")["jupyterhub"]})
    exchange = REPO / "hub" / "requirements-exchange.txt"  # the one-machine hub's exchange plug-in
    if exchange.exists():
        wanted |= _pins(exchange)
    else:
        wanted["ngshare-exchange"] = named.get("ngshare-exchange")
    wrong = {k: (v, wanted.get(k)) for k, v in named.items() if wanted.get(k) != v}
    assert not wrong, f"the Dockerfile pins differently from the repository (Dockerfile, repository): {wrong}"
    assert {"jupyterhub", "nh3", "ngshare-exchange"} <= set(named)
    # Nothing unpinned is installed.
    installs = [m.group(1) for i in instructions for m in re.finditer(r"pip install ([^&]+)", i)]
    assert installs
    for words in installs:
        for word in words.split():
            if not word.startswith("-") and word != "/opt/course/requirements.txt":
                assert "==" in word, f"unpinned in the Dockerfile: {word}"
    # Student mode from the edition's own postBuild, with the assignment list on.
    assert any("NBGRADER_ASSIGNMENT_LIST=on bash ./postBuild" in i for i in instructions)


def test_instructors_get_back_what_student_mode_locks():
    """postBuild disables and locks the tutor's plugins; the instructors' page config undoes both."""
    off = re.search(r"^off=\(([^)]*)\)", (REPO / "postBuild").read_text(), re.M).group(1).split()
    tutor_plugins = [p for p in off if p.startswith("@jupyter/nbgrader:")]
    assert set(tutor_plugins) == {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment"}
    page = re.search(r"<<'JSON' /opt/course/instructor-config/labconfig/page_config.json\n(.*?)\nJSON\n",
                     DOCKERFILE.read_text(), re.S).group(1)
    config = json.loads(page)
    for plugin in tutor_plugins:
        assert config["disabledExtensions"][plugin] is False and config["lockedExtensions"][plugin] is False
    server = re.search(r"<<'JSON' /opt/course/instructor-config/jupyter_server_config.d/nbgrader-formgrader.json\n"
                       r"(.*?)\nJSON\n", DOCKERFILE.read_text(), re.S).group(1)
    extensions = json.loads(server)["ServerApp"]["jpserver_extensions"]
    assert extensions == {"nbgrader.server_extensions.formgrader": True, "coursetools.grading.web": True}
