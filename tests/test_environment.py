"""requirements.txt and environment.yml pin the same versions."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*-?\s*([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s#]+)")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_requirements_pins_exactly():
    lines = [l.strip() for l in (REPO / "requirements.txt").read_text().splitlines()]
    entries = [l for l in lines if l and not l.startswith("#")]
    assert entries, "requirements.txt is empty"
    loose = [l for l in entries if "==" not in l]
    assert not loose, f"every requirement must be pinned with ==: {loose}"


def test_environment_yml_matches_requirements():
    req = _pins(REPO / "requirements.txt")
    env = _pins(REPO / "environment.yml")
    assert env == req, (
        "environment.yml and requirements.txt pin different versions: "
        f"only in requirements {sorted(set(req.items()) - set(env.items()))}, "
        f"only in environment.yml {sorted(set(env.items()) - set(req.items()))}"
    )
    assert "python=3.11" in (REPO / "environment.yml").read_text()


def test_installed_versions_match_pins():
    from importlib.metadata import version

    for name, pinned in _pins(REPO / "requirements.txt").items():
        assert version(name) == pinned, f"{name}: installed {version(name)}, pinned {pinned}"
