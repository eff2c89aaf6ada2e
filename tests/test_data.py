"""The course data sets: shapes, dtypes, reference levels, and loading from anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import mlmhelpers
from mlmhelpers import load_dataset

REPO = Path(__file__).resolve().parents[1]

# Sizes as documented by mlmRev (and the issue).
EXPECTED = {
    "tutorial": (4059, "school", 65),
    "chem97": (31022, "school", 2410),
    "contraception": (1934, "district", 60),
    "guimmun": (2159, "comm", 161),
    "scotssec": (3435, "primary", 148),
    "mmmec": (354, "region", 78),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sizes_and_groups(name):
    rows, group, ngroups = EXPECTED[name]
    frame = load_dataset(name)
    assert len(frame) == rows
    assert frame[group].nunique() == ngroups
    assert not frame.isna().any().any()


def test_tutorial_names_and_levels():
    tut = load_dataset("tutorial")
    assert list(tut.columns) == [
        "school", "student", "normexam", "standlrt", "sex", "schgend",
        "avslrt", "vrband", "intake", "type",
    ]
    assert list(tut["sex"].cat.categories) == ["boy", "girl"]
    assert list(tut["schgend"].cat.categories) == ["mixedsch", "boysch", "girlsch"]
    # avslrt is the school mean of standlrt (to the precision mlmRev stores).
    means = tut.groupby("school")["standlrt"].transform("mean")
    assert (means - tut["avslrt"]).abs().max() < 1e-5
    assert tut["sex"].value_counts()["girl"] == 2436


def test_scotssec_is_cross_classified():
    scots = load_dataset("scotssec")
    assert list(scots.columns) == ["primary", "second", "attain", "verbal", "sex", "social"]
    assert list(scots["sex"].cat.categories) == ["M", "F"]
    assert scots["second"].nunique() == 19
    # not nested: many primary schools send pupils to several secondary schools
    assert (scots.groupby("primary")["second"].nunique() > 1).sum() > 50


def test_chem97_contraception_guimmun_levels():
    assert list(load_dataset("chem97")["gender"].cat.categories) == ["M", "F"]
    con = load_dataset("contraception")
    assert set(con["use"].unique()) == {0, 1}
    assert list(con["urban"].cat.categories) == ["N", "Y"]
    assert list(con["livch"].cat.categories) == ["0", "1", "2", "3+"]
    gu = load_dataset("guimmun")
    assert set(gu["immun"].unique()) == {0, 1}
    assert list(gu["ethn"].cat.categories) == ["L", "N", "S"]
    chem = load_dataset("chem97")
    # every school sits in exactly one LEA (a strict hierarchy)
    assert chem.groupby("school")["lea"].nunique().max() == 1
    assert chem["lea"].nunique() == 131


def test_name_is_case_insensitive():
    assert load_dataset("Tutorial").shape == (4059, 10)


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError) as info:
        load_dataset("exam")
    message = str(info.value)
    for known in ["chem97", "contraception", "guimmun", "tutorial"]:
        assert known in message


def test_non_string_name_is_refused():
    with pytest.raises(TypeError, match="Known data sets"):
        load_dataset(3)


def test_loads_from_an_autograde_folder(tmp_path):
    """nbgrader runs notebooks in autograded/<student>/<assignment>/."""
    folder = tmp_path / "autograded" / "student1" / "practical1"
    folder.mkdir(parents=True)
    code = "import mlmhelpers; print(len(mlmhelpers.load_dataset('chem97')))"
    env = {k: v for k, v in os.environ.items() if k != "MLM_DATA_DIR"}
    out = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "31022"


def test_non_editable_install_carries_the_data(tmp_path):
    """A wheel installed elsewhere finds its bundled copy of the data."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--target", str(target), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    assert (target / "mlmhelpers" / "_data" / "guimmun.csv").is_file()
    code = ("import mlmhelpers, sys; assert 'site' in mlmhelpers.__file__, mlmhelpers.__file__; "
            "print(mlmhelpers.data_dir().parent.name, len(mlmhelpers.load_dataset('guimmun')))")
    env = {k: v for k, v in os.environ.items() if k != "MLM_DATA_DIR"}
    env["PYTHONPATH"] = str(target)
    out = subprocess.run([sys.executable, "-I", "-c", code.replace("import mlmhelpers,", f"import sys; sys.path.insert(0, {str(target)!r}); import mlmhelpers,")],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["mlmhelpers", "2159"]


def test_docstring_examples_run():
    import doctest

    import mlmhelpers.data as data_module

    failures, tried = doctest.testmod(data_module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0


def test_mmmec_is_counts_with_an_exposure():
    mm = load_dataset("mmmec")
    assert list(mm.columns) == ["nation", "region", "county", "deaths", "expected", "uvb"]
    assert list(mm["nation"].cat.categories)[:2] == ["Belgium", "W.Germany"]
    assert mm["deaths"].dtype.kind == "i" and mm["deaths"].sum() == 9851
    assert mm["county"].nunique() == 354 and (mm["expected"] > 0).all()
    # regions are nested in nations
    assert (mm.groupby("region")["nation"].nunique() == 1).all()
