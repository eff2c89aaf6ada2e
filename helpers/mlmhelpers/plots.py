"""Plots of fitted multilevel models.

Each function takes the model (from :func:`mlmhelpers.fit_mixedlm` or, where
it applies, :func:`mlmhelpers.fit_logit_mixed`) and an optional matplotlib
``Axes`` as the keyword ``ax=``, draws on it (making a new figure when none is
given) and returns it, so plots can be combined in a grid.
:func:`plot_residuals` draws three panels: it takes and returns three Axes.
Intervals are drawn at confidence level ``1 - alpha``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from . import style
from ._axes import course_plot
from ._axes import new_axes as _new_axes
from ._validate import check_alpha, identifiers, is_whole
from .tables import _mixed, as_mixed

__all__ = ["plot_caterpillar", "plot_group_lines", "plot_residuals"]


@course_plot
def plot_caterpillar(result, *, ax=None, term=None, alpha=0.05, factor=None):
    """Caterpillar plot: ranked group effects with confidence intervals.

    Each group's predicted effect (conditional mode) is drawn as a point
    with its 95% interval, groups sorted from lowest to highest, with a
    horizontal line at zero (the average group).  Groups whose interval
    does not cross zero differ from the average.

    Parameters
    ----------
    result : fitted model
        From :func:`fit_mixedlm` or :func:`fit_logit_mixed`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when omitted.
    term : str, optional
        Which random term to show (``"(Intercept)"``, ``"standlrt"``);
        default the first (the intercept).
    alpha : float, default 0.05
        1 - confidence level of the intervals (0.05: 95% intervals).
    factor : str, optional
        For a model with several grouping factors (``(1 | lea/school)``):
        which one to draw, named as ``random_effects`` names it
        (``"lea"``, ``"school:lea"``); default the first.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from mlmhelpers import load_dataset, fit_mixedlm, plot_caterpillar
    >>> exam = load_dataset("tutorial")
    >>> m1 = fit_mixedlm("normexam ~ 1", exam, groups="school")
    >>> ax = plot_caterpillar(m1)
    >>> ax.get_xlabel()
    'school (ranked by predicted effect)'
    """
    alpha = check_alpha("plot_caterpillar()", alpha)
    mixed = _mixed("group_effects", result)
    ge = mixed.group_effects(alpha=alpha)
    factors = mixed.random_terms.names
    group = factors[0]
    if len(factors) > 1:
        if factor is None:
            factor = factors[0]
        if factor not in factors:
            raise ValueError(
                f"plot_caterpillar(): factor={factor!r} is not a grouping factor of this "
                f"model; choose one of {', '.join(repr(f) for f in factors)}.")
        ge = ge[ge["factor"] == factor]
        group = factor
    elif factor is not None and factor != group:
        raise ValueError(
            f"plot_caterpillar(): this model has one grouping factor, {group!r}; "
            "leave out factor=.")
    level = f"{100 * (1 - alpha):g}%"
    terms = list(dict.fromkeys(ge["term"]))
    if term is None:
        term = terms[0]
    if term not in terms:
        raise ValueError(
            f"plot_caterpillar(): term={term!r} is not a random term of this model; "
            f"choose one of {', '.join(repr(t) for t in terms)}.")
    ax = _new_axes(ax)
    sub = ge[ge["term"] == term].sort_values("effect")
    pos = np.arange(1, len(sub) + 1)
    eff = sub["effect"].to_numpy(float)
    err = np.vstack([eff - sub["lower"].to_numpy(float), sub["upper"].to_numpy(float) - eff])
    ax.errorbar(pos, eff, yerr=err, fmt="o", markersize=4, color=style.DATA,
                ecolor=style.DATA, elinewidth=1, alpha=0.8, label=f"effect and {level} interval")
    ax.axhline(0.0, color="black", linewidth=1, linestyle="--", label="average group")
    what = "intercept" if term == "(Intercept)" else f"slope of {term}"
    ax.set_title(f"{group.capitalize()} effects on the {what}, with {level} intervals")
    ax.set_xlabel(f"{group} (ranked by predicted effect)")
    ax.set_ylabel("predicted effect (deviation from average)")
    ax.legend(loc="upper left", frameon=False)
    return ax


def _linear(func, result, one_term=True):
    mixed = as_mixed(result)
    if mixed is None or mixed.family != "gaussian":
        raise TypeError(
            f"{func}() draws linear multilevel models fitted with fit_mixedlm(); "
            f"got {type(result).__name__}.")
    names = mixed.random_terms.names
    if one_term and len(names) > 1:
        raise TypeError(
            f"{func}() draws models with one grouping factor; this one has "
            f"{len(names)} ({', '.join(names)}). Use "
            "plot_caterpillar(m, factor=...) for each factor's effects, or fit the "
            "two-level model with one factor.")
    return mixed


@course_plot
def plot_group_lines(result, x, *, ax=None, max_groups=None):
    """One predicted line per group: fixed part plus the group's random part.

    Each line runs over the range of ``x`` observed in that group.  In a
    random-intercept model the lines are parallel; with a random slope of
    ``x`` their slopes differ.

    Other covariates are held constant: at the group's own value when the
    covariate does not vary within the group (a school-level variable such
    as ``schgend``), otherwise at its mean (numeric) or reference level
    (categorical) over the whole sample.

    Parameters
    ----------
    result : fitted model
        From :func:`fit_mixedlm`.
    x : str
        A numeric explanatory variable of the model (e.g. ``"standlrt"``).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when omitted.
    max_groups : int, optional
        Draw only this many groups (a random but reproducible selection) -
        useful with thousands of groups.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from mlmhelpers import load_dataset, fit_mixedlm, plot_group_lines
    >>> exam = load_dataset("tutorial")
    >>> m4 = fit_mixedlm("normexam ~ standlrt", exam, groups="school",
    ...                  re_formula="1 + standlrt")
    >>> ax = plot_group_lines(m4, "standlrt")
    >>> len(ax.get_lines())
    65
    """
    res = _linear("plot_group_lines", result)
    frame = res._frame
    if frame is None or res._design_info is None:
        raise ValueError("The data of this model are not available; refit it with fit_mixedlm().")
    group = res.groups
    response = res.response
    # x must be an explanatory variable: not the response, not the groups
    # (a line over either would be flat or meaningless, not an error).
    rhs = res.formula.split("~", 1)[1] + " + " + " + ".join(res.re_names)
    explanatory = set(identifiers(rhs)) - {group}
    if not isinstance(x, str) or x not in frame.columns or x not in explanatory:
        usable = [c for c in frame.columns
                  if pd.api.types.is_numeric_dtype(frame[c]) and c in explanatory]
        if x == response or x == group:
            role = "the response" if x == response else "the grouping column"
            what = f"x={x!r} is {role}, not an explanatory variable of this model"
        else:
            what = f"x={x!r} is not a variable of this model"
        if usable:
            todo = f"choose one of {', '.join(repr(c) for c in usable)}."
        else:
            todo = ("this model has no numeric explanatory variable to draw lines "
                    "over; add one to the formula, e.g. 'normexam ~ standlrt'.")
        raise ValueError(f"plot_group_lines(): {what}; {todo}")
    if not pd.api.types.is_numeric_dtype(frame[x]):
        raise ValueError(f"plot_group_lines(): x={x!r} must be numeric (it is {frame[x].dtype}).")
    b = res.ranef.to_numpy()
    labels = list(res.ranef.index)
    re_names = res.re_names
    for name in re_names:
        if name != "(Intercept)" and name not in frame.columns:
            raise ValueError(
                f"plot_group_lines(): the random term {name!r} is not a plain column, "
                "so its lines cannot be drawn.")
    index = np.arange(len(labels))
    if max_groups is not None and (not is_whole(max_groups) or max_groups < 1):
        raise ValueError(
            f"plot_group_lines(): max_groups must be a whole number of at least 1 "
            f"(or None for all {len(labels)} groups), got {max_groups!r}.")
    if max_groups is not None and max_groups < len(labels):
        rng = np.random.default_rng(12345)
        index = np.sort(rng.choice(len(labels), size=int(max_groups), replace=False))

    # covariate values: group's own if constant within the group, else overall
    others = [c for c in frame.columns if c not in (x, group)]
    grp = frame.groupby(frame[group], observed=True, sort=False)
    n_unique = grp.nunique(dropna=False)
    constant = {c: bool((n_unique[c] <= 1).all()) for c in others}
    firsts = grp.first()
    overall = {}
    for c in others:
        col = frame[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            overall[c] = col.cat.categories[0]
        elif pd.api.types.is_numeric_dtype(col):
            overall[c] = float(col.mean())
        else:
            overall[c] = col.mode().iloc[0]
    ranges = grp[x].agg(["min", "max"])
    n_pts = 20
    chosen = [labels[j] for j in index]
    lo = ranges.loc[chosen, "min"].to_numpy(float)
    hi = ranges.loc[chosen, "max"].to_numpy(float)
    steps = np.linspace(0.0, 1.0, n_pts)
    piece = {x: (lo[:, None] + (hi - lo)[:, None] * steps).ravel(),
             group: np.repeat(np.asarray(chosen, dtype=object), n_pts)}
    for c in others:
        if constant[c]:
            piece[c] = np.repeat(firsts.loc[chosen, c].to_numpy(dtype=object), n_pts)
        else:
            piece[c] = [overall[c]] * (len(chosen) * n_pts)
    new = pd.DataFrame(piece)
    for c in others:
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            new[c] = pd.Categorical(new[c], categories=frame[c].cat.categories)
        elif pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]):
            # group values were gathered as objects; patsy needs numbers back
            new[c] = new[c].astype(float)
    fixed = res._design(new) @ res.fe_params.to_numpy()
    Z_new = np.column_stack([np.ones(len(new)) if n == "(Intercept)" else new[n].to_numpy(float)
                             for n in re_names])
    pred = fixed + np.einsum("ik,ik->i", Z_new, np.repeat(b[index], n_pts, axis=0))

    ax = _new_axes(ax)
    xs = new[x].to_numpy(float).reshape(len(index), n_pts)
    ys = pred.reshape(len(index), n_pts)
    alpha = 0.6 if len(index) <= 100 else 0.25
    for k in range(len(index)):
        ax.plot(xs[k], ys[k], color=style.DATA, linestyle="-", linewidth=1, alpha=alpha)
    shown = "" if len(index) == len(labels) else f" ({len(index)} of {len(labels)} shown)"
    ax.set_title(f"Predicted {response} for each {group}{shown}")
    ax.set_xlabel(x)
    ax.set_ylabel(f"predicted {response}")
    return ax


@course_plot
def plot_residuals(result, *, ax=None):
    """Residual checks: level-2 and level-1 residuals, residuals vs fitted.

    Three panels: a normal QQ plot of the level-2 residuals (the groups'
    predicted effects, one series per random term), a histogram of the
    level-1 residuals (observed minus fitted, where fitted includes the
    group's effects) with the matching normal curve, and the level-1
    residuals against the fitted values.

    Parameters
    ----------
    result : fitted model
        From :func:`fit_mixedlm`.
    ax : sequence of three matplotlib Axes, optional
        Where to draw the three panels (e.g. ``plt.subplots(1, 3)[1]``); a
        new figure with three panels is made when omitted.

    Returns
    -------
    numpy.ndarray of three matplotlib.axes.Axes
        ``axes[0].figure`` is the figure.

    Examples
    --------
    >>> from mlmhelpers import load_dataset, fit_mixedlm, plot_residuals
    >>> exam = load_dataset("tutorial")
    >>> m2 = fit_mixedlm("normexam ~ standlrt", exam, groups="school")
    >>> axes = plot_residuals(m2)
    >>> len(axes), axes[1].get_title()
    (3, 'Level-1 residuals')
    """
    res = _linear("plot_residuals", result, one_term=False)
    if ax is None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    else:
        axes = np.asarray(ax, dtype=object).ravel() if not hasattr(ax, "plot") else None
        if axes is None or len(axes) != 3:
            raise TypeError(
                "plot_residuals(): ax must be three matplotlib Axes (e.g. "
                "plt.subplots(1, 3)[1]) or None, one per panel.")
        axes = np.array([_new_axes(a) for a in axes], dtype=object)
        fig = None
    fitted = res._fixed_part() + res._random_part_of_rows()
    resid = res._y - fitted
    terms = res.random_terms

    a = axes[0]
    series = [(t, name) for t in terms for name in t.names]
    for k, (t, name) in enumerate(series):
        eff = np.sort(t.ranef[name].to_numpy(float))
        probs = (np.arange(1, len(eff) + 1) - 0.5) / len(eff)
        k = k % len(style.MARKERS)
        label = name if len(terms) == 1 else f"{t.name}: {name}"
        a.plot(stats.norm.ppf(probs), eff, linestyle="none", marker=style.MARKERS[k], markersize=4,
               color=style.PALETTE[k % len(style.PALETTE)], label=label)
        sd = eff.std(ddof=1) if len(eff) > 1 else 0.0
        qq = np.array([-3, 3])
        a.plot(qq, eff.mean() + sd * qq, color="grey",
               linestyle=style.LINESTYLES[k % len(style.LINESTYLES)], linewidth=1)
    which = terms[0].name if len(terms) == 1 else "group"
    a.set_title(f"Level-2 residuals ({which} effects)")
    a.set_xlabel("normal quantiles")
    a.set_ylabel("predicted effect")
    a.legend(frameon=False)

    a = axes[1]
    a.hist(resid, bins=40, density=True, color=style.DATA, alpha=0.6)
    grid = np.linspace(resid.min(), resid.max(), 200)
    a.plot(grid, stats.norm.pdf(grid, 0, resid.std()), color="black", linestyle="-", linewidth=1)
    a.set_title("Level-1 residuals")
    a.set_xlabel("residual (observed - fitted)")
    a.set_ylabel("density")

    a = axes[2]
    a.scatter(fitted, resid, s=6, alpha=0.3, color=style.DATA)
    a.axhline(0.0, color="black", linewidth=1, linestyle="--")
    a.set_title("Residuals against fitted values")
    a.set_xlabel("fitted value")
    a.set_ylabel("level-1 residual")
    if fig is not None:
        fig.tight_layout()
    return axes
