"""An interactive explorer of the variance partition coefficient (lecture 3).

The statistics live in plain functions (:func:`simulate_groups`,
:func:`population_vpc`, :func:`plot_groups`) that can be used and tested
without a browser.  :func:`variance_explorer` wires them to two ipywidgets
sliders; ipywidgets is imported only inside that function, so the rest of the
library works where widgets are not installed.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd

from . import style
from ._axes import course_plot, new_axes
from ._validate import is_number, is_whole

__all__ = ["simulate_groups", "population_vpc", "plot_groups", "variance_explorer"]


def _check_variance(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite variance >= 0, got {value}")
    return value


def _check_count(value, name, minimum):
    if not is_whole(value):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def population_vpc(between_var, within_var):
    """Variance partition coefficient of a two-level variance components model.

    ``VPC = between_var / (between_var + within_var)``: the share of the total
    variance that lies between groups (also called the intra-class correlation).

    Parameters
    ----------
    between_var : float
        Between-group (level-2) variance, sigma_u^2 >= 0.
    within_var : float
        Within-group (level-1) variance, sigma_e^2 >= 0.

    Returns
    -------
    float
        A number between 0 and 1.

    Examples
    --------
    >>> round(population_vpc(0.1686, 0.8478), 3)
    0.166
    """
    between_var = _check_variance(between_var, "between_var")
    within_var = _check_variance(within_var, "within_var")
    total = between_var + within_var
    if total == 0:
        raise ValueError(
            "between_var and within_var are both 0: the VPC is undefined; "
            "give at least one of them a positive value"
        )
    return between_var / total


def simulate_groups(between_var=0.17, within_var=0.85, n_groups=10, group_size=20, mean=0.0, seed=1):
    """Simulate a balanced two-level data set from a variance components model.

    ``y_ij = mean + u_j + e_ij`` with ``u_j ~ N(0, between_var)`` and
    ``e_ij ~ N(0, within_var)``.  The same ``seed`` always gives the same
    standard-normal draws, which are then scaled by the two standard
    deviations, so changing a variance with a fixed seed stretches the same
    picture instead of drawing a new one.

    Parameters
    ----------
    between_var : float
        Between-group variance (sigma_u^2).
    within_var : float
        Within-group variance (sigma_e^2).
    n_groups : int
        Number of groups (e.g. schools), at least 1.
    group_size : int
        Number of units (e.g. pupils) in each group, at least 1.
    mean : float
        Overall mean (beta_0).
    seed : int
        Seed of the random number generator.

    Returns
    -------
    pandas.DataFrame
        One row per unit with columns ``group`` (1..n_groups), ``unit``
        (1..group_size), ``group_effect`` (u_j), ``y``.  ``df.attrs`` holds
        the two variances and the population ``vpc``.

    Examples
    --------
    >>> df = simulate_groups(0.2, 0.8, n_groups=5, group_size=4, seed=3)
    >>> df.shape
    (20, 4)
    >>> round(df.attrs["vpc"], 2)
    0.2
    """
    between_var = _check_variance(between_var, "between_var")
    within_var = _check_variance(within_var, "within_var")
    n_groups = _check_count(n_groups, "n_groups", 1)
    group_size = _check_count(group_size, "group_size", 1)
    if not is_number(mean) or not np.isfinite(mean):
        raise TypeError(f"mean must be a finite number (the overall mean beta_0), got {mean!r}")
    if seed is not None:
        seed = _check_count(seed, "seed", 0)
    vpc = population_vpc(between_var, within_var)

    rng = np.random.default_rng(seed)
    z_group = rng.standard_normal(n_groups)
    z_unit = rng.standard_normal((n_groups, group_size))
    u = np.sqrt(between_var) * z_group
    y = mean + u[:, None] + np.sqrt(within_var) * z_unit

    df = pd.DataFrame(
        {
            "group": np.repeat(np.arange(1, n_groups + 1), group_size),
            "unit": np.tile(np.arange(1, group_size + 1), n_groups),
            "group_effect": np.repeat(u, group_size),
            "y": y.ravel(),
        }
    )
    df.attrs.update(between_var=between_var, within_var=within_var, vpc=vpc)
    return df


@course_plot
def plot_groups(data, *, ax=None, group_label="school", y_label="score", unit_label="pupil"):
    """Strip plot of simulated groups with each group's mean.

    Parameters
    ----------
    data : pandas.DataFrame
        Output of :func:`simulate_groups` (columns ``group`` and ``y``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is made if omitted.
    group_label, y_label, unit_label : str
        Words used in the axis labels, title and legend: what a group is,
        what is measured, and what a unit is.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> ax = plot_groups(simulate_groups(0.3, 0.7, n_groups=4, group_size=5))
    >>> ax.get_xlabel()
    'school'
    """
    missing = {"group", "y"} - set(getattr(data, "columns", []))
    if missing:
        raise ValueError(
            f"data needs the columns 'group' and 'y' (missing {sorted(missing)}); "
            "pass the DataFrame returned by simulate_groups()"
        )
    ax = new_axes(ax, figsize=(6, 4))

    groups = np.sort(data["group"].unique())
    position = {g: k for k, g in enumerate(groups)}
    x = data["group"].map(position).to_numpy(dtype=float)
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, size=len(x))
    ax.scatter(x + jitter, data["y"], s=10, alpha=0.55, color=style.DATA, label=f"one {unit_label}'s {y_label}")
    means = data.groupby("group")["y"].mean().reindex(groups)
    ax.hlines(means.to_numpy(), np.arange(len(groups)) - 0.3, np.arange(len(groups)) + 0.3,
              color=style.HIGHLIGHT, linewidth=2.5, label=f"{group_label} mean")
    ax.axhline(data["y"].mean(), color="black", linestyle="--", linewidth=1, label="overall mean")
    ax.set_xticks(np.arange(len(groups)))
    ax.set_xticklabels([str(g) for g in groups])
    ax.set_xlabel(group_label)
    ax.set_ylabel(y_label)
    title = f"Simulated {group_label}s"
    if "vpc" in data.attrs:
        title += f" (VPC = {data.attrs['vpc']:.3f})"
    ax.set_title(title)
    ax.legend(loc="best")
    return ax


#: Step of the explorer's controls.  One decimal, so the slider's spoken value
#: (noUiSlider rounds aria-valuenow to one decimal), its readout, the number box
#: and the value used in the simulation are always the same number.
STEP = 0.1


def _on_step(value):
    """``value`` moved to the nearest multiple of :data:`STEP` (without float noise)."""
    return round(round(float(value) / STEP) * STEP, 10)


def _vpc_text(between_var, within_var):
    vpc = population_vpc(between_var, within_var)
    return (
        f"<b>VPC = {vpc:.3f}</b> &nbsp; = {between_var:.1f} / ({between_var:.1f} + {within_var:.1f}): "
        f"{100 * vpc:.1f}% of the variance lies between schools"
    )


def _describe(between_var, within_var, n_groups, group_size):
    """The explorer's picture in words (the text a screen reader gets instead of the image)."""
    vpc = population_vpc(between_var, within_var)
    return (
        f"VPC explorer: {n_groups} simulated schools of {group_size} pupils with between-school "
        f"variance {between_var:.1f} and within-school variance {within_var:.1f}, so VPC = {vpc:.3f} "
        f"({100 * vpc:.1f}% of the variance between schools).  Strip plot: one dot per pupil's score "
        "above its school's number, a short bar at each school mean, a dashed line at the overall mean."
    )


def _render_png(data, ylim, note=None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.8 if note is None else 4.2), dpi=style.DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    plot_groups(data, ax=ax)
    ax.set_ylim(*ylim)
    # the sliders can fill the whole plot with points: keep the legend outside it
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    style.readable(ax)
    if note is not None:
        fig.suptitle(note, fontsize=style.MIN_FONT_SIZE + 1)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def variance_explorer(n_groups=10, group_size=20, seed=1, between_var=0.2, within_var=0.8, max_var=2.0):
    """Interactive explorer: a slider and a number box for each of the two variances.

    Each change re-simulates the schools with :func:`simulate_groups`
    (same seed, so the picture stretches rather than jumps), redraws the strip
    plot and updates the VPC text.  Requires ipywidgets (installed with the
    course); in a notebook, make it the last expression of a cell to show it.

    Each variance has a slider (for the mouse) and, next to it, a number box
    linked to it.  The number box is an ``<input>`` whose ``<label for>`` is
    the variance's name, so screen readers announce it (ipywidgets ties no
    label to a slider handle).  Values move in steps of :data:`STEP` (0.1); a
    typed value is rounded to that step, so the slider, the box and the VPC
    text always show the value the simulation uses.

    Before the notebook is run, the saved output shows a picture of the
    explorer (an ``image/png`` next to the widget in the output): JupyterLab
    shows it where the widget itself cannot be drawn.

    Parameters
    ----------
    n_groups, group_size, seed
        Passed to :func:`simulate_groups`.
    between_var, within_var : float
        Starting values (rounded to steps of 0.1; the defaults 0.2 and 0.8 are
        close to the tutorial data's empty model, 0.17 and 0.85).
    max_var : float
        Upper end of both sliders.

    Returns
    -------
    ipywidgets.VBox
        Its attributes ``between``, ``within`` (the sliders),
        ``between_box``, ``within_box`` (the number boxes), ``vpc_text``
        (an HTML widget) and ``image`` (the plot) can be used from code.

    Examples
    --------
    >>> box = variance_explorer(n_groups=5, group_size=10)
    >>> box.between.value = 0.5
    >>> box.vpc_text.value.startswith("<b>VPC = 0.385")
    True
    >>> box.within_box.value = 0.333      # typed: rounded to the step
    >>> box.within.value, box.within_box.value
    (0.3, 0.3)
    """
    try:
        import ipywidgets as widgets
    except ImportError as err:  # pragma: no cover - ipywidgets is pinned in requirements.txt
        raise ImportError(
            "variance_explorer needs ipywidgets: pip install ipywidgets "
            "(or use simulate_groups() and plot_groups() without widgets)"
        ) from err

    max_var = _check_variance(max_var, "max_var")
    for name, value in (("between_var", between_var), ("within_var", within_var)):
        if _check_variance(value, name) > max_var:
            raise ValueError(f"{name}={value} is above max_var={max_var}; raise max_var")
    max_var = _on_step(max_var)
    # Simulate once with the largest variances to fix the y axis, so a move of
    # a slider shows the spread changing instead of the axis rescaling.
    widest = simulate_groups(max_var, max_var, n_groups, group_size, seed=seed)
    half = float(np.abs(widest["y"]).max()) * 1.05
    ylim = (-half, half)

    def control(name, start):
        slider = widgets.FloatSlider(
            value=_on_step(start), min=0.0, max=max_var, step=STEP, description=name,
            readout=False, readout_format=".1f", continuous_update=False,
            style={"description_width": "initial"},
            layout=widgets.Layout(width="400px"))
        # The box's label is the variance's name again (read by screen readers through
        # <label for>); it has no width on screen, where the slider's label shows it.
        number = widgets.BoundedFloatText(
            value=_on_step(start), min=0.0, max=max_var, step=STEP, description=name,
            style={"description_width": "0px"}, layout=widgets.Layout(width="90px"))
        return slider, number, widgets.HBox([slider, number])

    between, between_box, between_row = control("between-school variance", between_var)
    within, within_box, within_row = control("within-school variance", within_var)
    vpc_text = widgets.HTML()
    image = widgets.Image(format="png")

    pairs = {between: between_box, between_box: between, within: within_box, within_box: within}
    busy = []

    def draw():
        b, w = between.value, within.value
        if b + w == 0:
            vpc_text.value = "<b>VPC undefined</b>: both variances are 0; move a slider"
            return
        data = simulate_groups(b, w, n_groups, group_size, seed=seed)
        vpc_text.value = _vpc_text(b, w)
        image.value = _render_png(data, ylim)

    def update(change):
        # Slider and box show one value, on the step: the value the simulation uses.
        if busy:
            return
        busy.append(change.owner)
        try:
            value = _on_step(change.new)
            change.owner.value = value
            pairs[change.owner].value = value
        finally:
            busy.clear()
        draw()

    for control_widget in pairs:
        control_widget.observe(update, names="value")
    draw()

    class VarianceExplorer(widgets.VBox):
        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs)
            b, w = between.value, within.value
            if b + w > 0:
                # A still of the explorer: shown where the live widget cannot be
                # (a notebook opened before it is run), with its text alternative.
                data = simulate_groups(b, w, n_groups, group_size, seed=seed)
                note = (f"between-school variance {b:.1f}, within-school variance {w:.1f}"
                        " (run the notebook to move the sliders)")
                bundle["image/png"] = base64.b64encode(_render_png(data, ylim, note=note)).decode("ascii")
                bundle["text/plain"] = _describe(b, w, n_groups, group_size)
            return bundle

    box = VarianceExplorer([between_row, within_row, vpc_text, image])
    box.between, box.within, box.vpc_text, box.image = between, within, vpc_text, image
    box.between_box, box.within_box = between_box, within_box
    box.add_class("mlm-variance-explorer")
    return box
