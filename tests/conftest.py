"""Shared pytest set-up for the course's test suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_addoption(parser):
    parser.addoption(
        "--skip-browser",
        action="store_true",
        default=False,
        help="skip the end-to-end browser test (never in CI)",
    )


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--skip-browser"):
        return
    skip = pytest.mark.skip(reason="--skip-browser given")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lme4_reference():
    """lme4/glmer reference values kept in tests/fixtures (see the file's _source)."""
    with open(FIXTURES / "lme4_reference.json") as fh:
        return json.load(fh)
