"""The lecture 3 variance explorer: simulation, VPC and the widget wiring."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from mlmhelpers.widgets import plot_groups, population_vpc, simulate_groups, variance_explorer


def test_population_vpc_of_the_tutorial_empty_model(lme4_reference):
    # The VPC of lme4's empty model on the Exam data is 0.166 in the original slides.
    school, residual = (row["vcov"] for row in lme4_reference["exam_m1"]["varcorr"])
    assert population_vpc(school, residual) == pytest.approx(school / (school + residual))
    assert round(population_vpc(school, residual), 3) == 0.166


@pytest.mark.parametrize(
    "between, within, expected", [(0.0, 1.0, 0.0), (1.0, 0.0, 1.0), (1.0, 3.0, 0.25)]
)
def test_population_vpc_limits(between, within, expected):
    assert population_vpc(between, within) == pytest.approx(expected)


def test_population_vpc_rejects_bad_variances():
    with pytest.raises(ValueError, match="undefined"):
        population_vpc(0, 0)
    with pytest.raises(ValueError, match=">= 0"):
        population_vpc(-0.1, 1)
    with pytest.raises(TypeError, match="number"):
        population_vpc("a lot", 1)


def test_simulate_groups_shape_and_labels():
    df = simulate_groups(0.3, 0.7, n_groups=6, group_size=4, seed=2)
    assert list(df.columns) == ["group", "unit", "group_effect", "y"]
    assert len(df) == 24
    assert df.groupby("group").size().tolist() == [4] * 6
    # every unit in a group shares that group's effect
    assert (df.groupby("group")["group_effect"].nunique() == 1).all()
    assert df.attrs["vpc"] == pytest.approx(0.3)


def test_simulate_groups_is_reproducible_and_scales_the_same_draws():
    a = simulate_groups(0.2, 0.8, n_groups=8, group_size=5, seed=11)
    b = simulate_groups(0.2, 0.8, n_groups=8, group_size=5, seed=11)
    assert a.equals(b)
    # Quadrupling the between variance doubles every group effect (same draws).
    c = simulate_groups(0.8, 0.8, n_groups=8, group_size=5, seed=11)
    np.testing.assert_allclose(c["group_effect"], 2 * a["group_effect"])
    assert not simulate_groups(0.2, 0.8, n_groups=8, group_size=5, seed=12).equals(a)


def test_simulated_variances_match_the_sliders_in_a_large_sample():
    # With many groups the sample variance of the group effects and of the
    # within-group deviations is close to what was asked for.
    df = simulate_groups(0.4, 1.2, n_groups=2000, group_size=30, seed=5)
    effects = df.groupby("group")["group_effect"].first()
    within = df["y"] - df["group_effect"]
    assert effects.var() == pytest.approx(0.4, rel=0.08)
    assert within.var() == pytest.approx(1.2, rel=0.03)


def test_no_between_variance_means_identical_group_effects():
    df = simulate_groups(0.0, 1.0, n_groups=5, group_size=3)
    assert (df["group_effect"] == 0).all()


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"n_groups": 0}, ValueError, "n_groups"),
        ({"group_size": 2.5}, TypeError, "group_size"),
        ({"between_var": -1}, ValueError, "between_var"),
    ],
)
def test_simulate_groups_rejects_bad_input(kwargs, error, words):
    with pytest.raises(error, match=words):
        simulate_groups(**kwargs)


def test_plot_groups_labels_and_returns_axes():
    df = simulate_groups(0.17, 0.85, n_groups=4, group_size=5)
    ax = plot_groups(df)
    assert ax.get_xlabel() == "school"
    assert ax.get_ylabel() == "score"
    assert "VPC = 0.167" in ax.get_title()
    assert len(ax.get_xticks()) == 4
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["one pupil's score", "school mean", "overall mean"]
    with pytest.raises(ValueError, match="simulate_groups"):
        plot_groups(df.drop(columns="y"))


def test_explorer_sliders_update_text_and_picture():
    box = variance_explorer(n_groups=5, group_size=8, seed=3)
    assert box.between.description == "between-school variance"
    assert box.within.description == "within-school variance"
    assert box.vpc_text.value.startswith("<b>VPC = 0.200")
    first_picture = box.image.value
    assert first_picture[:4] == b"\x89PNG"

    box.between.value = 0.8
    assert box.vpc_text.value.startswith("<b>VPC = 0.500")
    assert box.image.value != first_picture

    box.within.value = 0.0
    assert box.vpc_text.value.startswith("<b>VPC = 1.000")

    box.between.value = 0.0
    assert "undefined" in box.vpc_text.value


def test_each_variance_has_a_labelled_number_box_tied_to_its_slider():
    # ipywidgets draws a slider handle as a <div role="slider"> that no <label> names; a
    # BoundedFloatText is an <input type="number"> whose <label for> is its description.
    import ipywidgets

    box = variance_explorer(n_groups=4, group_size=5)
    for slider, number, name in [(box.between, box.between_box, "between-school variance"),
                                 (box.within, box.within_box, "within-school variance")]:
        assert isinstance(number, ipywidgets.BoundedFloatText)
        assert number.description == slider.description == name
        assert (number.min, number.max, number.step) == (slider.min, slider.max, slider.step)
        # the slider's own readout is off: the box is the one place the value is written
        assert slider.readout is False
        number.value = 1.3
        assert slider.value == 1.3
        slider.value = 0.4
        assert number.value == 0.4


def _used(box):
    """The two variances the VPC text says the simulation used."""
    import re

    match = re.search(r"= ([0-9.]+) / \(([0-9.]+) \+ ([0-9.]+)\)", box.vpc_text.value)
    assert match, box.vpc_text.value
    return float(match.group(2)), float(match.group(3))


def test_every_slider_position_shows_the_value_the_simulation_uses():
    # The slider's spoken value (noUiSlider writes aria-valuenow with one decimal, which
    # turned 0.17 into "0.2"), the number box and the VPC text agree at every position.
    box = variance_explorer(n_groups=4, group_size=5)
    positions = np.round(np.arange(box.between.min, box.between.max + box.between.step / 2,
                                   box.between.step), 10)
    assert len(positions) == 21
    for value in positions[1:]:
        box.between.value = float(value)
        spoken = float(f"{box.between.value:.1f}")
        assert box.between.value == box.between_box.value == spoken == _used(box)[0] == value


@pytest.mark.parametrize("typed, used", [(0.17, 0.2), (0.849, 0.8), (1.36, 1.4), (0.06, 0.1)])
def test_a_typed_value_moves_to_the_step_everywhere(typed, used):
    box = variance_explorer(n_groups=4, group_size=5)
    box.within_box.value = typed
    assert box.within_box.value == box.within.value == used
    assert _used(box) == (0.2, used)


def test_explorer_output_carries_a_still_picture_with_a_description():
    import base64

    box = variance_explorer(n_groups=6, group_size=10, between_var=0.5, within_var=1.5)
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"
    text = bundle["text/plain"]
    assert "6 simulated schools of 10 pupils" in text
    assert "between-school variance 0.5 and within-school variance 1.5" in text
    assert "VPC = 0.250" in text
    box.between.value = 1.5
    assert "VPC = 0.500" in box._repr_mimebundle_()["text/plain"]


def test_explorer_rejects_start_values_beyond_the_slider():
    with pytest.raises(ValueError, match="max_var"):
        variance_explorer(between_var=3.0, max_var=2.0)


def test_simulate_groups_and_plot_groups_check_their_arguments():
    with pytest.raises(TypeError, match=r"mean must be a finite number"):
        simulate_groups(mean="high")
    with pytest.raises(TypeError, match=r"mean must be a finite number"):
        simulate_groups(mean=float("nan"))
    with pytest.raises(TypeError, match=r"seed must be a whole number"):
        simulate_groups(seed="a")
    assert simulate_groups(mean=2, n_groups=3, group_size=2, seed=None).shape == (6, 4)
    with pytest.raises(TypeError, match=r"ax must be a matplotlib Axes"):
        plot_groups(simulate_groups(), ax=3)


def test_docstring_examples_run():
    import doctest

    import mlmhelpers.widgets as widgets_module

    failures, tried = doctest.testmod(widgets_module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
