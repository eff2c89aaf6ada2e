"""`make test` installs the Debian packages the tests need, or says exactly what to install."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "install-system-packages.sh"


def _listed() -> list[str]:
    lines = (REPO / "tools" / "system-packages.txt").read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def test_list_names_what_the_tests_need():
    assert {"chromium", "bubblewrap"} <= set(_listed())


def test_make_test_installs_them_first():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}  # also under `make test`
    dry = subprocess.run(["make", "--no-print-directory", "-n", "test"], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert dry[0] == "tools/install-system-packages.sh", dry[:3]
    assert os.access(SCRIPT, os.X_OK)
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci and "apt-get" not in ci, "CI runs exactly the README's command"


def test_everything_listed_is_installed_here():
    """On this machine `make test` has run the script: it now finds nothing to do."""
    done = subprocess.run([str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_user_who_may_not_install_gets_the_command_and_a_failure():
    """Without root or password-less sudo it installs nothing, names the command, exits 1."""
    # Not pytest's tmp_path: its parent is private to root, and the script runs as nobody.
    with tempfile.TemporaryDirectory(prefix="mlm-syspkg-") as tmp:
        tmp_path = Path(tmp)
        tmp_path.chmod(0o755)
        _run_as_plain_user(tmp_path)


def _run_as_plain_user(tmp_path: Path):
    folder = tmp_path / "tools"
    folder.mkdir()
    shutil.copy2(SCRIPT, folder / SCRIPT.name)
    (folder / "system-packages.txt").write_text("# test\nchromium\nmlm-course-no-such-package\n")
    # A PATH without sudo, so that a password-less sudo on this machine is not used.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "dpkg-query", "sed", "grep", "id", "dirname", "apt-get"):
        found = shutil.which(tool)
        assert found, f"{tool} is missing"
        (bindir / tool).symlink_to(found)
    cmd = [str(folder / SCRIPT.name)]
    if os.geteuid() == 0:  # as root the script would install: run it as nobody
        cmd = [shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": str(bindir), "LANG": "C"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "sudo apt-get install -y mlm-course-no-such-package" in proc.stderr, proc.stderr
    assert "chromium" not in proc.stderr.split("install -y")[-1], "only the missing packages"
