"""Plots of fitted multilevel models.

Each function takes an optional matplotlib ``Axes`` (``ax=``), draws on it
(making a new figure when none is given) and returns it, so plots can be
combined in a grid.  :func:`plot_residuals` draws several panels and
returns the ``Figure``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ._axes import new_axes as _new_axes
from .linear import _group_name, _identifiers, _lme4_cache, _re_term_names
from .tables import _fitted_parts, _kind, group_effects, random_effects

__all__ = ["plot_caterpillar", "plot_group_lines", "plot_residuals"]


def _group_label(result):
    if _kind(result) == "mixedlm":
        return _group_name(result)
    try:
        return str(random_effects(result)["Groups"].iloc[0])
    except Exception:  # noqa: BLE001 - a label is not worth failing for
        return "group"


def plot_caterpillar(result, ax=None, term=None):
    """Caterpillar plot: ranked group effects with 95% intervals.

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
    ge = group_effects(result)
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
    ax.errorbar(pos, eff, yerr=err, fmt="o", markersize=3, color="tab:blue",
                ecolor="tab:blue", elinewidth=1, alpha=0.8, label="effect and 95% interval")
    ax.axhline(0.0, color="black", linewidth=1, linestyle="--", label="average group")
    group = _group_label(result)
    what = "intercept" if term == "(Intercept)" else f"slope of {term}"
    ax.set_title(f"{group.capitalize()} effects on the {what}, with 95% intervals")
    ax.set_xlabel(f"{group} (ranked by predicted effect)")
    ax.set_ylabel("predicted effect (deviation from average)")
    ax.legend(loc="upper left", frameon=False)
    return ax


def _need_linear(func, result):
    if _kind(result) != "mixedlm":
        raise TypeError(
            f"{func}() draws linear multilevel models fitted with fit_mixedlm(); "
            f"got {type(result).__name__}.")


def _model_frame(result):
    frame = _lme4_cache(result).get("data")
    if frame is None:
        frame = getattr(result.model.data, "frame", None)
    if frame is None:
        raise ValueError("The data of this model are not available; refit it with fit_mixedlm().")
    return frame


def _formula_rhs(result):
    """Right-hand sides of the fixed and random formulas of a MixedLM result."""
    cache = _lme4_cache(result)
    formula = cache.get("formula") or getattr(result.model, "formula", None) or ""
    rhs = formula.split("~", 1)[1] if "~" in formula else ""
    re_formula = cache.get("re_formula")
    if re_formula is None:
        re_formula = " + ".join(str(n) for n in _re_term_names(result.model))
    return rhs + " + " + re_formula


def plot_group_lines(result, x, ax=None, max_groups=None):
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
    import patsy

    _need_linear("plot_group_lines", result)
    frame = _model_frame(result)
    model = result.model
    # x must be an explanatory variable: not the response, not the groups
    # (a line over either would be flat or meaningless, not an error).
    explanatory = set(_identifiers(_formula_rhs(result))) - {_group_name(result)}
    if not isinstance(x, str) or x not in frame.columns or x not in explanatory:
        usable = [c for c in frame.columns
                  if pd.api.types.is_numeric_dtype(frame[c]) and c in explanatory]
        if x == model.endog_names or x == _group_name(result):
            role = "the response" if x == model.endog_names else "the grouping column"
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
    group = _group_name(result)
    response = model.endog_names
    cache = _lme4_cache(result)
    b = np.asarray(cache["b"], dtype=float)
    labels = list(model.group_labels)
    re_names = _re_term_names(model)
    for name in re_names:
        if name != "(Intercept)" and name not in frame.columns:
            raise ValueError(
                f"plot_group_lines(): the random term {name!r} is not a plain column, "
                "so its lines cannot be drawn.")
    index = np.arange(len(labels))
    if max_groups is not None and (isinstance(max_groups, bool) or not isinstance(
            max_groups, (int, np.integer)) or max_groups < 1):
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
    design_info = getattr(model, "model_spec", None) or model.data.model_spec
    (X_new,) = patsy.build_design_matrices([design_info], new, return_type="matrix")
    fixed = np.asarray(X_new) @ np.asarray(cache["beta"], dtype=float)
    Z_new = np.column_stack([np.ones(len(new)) if n == "(Intercept)" else new[n].to_numpy(float)
                             for n in re_names])
    pred = fixed + np.einsum("ik,ik->i", Z_new, np.repeat(b[index], n_pts, axis=0))

    ax = _new_axes(ax)
    xs = new[x].to_numpy(float).reshape(len(index), n_pts)
    ys = pred.reshape(len(index), n_pts)
    alpha = 0.6 if len(index) <= 100 else 0.25
    for k in range(len(index)):
        ax.plot(xs[k], ys[k], color="tab:blue", linewidth=1, alpha=alpha)
    shown = "" if len(index) == len(labels) else f" ({len(index)} of {len(labels)} shown)"
    ax.set_title(f"Predicted {response} for each {group}{shown}")
    ax.set_xlabel(x)
    ax.set_ylabel(f"predicted {response}")
    return ax


def plot_residuals(result):
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

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from mlmhelpers import load_dataset, fit_mixedlm, plot_residuals
    >>> exam = load_dataset("tutorial")
    >>> m2 = fit_mixedlm("normexam ~ standlrt", exam, groups="school")
    >>> fig = plot_residuals(m2)
    >>> len(fig.axes)
    3
    """
    import matplotlib.pyplot as plt

    _need_linear("plot_residuals", result)
    model = result.model
    group = _group_name(result)
    fixed, rand = _fitted_parts(result)
    fitted = fixed + rand
    resid = np.asarray(model.endog, dtype=float) - fitted
    ge = group_effects(result)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))

    ax = axes[0]
    for term, sub in ge.groupby("term", sort=False):
        eff = np.sort(sub["effect"].to_numpy(float))
        probs = (np.arange(1, len(eff) + 1) - 0.5) / len(eff)
        ax.plot(stats.norm.ppf(probs), eff, "o", markersize=3, label=term)
        sd = eff.std(ddof=1) if len(eff) > 1 else 0.0
        qq = np.array([-3, 3])
        ax.plot(qq, eff.mean() + sd * qq, color="grey", linewidth=1)
    ax.set_title(f"Level-2 residuals ({group} effects)")
    ax.set_xlabel("normal quantiles")
    ax.set_ylabel("predicted effect")
    ax.legend(frameon=False)

    ax = axes[1]
    ax.hist(resid, bins=40, density=True, color="tab:blue", alpha=0.6)
    grid = np.linspace(resid.min(), resid.max(), 200)
    ax.plot(grid, stats.norm.pdf(grid, 0, resid.std()), color="black", linewidth=1)
    ax.set_title("Level-1 residuals")
    ax.set_xlabel("residual (observed - fitted)")
    ax.set_ylabel("density")

    ax = axes[2]
    ax.scatter(fitted, resid, s=4, alpha=0.3, color="tab:blue")
    ax.axhline(0.0, color="black", linewidth=1, linestyle="--")
    ax.set_title("Residuals against fitted values")
    ax.set_xlabel("fitted value")
    ax.set_ylabel("level-1 residual")
    fig.tight_layout()
    return fig
