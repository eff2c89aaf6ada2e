"""The course's figure style: colours everyone can tell apart, text everyone can read.

Every plot function of the library draws in this style.  Lectures and students
can use it for their own matplotlib figures:

>>> import mlmhelpers as mlm
>>> mlm.use_course_style()          # once, in the first code cell
>>> mlm.PALETTE[:3]
('#0072B2', '#E69F00', '#009E73')

The palette is Okabe and Ito's (2008), designed to stay distinct for the
common forms of colour blindness; the course pairs each colour with its own
marker and line style (``MARKERS``, ``LINESTYLES``) so that series differ by
more than colour.  No text is smaller than ``MIN_FONT_SIZE`` points, and
figures are drawn at ``DPI`` dots per inch, so at 100% zoom a point on screen
is about a point on paper.
"""

from __future__ import annotations

import contextlib

__all__ = ["PALETTE", "MARKERS", "LINESTYLES", "MIN_FONT_SIZE", "DPI", "course_rc",
           "course_style", "use_course_style"]

#: Okabe-Ito colours: blue, orange, bluish green, vermillion, reddish purple,
#: sky blue, yellow, black (the order the course uses them in).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
#: One marker and one line style per colour, for a second cue besides colour.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 2)), (0, (8, 2)))
#: The smallest font size (points) any text of a course figure has.
MIN_FONT_SIZE = 10.0
#: Resolution of the course's figures (96 is the screen's CSS pixels per inch).
DPI = 100

#: Named colours for what the course's figures show again and again.
DATA, HIGHLIGHT, REFERENCE = PALETTE[0], PALETTE[3], "#000000"


def course_rc():
    """The matplotlib settings (a dict for ``matplotlib.rcParams``) of the course style.

    Examples
    --------
    >>> from mlmhelpers.style import course_rc
    >>> rc = course_rc()
    >>> rc["figure.dpi"], rc["xtick.labelsize"]
    (100, 10.0)
    """
    from cycler import cycler

    return {
        "axes.prop_cycle": cycler(color=list(PALETTE)) + cycler(linestyle=list(LINESTYLES)),
        "figure.dpi": DPI,
        "savefig.dpi": DPI,
        "font.size": 11.0,
        "axes.titlesize": 12.0,
        "axes.labelsize": 11.0,
        "xtick.labelsize": MIN_FONT_SIZE,
        "ytick.labelsize": MIN_FONT_SIZE,
        "legend.fontsize": MIN_FONT_SIZE,
        "legend.title_fontsize": MIN_FONT_SIZE,
        "figure.titlesize": 13.0,
        "image.cmap": "cividis",
        "lines.markersize": 5.0,
    }


@contextlib.contextmanager
def course_style():
    """A ``with`` block that draws in the course style and restores the settings after.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from mlmhelpers.style import course_style
    >>> with course_style():
    ...     fig, ax = plt.subplots()
    >>> fig.dpi
    100.0
    >>> plt.close(fig)
    """
    import matplotlib

    with matplotlib.rc_context(course_rc()):
        yield


def use_course_style():
    """Draw every later matplotlib figure of this session in the course style.

    Call it once at the top of a notebook; ``matplotlib.rcdefaults()`` undoes it.

    Examples
    --------
    >>> import matplotlib
    >>> import mlmhelpers as mlm
    >>> mlm.use_course_style()
    >>> matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0]
    '#0072B2'
    >>> matplotlib.rcdefaults()
    """
    import matplotlib

    matplotlib.rcParams.update(course_rc())


def readable(ax):
    """Raise any text of ``ax`` (title, labels, ticks, legend, annotations) to the minimum size."""
    texts = [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
    legend = ax.get_legend()
    if legend is not None:
        texts += [*legend.get_texts(), legend.get_title()]
    for text in texts:
        if text.get_fontsize() < MIN_FONT_SIZE:
            text.set_fontsize(MIN_FONT_SIZE)
    for axis in ("x", "y"):
        sizes = [t.get_fontsize() for t in getattr(ax, f"get_{axis}ticklabels")()]
        if not sizes or min(sizes) < MIN_FONT_SIZE:
            ax.tick_params(axis=axis, labelsize=max(MIN_FONT_SIZE, min(sizes, default=0)))
    return ax
