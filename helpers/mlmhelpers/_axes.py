"""The one place where plotting functions get (or check) their matplotlib Axes, in the course style."""

from __future__ import annotations

import functools

from . import style


def new_axes(ax, figsize=(7, 4.5)):
    """Return ``ax`` after checking it is an Axes, or a new one of ``figsize``."""
    if ax is None:
        import matplotlib.pyplot as plt

        with style.course_style():
            _, ax = plt.subplots(figsize=figsize)
        return ax
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(
            f"ax must be a matplotlib Axes (e.g. from plt.subplots()) or None, "
            f"not {type(ax).__name__}.")
    return ax


def course_plot(func):
    """Decorator of every plot function: draw in the course style, then make all text readable.

    The function returns an Axes or an array of Axes; each gets no text below
    ``style.MIN_FONT_SIZE`` points, also when the caller passed their own Axes.
    """
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with style.course_style():
            out = func(*args, **kwargs)
        for ax in (out if hasattr(out, "__len__") else [out]):
            style.readable(ax)
        return out

    return wrapper
