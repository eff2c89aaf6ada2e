"""The one place where results become text, laid out the way R prints them.

Numbers: :func:`r_format` gives a column the decimals R's ``format()`` would
(4 significant digits for the smallest entry).  p-values: :func:`format_p`
follows R's ``format.pval``: significant digits, and never 0 - a p-value
below machine precision prints as ``< 2e-16``, and where a table rounds to
a fixed number of decimals one below its resolution prints as ``< 0.001``.
:func:`summary_text` lays out any mixed-model result of the library (linear
or logistic) like lme4's ``summary()``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

P_EPS = 2e-16
SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


class Summary(str):
    """Text of a model summary; shows as plain text in a notebook.

    It is a ``str`` (so ``print(summary(m))``, ``"AIC" in summary(m)`` and
    writing it to a file all work) whose ``repr`` is the text itself, so a
    notebook cell ending in ``summary(m)`` displays it without quotes.
    """

    def __repr__(self):
        return str(self)

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


def format_p(p, digits=3, decimals=None):
    """A p-value as R prints it; never ``0``.

    Parameters
    ----------
    p : float
    digits : int, default 3
        Significant digits (R's ``format.pval(p, digits)``); values below
        2e-16 (R's machine epsilon) print as ``< 2e-16``.
    decimals : int, optional
        Print with this many decimals instead, as a rounded table does; a
        value that would round to 0 prints as ``< 0.001`` (for 3 decimals).

    Examples
    --------
    >>> format_p(3.3349e-10, digits=4), format_p(0.01234), format_p(0.0)
    ('3.335e-10', '0.0123', '< 2e-16')
    >>> format_p(0.00004, decimals=3), format_p(0.0456, decimals=3)
    ('< 0.001', '0.046')
    """
    if p is None or not np.isfinite(p):
        return "NA"
    p = float(p)
    if decimals is not None:
        floor = 10.0 ** -decimals
        if p < floor:
            return f"< {floor:.{decimals}f}"
        return f"{p:.{decimals}f}"
    if p < P_EPS:
        return "< 2e-16"
    return f"{p:.{digits}g}"


class Table(pd.DataFrame):
    """A table whose p-value columns (``Pr(...)``) stay R-like when rounded.

    It is a ``pandas.DataFrame`` in every other way.  ``round()`` rounds the
    other columns as usual but writes the p-values with :func:`format_p`, so
    a p-value is never shown as 0: ``table.round(3)`` shows ``< 0.001``
    where a plain DataFrame would show ``0.000``.

    Examples
    --------
    >>> t = Table({"z value": [8.25, 1.67], "Pr(>|z|)": [1.6e-16, 0.0952]},
    ...           index=["Intercept", "age"])
    >>> t.round(3)
               z value Pr(>|z|)
    Intercept     8.25  < 0.001
    age           1.67    0.095
    """

    @property
    def _constructor(self):
        return Table

    def round(self, decimals=0, *args, **kwargs):
        out = pd.DataFrame(self).round(decimals, *args, **kwargs)
        for col in self.columns:
            if not str(col).startswith("Pr("):
                continue
            if isinstance(decimals, dict):
                if col not in decimals:
                    continue
                d = decimals[col]
            elif isinstance(decimals, pd.Series):
                if col not in decimals.index:
                    continue
                d = decimals[col]
            else:
                d = decimals
            out[col] = pd.Series(
                [np.nan if not np.isfinite(v) else format_p(v, decimals=int(d))
                 for v in self[col].to_numpy(dtype=float)], index=out.index, dtype=object)
        return out


def p_text(p, digits=4):
    """``= 0.0123`` or ``< 2e-16``: a p-value after its name in a sentence."""
    text = format_p(p, digits)
    return text if text.startswith("<") else "= " + text


def stars(p):
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else ""


def r_decimals(values, digits):
    """Decimals R's format() uses so each value shows `digits` significant digits."""
    dec = 0
    for v in np.atleast_1d(np.asarray(values, dtype=float)):
        if not np.isfinite(v) or v == 0:
            continue
        text = f"{abs(v):.{digits}g}"
        if "e" in text:
            mant, exp = text.split("e")
            frac = mant.split(".")[1] if "." in mant else ""
            d = len(frac) - int(exp)
        else:
            d = len(text.split(".")[1]) if "." in text else 0
        dec = max(dec, d)
    return min(dec, 10)


def r_format(values, digits=4):
    dec = r_decimals(values, digits)
    return [("" if not np.isfinite(v) else f"{v:.{dec}f}") for v in np.asarray(values, float)]


def table(rows, header, align):
    """Plain-text table; align is a string of 'l'/'r' per column."""
    cols = list(zip(*([header] + rows))) if rows else [[h] for h in header]
    widths = [max(len(str(c)) for c in col) for col in cols]
    out = []
    for row in [header] + rows:
        cells = []
        for cell, w, a in zip(row, widths, align):
            cells.append(str(cell).ljust(w) if a == "l" else str(cell).rjust(w))
        out.append(" " + " ".join(cells).rstrip())
    return out


def _aligned(heads, vals, lead=""):
    w = [max(len(a), len(b)) for a, b in zip(heads, vals)]
    return [lead + " ".join(h.rjust(x) for h, x in zip(heads, w)),
            lead + " ".join(v.rjust(x) for v, x in zip(vals, w))]


def r_term(name):
    """patsy's term name as R writes it: ``urban[T.Y]`` -> ``urbanY``."""
    if name in ("Intercept", "(Intercept)"):
        return "(Intercept)"
    return re.sub(r"\[T\.(.*?)\]", r"\1", name)


def abbreviate(name, width=6):
    """Short column labels of the correlation table, as lme4 prints them."""
    if name in ("Intercept", "(Intercept)"):
        return "(Intr)"
    return r_term(name)[:width]


def coef_table(fe):
    """Lines of the fixed-effects table (with p-values and stars when it has them)."""
    p = len(fe)
    est_txt = r_format(np.r_[fe["Estimate"].to_numpy(), fe["Std. Error"].to_numpy()], 4)
    stat = fe.columns[2]
    pcol = fe.columns[3] if fe.shape[1] > 3 else None
    rows = []
    for i, name in enumerate(fe.index):
        row = [name, est_txt[i], est_txt[p + i], f"{fe[stat].iloc[i]:.3f}"]
        if pcol is not None:
            pv = fe[pcol].iloc[i]
            row += [format_p(pv), stars(pv)]
        rows.append(row)
    header = ["", "Estimate", "Std. Error", stat] + ([pcol, ""] if pcol else [])
    lines = table(rows, header, "lrrr" + ("rl" if pcol else ""))
    if pcol is not None:
        lines += ["---", SIGNIF_LEGEND]
    return lines


def fixef_correlation(vcov, names):
    """Lower triangle of the correlation of the fixed effects (lme4's layout)."""
    vcov = np.asarray(vcov, dtype=float)
    sd = np.sqrt(np.diag(vcov))
    corr = vcov / np.outer(sd, sd)
    rows = []
    for i in range(1, len(names)):
        rows.append([names[i]] + [f"{corr[i, j]:.3f}" for j in range(i)]
                    + [""] * (len(names) - 1 - i))
    header = [""] + [abbreviate(n) for n in names[:-1]]
    return table(rows, header, "l" + "r" * (len(names) - 1))


def varcorr_lines(vc):
    """The 'Random effects:' block from a VarCorr table (see ``random_effects``)."""
    var_txt = r_format(vc["Variance"].to_numpy(), 4)
    sd_txt = r_format(vc["Std.Dev."].to_numpy(), 4)
    grouped = vc["Groups"][vc["Groups"] != "Residual"]
    has_corr = bool(np.isfinite(vc["Corr"].to_numpy(dtype=float)).any()) or (
        len(grouped) > grouped.nunique())
    rows = []
    previous = None
    for i, r in vc.iterrows():
        grp = r["Groups"] if r["Groups"] != previous else ""
        previous = r["Groups"]
        row = [grp, r["Name"], var_txt[i], sd_txt[i]]
        if has_corr:
            row.append("" if not np.isfinite(r["Corr"]) else f"{r['Corr']:.2f}")
        rows.append(row)
    header = ["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] if has_corr else [])
    return table(rows, header, "llll" + ("r" if has_corr else ""))


def lme4_formula(result):
    """``y ~ x + (1 + z | g)``: the model as lme4 writes it."""
    return result.lme4_formula


def summary_text(result):
    """A mixed model laid out like lme4's ``summary()`` (linear or logistic)."""
    lines = list(result._summary_header())
    lines.append("Formula: " + lme4_formula(result))
    lines.append("")
    if result.reml:
        lines.append(f"REML criterion at convergence: {result.deviance:.1f}")
    else:
        crit = [f"{v:.1f}" for v in (result.aic, result.bic, result.llf, result.deviance)]
        lines += _aligned(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                          crit + [str(result.df_resid)], lead=" ")
    lines.append("")
    q = np.quantile(result.scaled_residuals(), [0, 0.25, 0.5, 0.75, 1.0])
    lines.append("Scaled residuals: ")
    lines += _aligned(["Min", "1Q", "Median", "3Q", "Max"], [f"{v:.4f}" for v in q])
    lines.append("")
    lines.append("Random effects:")
    lines += varcorr_lines(result.varcorr())
    groups = "; ".join(f"{g}, {k}" for g, k in result.ngrps.items())
    lines.append(f"Number of obs: {result.nobs}, groups:  {groups}")
    lines.append("")
    lines.append("Fixed effects:")
    fe = result.fixed_effects()
    lines += coef_table(fe)
    if len(fe) > 1:
        lines.append("")
        lines.append("Correlation of Fixed Effects:")
        lines += fixef_correlation(result.cov_params_fe.to_numpy(), list(fe.index))
    if result.singular:
        lines.append("")
        lines.append("optimizer message: boundary (singular) fit: see help('isSingular')")
    notes = [w for w in result.warnings if not w.startswith("boundary (singular) fit")]
    if notes:
        lines += [""] + [f"Note: {w}" for w in notes]
    return Summary("\n".join(lines))


def criteria(llf, npar, nobs):
    """AIC and BIC from a log-likelihood, as R's ``AIC()`` and ``BIC()``."""
    return -2 * llf + 2 * npar, -2 * llf + math.log(nobs) * npar
