"""The course figure style: every helper plot uses the Okabe-Ito palette and readable text."""

from __future__ import annotations

import doctest

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

import mlmhelpers as mlm  # noqa: E402
from mlmhelpers import style  # noqa: E402
from mlmhelpers.widgets import _render_png  # noqa: E402

OKABE_ITO = {"#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"}
SMALLEST_POINTS = 9.0


@pytest.fixture(scope="module")
def fits():
    exam = mlm.load_dataset("tutorial")
    linear = mlm.fit_mixedlm("normexam ~ standlrt", exam, groups="school", re_formula="1 + standlrt")
    contra = mlm.load_dataset("contraception")
    logit = mlm.fit_logit_mixed("use ~ urban + age", contra, groups="district")
    return linear, logit


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _drawings(fits):
    linear, logit = fits
    yield "plot_caterpillar", [mlm.plot_caterpillar(linear)]
    yield "plot_group_lines", [mlm.plot_group_lines(linear, "standlrt")]
    yield "plot_residuals", list(mlm.plot_residuals(linear))
    yield "plot_coefficients", [mlm.plot_coefficients(logit, odds=True)]
    yield "plot_hierarchy", [mlm.plot_hierarchy([("School", 2), ("Pupil", 3)], title="Two levels")]
    yield "plot_classification", [mlm.plot_classification(
        ("Pupil", 4), ("School", 2), [[0], [0, 1], [1], [1]], weights=[[1], [0.5, 0.5], [1], [1]])]
    yield "plot_groups", [mlm.plot_groups(mlm.simulate_groups(0.3, 0.7, n_groups=4, group_size=5))]


def _colours(ax):
    """Every colour the Axes draws data with (lines, markers, collections, bars, text boxes)."""
    found = []
    for line in ax.get_lines():
        found += [line.get_color(), line.get_markerfacecolor()]
    for coll in ax.collections:
        found += list(coll.get_facecolor()) + list(coll.get_edgecolor())
    found += [p.get_facecolor() for p in ax.patches]
    for text in ax.texts:
        found.append(text.get_color())
        if text.get_bbox_patch() is not None:
            found.append(text.get_bbox_patch().get_facecolor())
    return [c for c in found if not (isinstance(c, str) and c == "none") and len(np.atleast_1d(c))]


def _is_grey(rgb):
    return max(rgb) - min(rgb) < 1e-6


def _texts(ax):
    ax.figure.canvas.draw()
    texts = [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts,
             *ax.get_xticklabels(), *ax.get_yticklabels()]
    legend = ax.get_legend()
    if legend is not None:
        texts += [*legend.get_texts(), legend.get_title()]
    return [t for t in texts if t.get_text()]


def test_every_helper_plot_uses_the_palette_and_readable_text(fits):
    drawn = []
    for name, axes in _drawings(fits):
        drawn.append(name)
        colours = [to_rgb(c) for ax in axes for c in _colours(ax)]
        palette = {to_rgb(c) for c in style.PALETTE}
        stray = {c for c in colours if c not in palette and not _is_grey(c)}
        assert not stray, f"{name} draws colours outside the course palette: {stray}"
        assert any(c in palette and not _is_grey(c) for c in colours), f"{name} shows no palette colour"
        small = [(t.get_text(), t.get_fontsize()) for ax in axes for t in _texts(ax)
                 if t.get_fontsize() < SMALLEST_POINTS]
        assert not small, f"{name} has text below {SMALLEST_POINTS} pt: {small}"
        figure = axes[0].figure
        assert figure.dpi >= 96, f"{name} draws a new figure at {figure.dpi} dpi"
    assert len(drawn) == 7


def test_links_and_group_lines_are_solid_in_the_course_style(fits):
    # the style cycles line styles for a user's series; a helper's lines of one kind stay alike
    links = mlm.plot_hierarchy([("School", 3), ("Pupil", 4)]).get_lines()
    lines = mlm.plot_group_lines(fits[0], "standlrt").get_lines()
    assert len(links) == 12 and len(lines) == 65
    assert {ln.get_linestyle() for ln in links + lines} == {"-"}


def test_text_stays_readable_on_the_callers_axes():
    # the caller's Axes and a too-small fontsize argument: raised to the minimum, not shrunk
    fig, ax = plt.subplots(dpi=72)
    mlm.plot_hierarchy([("School", 2), ("Pupil", 2)], ax=ax, fontsize=6)
    sizes = [t.get_fontsize() for t in _texts(ax)]
    assert min(sizes) == style.MIN_FONT_SIZE


def test_explorer_image_is_drawn_at_the_course_dpi():
    import io

    from PIL import Image

    png = _render_png(mlm.simulate_groups(0.2, 0.8, n_groups=4, group_size=5), (-3, 3))
    image = Image.open(io.BytesIO(png))
    assert image.size[0] >= 8 * 96, f"explorer image {image.size} is drawn below the course dpi"


def test_palette_is_okabe_ito_and_exported():
    assert set(mlm.PALETTE) == OKABE_ITO and len(mlm.PALETTE) == 8
    assert len(style.MARKERS) == len(set(style.MARKERS)) == len(style.LINESTYLES) == len(mlm.PALETTE)
    with style.course_style():
        fig, ax = plt.subplots()
        lines = [ax.plot([0, 1], [k, k + 1])[0] for k in range(3)]
    assert [line.get_color() for line in lines] == list(mlm.PALETTE[:3])
    assert len({line.get_linestyle() for line in lines}) == 3, "each series has its own line style"
    assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0] != style.PALETTE[0], "style not undone"


def test_style_docstring_examples_run():
    failures, tried = doctest.testmod(style, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
