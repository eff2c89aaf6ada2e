"""Plots: they draw what they claim (points, lines, labels) and refuse bad input."""

from __future__ import annotations

import doctest

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402

from mlmhelpers import (  # noqa: E402
    fit_mixedlm,
    group_effects,
    load_dataset,
    plot_caterpillar,
    plot_group_lines,
    plot_residuals,
)
from mlmhelpers import plots as plots_module  # noqa: E402


@pytest.fixture(scope="module")
def exam():
    return load_dataset("tutorial")


@pytest.fixture(scope="module")
def m1(exam):
    return fit_mixedlm("normexam ~ 1", exam, groups="school")


@pytest.fixture(scope="module")
def m4(exam):
    return fit_mixedlm("normexam ~ standlrt + schgend", exam, groups="school",
                       re_formula="1 + standlrt")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _labelled(ax):
    return ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_caterpillar_draws_ranked_effects_with_intervals(m1):
    fig, ax = plt.subplots()
    out = plot_caterpillar(m1, ax=ax)
    assert out is ax
    assert _labelled(ax)
    ge = group_effects(m1)
    points = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert len(points) == 1
    y = points[0].get_ydata()
    assert len(y) == 65
    assert np.all(np.diff(y) >= 0)  # ranked
    assert y == pytest.approx(np.sort(ge["effect"].to_numpy()))
    zero = [ln for ln in ax.get_lines() if list(ln.get_ydata()) == [0, 0]]
    assert zero, "zero line missing"


def test_caterpillar_term_choice_and_error(m4):
    ax = plot_caterpillar(m4, term="standlrt")
    assert "standlrt" in ax.get_title()
    with pytest.raises(ValueError, match=r"term='age' is not a random term.*'standlrt'"):
        plot_caterpillar(m4, term="age")


def test_caterpillar_bad_ax(m1):
    with pytest.raises(TypeError, match=r"ax must be a matplotlib Axes"):
        plot_caterpillar(m1, ax="left")


def test_group_lines_one_line_per_school_over_its_range(m4, exam):
    ax = plot_group_lines(m4, "standlrt")
    assert _labelled(ax)
    assert ax.get_xlabel() == "standlrt"
    lines = ax.get_lines()
    assert len(lines) == 65
    # school 1 is the first group: its line spans its own observed standlrt range
    school1 = exam[exam["school"] == 1]
    x = lines[0].get_xdata()
    assert x.min() == pytest.approx(school1["standlrt"].min())
    assert x.max() == pytest.approx(school1["standlrt"].max())
    # and lies on the model's fitted values (fixed + random part) for that school
    fitted = np.asarray(m4.fittedvalues)[np.asarray(exam["school"] == 1)]
    i_lo = school1["standlrt"].to_numpy().argmin()
    assert lines[0].get_ydata()[0] == pytest.approx(fitted[i_lo], rel=1e-8)


def test_group_lines_subset_and_errors(m4):
    ax = plot_group_lines(m4, "standlrt", max_groups=10)
    assert len(ax.get_lines()) == 10
    assert "10 of 65" in ax.get_title()
    with pytest.raises(ValueError, match=r"x='lrt' is not a variable of this model.*'standlrt'"):
        plot_group_lines(m4, "lrt")
    with pytest.raises(ValueError, match=r"x='schgend' must be numeric"):
        plot_group_lines(m4, "schgend")


def test_group_lines_with_a_numeric_school_level_covariate(exam):
    # avslrt is constant within a school: the line uses the school's own value
    # (it used to crash in patsy because those values were gathered as objects)
    m = fit_mixedlm("normexam ~ standlrt + I(avslrt ** 2)", exam, groups="school",
                    re_formula="1 + standlrt")
    lines = plot_group_lines(m, "standlrt").get_lines()
    assert len(lines) == 65
    school1 = exam[exam["school"] == 1]
    fitted = np.asarray(m.fittedvalues)[np.asarray(exam["school"] == 1)]
    i_hi = school1["standlrt"].to_numpy().argmax()
    assert lines[0].get_ydata()[-1] == pytest.approx(fitted[i_hi], rel=1e-8)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "5", True])
def test_group_lines_max_groups_must_be_a_positive_whole_number(m4, bad):
    with pytest.raises(ValueError, match=r"max_groups must be a whole number of at least 1"):
        plot_group_lines(m4, "standlrt", max_groups=bad)


def test_group_lines_refuses_response_and_groups_as_x(m1, m4):
    # they are columns of the data, but a line over either is meaningless
    # (the prediction does not depend on them): refuse, naming the choices
    with pytest.raises(ValueError, match=r"x='normexam' is the response.*'standlrt'"):
        plot_group_lines(m4, "normexam")
    with pytest.raises(ValueError, match=r"x='school' is the grouping column.*'standlrt'"):
        plot_group_lines(m4, "school")
    with pytest.raises(ValueError, match=r"no numeric explanatory variable"):
        plot_group_lines(m1, "normexam")


def test_residuals_figure(m4):
    fig = plot_residuals(m4)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert _labelled(ax)
    qq = fig.axes[0]
    # one QQ series per random term, 65 schools each
    series = [ln for ln in qq.get_lines() if ln.get_marker() == "o"]
    assert [len(s.get_xdata()) for s in series] == [65, 65]
    scatter = fig.axes[2].collections[0]
    assert scatter.get_offsets().shape == (4059, 2)


def test_plots_refuse_single_level_models(exam):
    ols = smf.ols("normexam ~ standlrt", data=exam).fit()
    with pytest.raises(TypeError, match=r"plot_residuals\(\) draws linear multilevel models"):
        plot_residuals(ols)
    with pytest.raises(TypeError, match=r"plot_group_lines\(\) draws linear multilevel models"):
        plot_group_lines(ols, "standlrt")
    with pytest.raises(TypeError, match=r"group_effects\(\) needs a multilevel model"):
        plot_caterpillar(ols)


def test_docstring_examples_run():
    failures, tried = doctest.testmod(plots_module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
