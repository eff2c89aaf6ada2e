#!/usr/bin/env bash
# Install what the class hub needs on this machine.  Run as root (`make hub`
# and tests/test_hub.py call it); it does nothing when everything is already
# installed from the same files.
#
#   $MLM_HUB_PREFIX/hub     JupyterHub itself and the ngshare exchange service
#                           (Python packages of hub/requirements.txt)
#   $MLM_HUB_PREFIX/user    what every user's server and kernels run: the course's
#                           requirements.txt, jupyterhub's single-user server, the
#                           ngshare plug-in for nbgrader (hub/requirements-exchange.txt)
#                           and the helper library, with nbgrader set up for students
#   $MLM_HUB_PREFIX/instructor-config
#                           extra Jupyter config for the instructors group:
#                           formgrader and "create assignment" on
#   $MLM_HUB_PREFIX/proxy   configurable-http-proxy from npm (hub/package-lock.json)
#
# Everything goes under /opt/mlm-hub by default, readable by every user: the
# environments are built with Debian's /usr/bin/python3, never with a Python
# kept in a personal home folder that other users cannot enter.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
PREFIX="${MLM_HUB_PREFIX:-/opt/mlm-hub}"
SYSTEM_PYTHON="${MLM_HUB_PYTHON:-/usr/bin/python3}"

if [[ $(id -u) -ne 0 ]]; then
    echo "hub/setup.sh must run as root: the hub starts servers as other users." >&2
    exit 1
fi

# stamp NAME FILES...: true when the part NAME was installed from these very files.
fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }
installed() { [[ -f "$PREFIX/.stamp-$1" && "$(cat "$PREFIX/.stamp-$1")" == "$2" ]]; }
mark() { echo "$2" > "$PREFIX/.stamp-$1"; }

envs_want="$(fingerprint "$HERE/requirements.txt" "$HERE/requirements-exchange.txt" "$REPO/requirements.txt" "$REPO/pyproject.toml" \
             "$REPO/tools/requirements-grading.txt" \
             $(find "$REPO/helpers/mlmhelpers" "$REPO/data" -type f -not -name '*.pyc' | sort))"
proxy_want="$(fingerprint "$HERE/package.json" "$HERE/package-lock.json")"
if ! installed envs "$envs_want" || ! installed proxy "$proxy_want"; then
    echo "Installing the class hub into $PREFIX (a few minutes the first time) ..."
fi

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

prerequisites() {
    # Debian's Python needs its venv package (ensurepip) to create environments.
    if [[ ! -x "$SYSTEM_PYTHON" ]]; then
        apt_install python3 python3-venv
    fi
    probe="$(mktemp -d)"
    if ! "$SYSTEM_PYTHON" -m venv "$probe/venv" >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    rm -rf "$probe"
    if ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
}

mkdir -p "$PREFIX"
chmod 755 "$PREFIX"

make_env() {  # make_env DIR: a fresh virtual environment with an up-to-date pip
    rm -rf "$1"
    "$SYSTEM_PYTHON" -m venv "$1"
    "$1/bin/python" -m pip install --quiet --upgrade pip
}

if ! installed envs "$envs_want"; then
    prerequisites
    # 1. The hub.
    make_env "$PREFIX/hub"
    "$PREFIX/hub/bin/python" -m pip install --quiet -r "$HERE/requirements.txt"

    # 2. Every user's environment: the course's pinned packages, the single-user
    #    server (same jupyterhub version as the hub), what grading and Formgrader
    #    add (the HTML sanitiser, tools/requirements-grading.txt: instructors grade
    #    in this environment) and the helper library with its data (a normal
    #    install, not an editable one pointing into this folder).
    make_env "$PREFIX/user"
    "$PREFIX/user/bin/python" -m pip install --quiet -r "$REPO/requirements.txt" \
        "$(grep -E '^jupyterhub==' "$HERE/requirements.txt")" -r "$REPO/tools/requirements-grading.txt"
    # ngshare's nbgrader plug-in, without its out-of-date jupyter-core pin (see the file).
    "$PREFIX/user/bin/python" -m pip install --quiet --no-deps -r "$HERE/requirements-exchange.txt"
    "$PREFIX/user/bin/python" -m pip install --quiet --no-deps "$REPO"

    # nbgrader for a student (as on Binder): Validate, the assignment list and the
    # course list on; formgrader and "create assignment" off.
    userbin="$PREFIX/user/bin"
    for ext in validate_assignment assignment_list course_list; do
        "$userbin/jupyter" server extension enable --sys-prefix "nbgrader.server_extensions.$ext" >/dev/null 2>&1
    done
    "$userbin/jupyter" server extension disable --sys-prefix nbgrader.server_extensions.formgrader >/dev/null 2>&1
    "$userbin/jupyter" labextension disable --level=sys_prefix @jupyter/nbgrader:formgrader >/dev/null 2>&1
    "$userbin/jupyter" labextension disable --level=sys_prefix @jupyter/nbgrader:create-assignment >/dev/null 2>&1
    mkdir -p "$PREFIX/user/share/jupyter/lab/settings"
    echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
        > "$PREFIX/user/share/jupyter/lab/settings/overrides.json"
    chmod -R a+rX "$PREFIX/hub" "$PREFIX/user"
    mark envs "$envs_want"
