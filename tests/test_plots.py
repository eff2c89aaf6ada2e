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


def test_residuals_panels(m4):
    axes = plot_residuals(m4)
    assert len(axes) == 3
    assert all(isinstance(ax, matplotlib.axes.Axes) for ax in axes)
    assert len(axes[0].figure.axes) == 3
    for ax in axes:
        assert _labelled(ax)
    qq = axes[0]
    # one QQ series per random term, 65 schools each, each with its own marker
    series = [ln for ln in qq.get_lines() if ln.get_marker() not in (None, "None", "")]
    assert len({ln.get_marker() for ln in series}) == len(series)
    assert [len(s.get_xdata()) for s in series] == [65, 65]
    scatter = axes[2].collections[0]
    assert scatter.get_offsets().shape == (4059, 2)
    # the level-1 residuals are observed minus fitted (group effects included)
    np.testing.assert_allclose(scatter.get_offsets()[:, 1], m4.resid.to_numpy(), rtol=1e-12)


def test_residuals_draw_on_given_axes(m4):
    fig, given = plt.subplots(2, 2)
    out = plot_residuals(m4, ax=[given[0, 0], given[0, 1], given[1, 0]])
    assert list(out) == [given[0, 0], given[0, 1], given[1, 0]]
    assert out[1].get_title() == "Level-1 residuals"
    assert not given[1, 1].get_title()
    with pytest.raises(TypeError, match=r"three matplotlib Axes"):
        plot_residuals(m4, ax=given[0, 0])


def test_every_plot_takes_ax_by_keyword_and_returns_it(m4):
    import mlmhelpers as mlm

    calls = {
        "plot_caterpillar": lambda ax: mlm.plot_caterpillar(m4, ax=ax),
        "plot_group_lines": lambda ax: mlm.plot_group_lines(m4, "standlrt", ax=ax),
        "plot_coefficients": lambda ax: mlm.plot_coefficients(m4, ax=ax),
        "plot_groups": lambda ax: mlm.plot_groups(
            mlm.simulate_groups(0.5, 1.0, n_groups=3, group_size=4, seed=1), ax=ax),
        "plot_hierarchy": lambda ax: mlm.plot_hierarchy([("School", 2), ("Pupil", 2)], ax=ax),
    }
    for name, call in calls.items():
        _, ax = plt.subplots()
        assert call(ax) is ax, name
    # and nowhere is ax a positional argument (it used to be the second or third)
    import inspect

    for name in [n for n in mlm.__all__ if n.startswith("plot_")]:
        param = inspect.signature(getattr(mlm, name)).parameters["ax"]
        assert param.kind is inspect.Parameter.KEYWORD_ONLY, name
    with pytest.raises(TypeError):
        mlm.plot_caterpillar(m4, plt.subplots()[1])  # noqa


def test_interval_level_follows_alpha(m4):
    import mlmhelpers as mlm

    ax = plot_caterpillar(m4, alpha=0.1)
    assert "90% intervals" in ax.get_title()
    ge = group_effects(m4, alpha=0.1)
    points = [ln for ln in ax.get_lines() if ln.get_marker() == "o"][0]
    assert points.get_ydata() == pytest.approx(np.sort(ge.loc[ge["term"] == "(Intercept)",
                                                               "effect"]))
    assert "90%" in mlm.plot_coefficients(m4, alpha=0.1).get_title()
    with pytest.raises(ValueError, match=r"alpha must be between 0 and 1"):
        plot_caterpillar(m4, alpha=5)


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
