"""Unit diagrams of multilevel data structures (lecture 2).

Two drawing functions cover the structures of the course:

* :func:`plot_hierarchy` draws strictly nested units (pupils in schools,
  occasions in people, pupils in classes in schools in local authorities,
  responses in pupils);
* :func:`plot_classification` draws units that belong to groups of one or two
  classifications, possibly to several groups at once (cross-classification,
  multiple membership).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from matplotlib.colors import to_rgba

from . import style
from ._axes import course_plot, new_axes
from ._validate import is_whole

__all__ = ["plot_hierarchy", "plot_classification"]

# light fills of the course palette: blue, orange, bluish green, reddish purple, sky blue
_COLOURS = [to_rgba(style.PALETTE[i], 0.3) for i in (0, 1, 2, 4, 5)]


def _new_axes(ax, width):
    return new_axes(ax, figsize=(min(max(width * 0.55, 4.0), 10.0), 3.2))


def _box(ax, x, y, text, colour, fontsize):
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize,
            bbox=dict(boxstyle="round,pad=0.3", facecolor=colour, edgecolor="0.35"))


def _finish(ax, n_rows, width, names, title):
    ax.set_xlim(-1.0, width)
    ax.set_ylim(-0.6, n_rows - 0.4)
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels(names)
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)
    if title:
        ax.set_title(title)
    return ax


def _check_levels(levels):
    if isinstance(levels, str) or not isinstance(levels, Sequence) or not levels:
        raise TypeError(
            "levels must be a list of (name, count) pairs from the top level down, "
            "e.g. [('School', 3), ('Pupil', 4)]"
        )
    checked = []
    for item in levels:
        try:
            name, count = item
        except (TypeError, ValueError):
            raise TypeError(
                f"each level must be a (name, count) pair, got {item!r}; "
                "e.g. [('School', 3), ('Pupil', 4)]"
            ) from None
        if not is_whole(count) or count < 1:
            raise ValueError(f"the count of level {name!r} must be a whole number >= 1, got {count!r}")
        checked.append((str(name), int(count)))
    return checked


@course_plot
def plot_hierarchy(levels, *, ax=None, title=None, fontsize=10):
    """Draw a strictly nested (hierarchical) structure as a tree of units.

    Parameters
    ----------
    levels : list of (str, int)
        From the highest level down: the level's name and how many units
        each unit of the level above contains (for the top level: how many
        units to draw).  ``[("School", 2), ("Pupil", 3)]`` draws two schools
        with three pupils each.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is made if omitted.
    title : str, optional
        Title of the axes.
    fontsize : float
        Size of the unit labels, in points; below the course's minimum
        (``mlmhelpers.style.MIN_FONT_SIZE``, 10) it is raised to it.

    Returns
    -------
    matplotlib.axes.Axes
        The level names label the y axis (highest level at the top).

    Examples
    --------
    >>> ax = plot_hierarchy([("School", 2), ("Pupil", 3)], title="Pupils in schools")
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['Pupil', 'School']
    """
    levels = _check_levels(levels)
    counts = np.cumprod([count for _, count in levels])
    if counts[-1] > 60:
        raise ValueError(
            f"this structure has {counts[-1]} bottom units, too many to draw; "
            "use smaller counts (at most 60 units on the lowest level)"
        )
    n_rows = len(levels)
    width = float(counts[-1])
    ax = _new_axes(ax, width)

    # x positions: bottom units evenly spaced, each parent above the middle of its children
    positions = [np.arange(counts[-1], dtype=float)]
    for depth in range(n_rows - 2, -1, -1):
        children = positions[0].reshape(int(counts[depth]), -1)
        positions.insert(0, children.mean(axis=1))

    for depth, (name, _) in enumerate(levels):
        y = n_rows - 1 - depth
        per_parent = levels[depth][1]
        for k, x in enumerate(positions[depth]):
            if depth > 0:
                parent_x = positions[depth - 1][k // per_parent]
                ax.plot([parent_x, x], [y + 1 - 0.18, y + 0.18], color="0.45", linestyle="-", linewidth=1,
                        zorder=0)
            _box(ax, x, y, f"{name[0]}{k + 1}", _COLOURS[depth % len(_COLOURS)], fontsize)
    return _finish(ax, n_rows, width, [name for name, _ in reversed(levels)], title)


def _check_links(links, n_units, n_groups, label):
    if len(links) != n_units:
        raise ValueError(f"{label} needs one entry per unit ({n_units}), got {len(links)}")
    out = []
    for i, entry in enumerate(links):
        entry = [entry] if isinstance(entry, (int, np.integer)) else list(entry)
        if not entry:
            raise ValueError(f"unit {i + 1} belongs to no group in {label}; give at least one group index")
        bad = [g for g in entry if not 0 <= g < n_groups]
        if bad:
            raise ValueError(
                f"{label} for unit {i + 1} names group index {bad[0]}, but the groups are "
                f"numbered 0..{n_groups - 1}"
            )
        out.append(entry)
    return out


@course_plot
def plot_classification(units, top, links, bottom=None, bottom_links=None, weights=None,
                        *, ax=None, title=None, fontsize=10):
    """Draw units that belong to groups of one or two classifications.

    Units are drawn in the middle row, groups of the first classification
    above them and (optionally) groups of a second classification below.
    A unit linked to two groups of the same classification is a *multiple
    membership*; linking every unit to one group above and one below is a
    *cross-classification*.

    Parameters
    ----------
    units : (str, int)
        Name and number of the lowest-level units, e.g. ``("Pupil", 8)``.
    top : (str, int)
        Name and number of the groups drawn above, e.g. ``("School", 3)``.
    links : list
        For each unit, the index (0-based) of its group above, or a list of
        indices when it belongs to several groups.
    bottom : (str, int), optional
        A second classification drawn below, e.g. ``("Neighbourhood", 2)``.
    bottom_links : list, optional
        Group indices of the second classification, one entry per unit.
    weights : list of list of float, optional
        Membership weights printed on the links above (same shape as ``links``).
    ax : matplotlib.axes.Axes, optional
    title : str, optional
    fontsize : float
        Size of the labels, in points (at least 10, the course's minimum).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> ax = plot_classification(("Pupil", 4), ("School", 2), [0, 0, 1, 1],
    ...                          bottom=("Area", 2), bottom_links=[0, 1, 0, 1])
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['Area', 'Pupil', 'School']
    """
    (unit_name, n_units), (top_name, n_top) = _check_levels([units, top])
    links = _check_links(links, n_units, n_top, "links")
    if weights is not None:
        if len(weights) != n_units or any(len(w) != len(l) for w, l in zip(weights, links)):
            raise ValueError("weights must have the same shape as links: one weight per link")
    rows = [(top_name, n_top, links, _COLOURS[0])]
    if bottom is not None:
        if bottom_links is None:
            raise ValueError("bottom is given without bottom_links: give each unit's group below")
        ((bottom_name, n_bottom),) = _check_levels([bottom])
        bottom_links = _check_links(bottom_links, n_units, n_bottom, "bottom_links")
        rows.append((bottom_name, n_bottom, bottom_links, _COLOURS[2]))
    elif bottom_links is not None:
        raise ValueError("bottom_links is given without bottom: name the second classification")

    width = float(max(n_units, n_top))
    ax = _new_axes(ax, width)
    unit_y = 1 if bottom is not None else 0
    unit_x = np.linspace(0, width - 1, n_units)

    for r, (name, n_groups, group_links, colour) in enumerate(rows):
        y = unit_y + 1 if r == 0 else unit_y - 1
        group_x = np.linspace(0, width - 1, n_groups) if n_groups > 1 else np.array([(width - 1) / 2])
        if n_groups > 1 and n_groups < n_units:
            margin = (width - 1) / (2 * n_groups)
            group_x = np.linspace(margin, width - 1 - margin, n_groups)
        for i, entry in enumerate(group_links):
            for k, g in enumerate(entry):
                end = y - 0.18 if r == 0 else y + 0.18
                ax.plot([unit_x[i], group_x[g]], [unit_y + (0.18 if r == 0 else -0.18), end],
                        color="0.45", linewidth=1, zorder=0, linestyle="-" if r == 0 else "--")
                if r == 0 and weights is not None:
                    ax.text((unit_x[i] * 0.6 + group_x[g] * 0.4), unit_y + 0.45, f"{weights[i][k]:g}",
                            fontsize=fontsize, ha="center", color=style.HIGHLIGHT,
                            bbox=dict(boxstyle="round,pad=0.1", facecolor="white", edgecolor="none"))
        for g, x in enumerate(group_x):
            _box(ax, x, y, f"{name[0]}{g + 1}", colour, fontsize)
    for i, x in enumerate(unit_x):
        _box(ax, x, unit_y, f"{unit_name[0]}{i + 1}", _COLOURS[1], fontsize)

    names = [unit_name, top_name] if bottom is None else [rows[1][0], unit_name, top_name]
    return _finish(ax, len(names), width, names, title)
