"""The one place where plotting functions get (or check) their matplotlib Axes."""

from __future__ import annotations


def new_axes(ax, figsize=(7, 4.5)):
    """Return ``ax`` after checking it is an Axes, or a new one of ``figsize``."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize)
        return ax
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(
            f"ax must be a matplotlib Axes (e.g. from plt.subplots()) or None, "
            f"not {type(ax).__name__}.")
    return ax
