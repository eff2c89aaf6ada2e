"""Unit diagrams of lecture 2: the right boxes, links and labels are drawn."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from mlmhelpers.diagrams import plot_classification, plot_hierarchy
from mlmhelpers.style import HIGHLIGHT


def _boxes(ax):
    return [t.get_text() for t in ax.texts if t.get_bbox_patch() is not None and t.get_color() != HIGHLIGHT]


def _links(ax):
    return ax.get_lines()


def test_two_level_hierarchy_draws_every_unit_and_one_link_per_child():
    fig, ax = plt.subplots()
    out = plot_hierarchy([("School", 3), ("Pupil", 4)], ax=ax, title="Pupils in schools")
    assert out is ax
    boxes = _boxes(ax)
    assert sum(b.startswith("S") for b in boxes) == 3
    assert sum(b.startswith("P") for b in boxes) == 12
    assert len(_links(ax)) == 12
    assert ax.get_title() == "Pupils in schools"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Pupil", "School"]
    plt.close(fig)


def test_each_child_hangs_under_its_own_parent():
    fig, ax = plt.subplots()
    plot_hierarchy([("Authority", 2), ("School", 2), ("Pupil", 2)], ax=ax)
    # 4 schools + 8 pupils = 12 links; a link goes from a parent's x down to a child's x
    links = _links(ax)
    assert len(links) == 12
    positions = {t.get_text(): t.get_position() for t in ax.texts}
    for line in links:
        (x_parent, x_child), (y_top, y_bottom) = line.get_xdata(), line.get_ydata()
        assert y_top > y_bottom
        assert abs(x_parent - x_child) < 2.5  # never links across the tree
    # the first school sits midway between its two pupils
    assert positions["S1"][0] == pytest.approx((positions["P1"][0] + positions["P2"][0]) / 2)
    plt.close(fig)


def test_cross_classification_has_both_classifications():
    fig, ax = plt.subplots()
    plot_classification(("Pupil", 6), ("School", 2), [0, 0, 0, 1, 1, 1],
                        bottom=("Neighbourhood", 3), bottom_links=[0, 1, 2, 0, 1, 2], ax=ax)
    boxes = _boxes(ax)
    assert sum(b.startswith("N") for b in boxes) == 3
    assert sum(b.startswith("S") for b in boxes) == 2
    assert len(_links(ax)) == 12
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Neighbourhood", "Pupil", "School"]
    plt.close(fig)


def test_multiple_membership_draws_one_link_and_weight_per_membership():
    fig, ax = plt.subplots()
    plot_classification(("Pupil", 3), ("School", 2), [0, [0, 1], 1],
                        weights=[[1], [0.4, 0.6], [1]], ax=ax)
    assert len(_links(ax)) == 4
    # the weights are the texts in the highlight colour (the unit boxes are black on a light fill)
    weights = [t.get_text() for t in ax.texts if t.get_color() == HIGHLIGHT]
    assert sorted(weights) == ["0.4", "0.6", "1", "1"]
    plt.close(fig)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: plot_hierarchy("School"), TypeError, "pairs"),
        (lambda: plot_hierarchy([("School", 0)]), ValueError, ">= 1"),
        (lambda: plot_hierarchy([("A", 10), ("B", 10)]), ValueError, "too many"),
        (lambda: plot_classification(("Pupil", 2), ("School", 2), [0]), ValueError, "one entry per unit"),
        (lambda: plot_classification(("Pupil", 2), ("School", 2), [0, 2]), ValueError, "0..1"),
        (lambda: plot_classification(("Pupil", 2), ("School", 2), [0, 1], bottom=("Area", 2)),
         ValueError, "bottom_links"),
    ],
)
def test_bad_input_says_what_to_do(call, error, words):
    with pytest.raises(error, match=words):
        call()
    plt.close("all")


def test_ax_must_be_an_axes():
    with pytest.raises(TypeError, match=r"ax must be a matplotlib Axes"):
        plot_hierarchy([("School", 2), ("Pupil", 3)], ax="left")
    with pytest.raises(TypeError, match=r"ax must be a matplotlib Axes"):
        plot_classification(("Pupil", 2), ("School", 2), [0, 1], ax=1)
    _, ax = plt.subplots()
    assert plot_hierarchy([("School", 2), ("Pupil", 3)], ax=ax) is ax
    plt.close("all")


def test_docstring_examples_run():
    import doctest

    import mlmhelpers.diagrams as diagrams_module

    failures, tried = doctest.testmod(diagrams_module, optionflags=doctest.ELLIPSIS)
    plt.close("all")
    assert tried > 0 and failures == 0