fi

# Every user's nbgrader: the class's exchange and course id.  The hub passes
# MLM_EXCHANGE (folder or service) to each server, with MLM_EXCHANGE_ROOT for
# the folder or MLM_NGSHARE_URL for the service; the course's own
# nbgrader_config.py (in the instructor's course folder) reads the same variables.
cat > "$PREFIX/user/etc/jupyter/nbgrader_config.py" <<'PY'
"""nbgrader settings for every user of the class hub (written by hub/setup.sh)."""
import os

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "multilevel"
c.Exchange.path_includes_course = True
if os.environ.get("MLM_EXCHANGE", "folder") == "service":
    # ngshare: every exchange step is a call to the hub's ngshare service, made
    # with this server's own hub token (JUPYTERHUB_API_TOKEN): the service
    # knows who calls from the token, not from anything the caller says.
    import ngshare_exchange
    ngshare_exchange.configureExchange(c)
    # The hub's address for it; without one (Zero to JupyterHub) the plug-in
    # finds ngshare behind the cluster's proxy-public service by itself.
    if os.environ.get("MLM_NGSHARE_URL"):
        c.Exchange._ngshare_url = os.environ["MLM_NGSHARE_URL"]
else:
    c.Exchange.root = os.environ.get("MLM_EXCHANGE_ROOT", "/srv/nbgrader/exchange")
# Validate names the failing question and its message (mlmhelpers.validation)
from mlmhelpers.validation import summarise_failure
c.Execute.on_cell_error = summarise_failure
PY

# 3. The instructors' extra configuration (the hub adds it to their
#    JUPYTER_CONFIG_PATH): formgrader and "create assignment" back on.
conf="$PREFIX/instructor-config"
rm -rf "$conf"
mkdir -p "$conf/jupyter_server_config.d" "$conf/labconfig"
# coursetools.grading.web guards Formgrader: student HTML sanitised as it is shown and a
# Content-Security-Policy that runs no script a submission brought (the instructors'
# servers import it from ~/multilevel/tools, on their PYTHONPATH).
cat > "$conf/jupyter_server_config.d/nbgrader-formgrader.json" <<'JSON'
{"ServerApp": {"jpserver_extensions": {"nbgrader.server_extensions.formgrader": true,
                                       "coursetools.grading.web": true}}}
JSON
# JupyterLab shows the formgrader in a frame of the instructor's own server;
# JupyterHub's default for single-user servers forbids every frame.
cat > "$conf/jupyter_server_config.json" <<'JSON'
{"ServerApp": {"tornado_settings": {"headers": {"Content-Security-Policy": "frame-ancestors 'self'"}}}}
JSON
# The hub starts servers in the home folder; the formgrader reads the course's
# own configuration from ~/multilevel (hub/classhub.py copies the course there).
cat > "$conf/nbgrader_config.py" <<'PY'
"""nbgrader settings of the instructors group (written by hub/setup.sh)."""
import os

c = get_config()  # noqa: F821
_course = os.path.join(os.path.expanduser("~"), "multilevel")
if os.path.exists(os.path.join(_course, "nbgrader_config.py")):
    load_subconfig(os.path.join(_course, "nbgrader_config.py"))  # noqa: F821
c.CourseDirectory.root = _course
PY
cat > "$conf/labconfig/page_config.json" <<'JSON'
{"disabledExtensions": {"@jupyter/nbgrader:formgrader": false,
                        "@jupyter/nbgrader:create-assignment": false}}
JSON

if ! installed proxy "$proxy_want"; then
    prerequisites
    # 4. The proxy, exactly as locked in hub/package-lock.json.
    rm -rf "$PREFIX/proxy"
    mkdir -p "$PREFIX/proxy"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$PREFIX/proxy/"
    (cd "$PREFIX/proxy" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    chmod -R a+rX "$PREFIX/proxy"
    mark proxy "$proxy_want"
fi

chmod -R a+rX "$PREFIX/instructor-config" "$PREFIX/user/etc/jupyter"
