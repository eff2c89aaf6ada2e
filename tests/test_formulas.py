"""lme4's formula syntax and several random factors (issue #15), against lme4.

Reference values: tests/fixtures/lme4_formulas.json, written by
tests/fixtures/lme4_formulas.R (lme4 on the course's CSV files and on lme4's
Penicillin data, kept as tests/fixtures/penicillin.csv).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlmhelpers as mlm
from mlmhelpers._formula import model_spec

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REF = json.loads((FIXTURES / "lme4_formulas.json").read_text())
REL = 1e-3


def _data(name):
    if name == "penicillin":
        return pd.read_csv(FIXTURES / "penicillin.csv")
    if name == "cohort":  # as the R script: a grouping without variance
        exam = mlm.load_dataset("tutorial")
        return exam.assign(cohort=exam["student"] % 6)
    if name == "chem20":
        chem = mlm.load_dataset("chem97")
        return chem[chem["lea"] <= 20]
    return mlm.load_dataset(name)


# key: (data, formula, reml, {lme4 term: our term})
MODELS = {
    "crossed": ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", False, {}),
    "crossed_reml": ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True, {}),
    "cross_classified": ("scotssec", "attain ~ verbal + sex + social + (1 | primary) "
                         "+ (1 | second)", False, {}),
    "nested": ("chem97", "score ~ gcsecnt + (1 | lea/school)", False, {}),
    "slopes_two_levels": ("chem20", "score ~ gcsecnt + (1 + gcsecnt | lea) "
                          "+ (1 + gcsecnt | school)", False, {}),
    "uncorrelated": ("tutorial", "normexam ~ standlrt + (standlrt || school)", False, {}),
    "linear_one": ("tutorial", "normexam ~ standlrt + (standlrt | school)", False, {}),
    "singular": ("cohort", "normexam ~ standlrt + (1 | school) + (1 | cohort)", False, {}),
}


@pytest.fixture(scope="module")
def fits():
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, (data, formula, reml, _) in MODELS.items():
            out[key] = mlm.fit_mixedlm(formula, _data(data), reml=reml)
        out["logit_one"] = mlm.fit_logit_mixed("use ~ age + urban + (1 | district)",
                                               _data("contraception"))
    return out


def _cov(m, grp, var1, var2):
    cov = m.random_terms[grp].cov
    return float(cov.loc[var1, var2 if isinstance(var2, str) else var1])


@pytest.mark.parametrize("key", list(MODELS) + ["logit_one"])
def test_agrees_with_lme4(fits, key):
    ref, m = REF[key], fits[key]
    names = {"(Intercept)": "Intercept", "urbanY": "urban[T.Y]", "sexF": "sex[T.F]"}
    assert m.llf == pytest.approx(ref["logLik"], abs=1e-3)
    for term, value in ref["fixef"].items():
        ours = names.get(term, term)
        assert m.fe_params[ours] == pytest.approx(value, rel=REL, abs=1e-6), term
        assert m.bse[ours] == pytest.approx(ref["se"][term], rel=REL), term
    for row in ref["varcorr"]:
        if row["grp"] == "Residual":
            assert m.scale == pytest.approx(row["vcov"], rel=REL)
            continue
        ours = _cov(m, row["grp"], row["var1"], row.get("var2"))
        assert ours == pytest.approx(row["vcov"], rel=REL, abs=1e-6), row
    assert m.nobs == ref["nobs"]


def test_varcorr_names_and_order_as_lme4(fits):
    for key in ("crossed", "nested", "uncorrelated", "slopes_two_levels"):
        ref = [(r["grp"], r.get("var1")) for r in REF[key]["varcorr"]
               if r["grp"] == "Residual" or "var2" not in r]
        table = mlm.random_effects(fits[key])
        ours = [(g, n if g != "Residual" else None) for g, n in zip(table["Groups"],
                                                                       table["Name"])]
        assert [g for g, _ in ours] == [g for g, _ in ref]
        assert [n for _, n in ours[:-1]] == [n for _, n in ref[:-1]]
    # the two blocks of (standlrt || school) are one grouping factor, as lme4's ngrps()
    assert fits["uncorrelated"].ngrps.to_dict() == {"school": 65}
    assert fits["uncorrelated"].random_terms.names == ["school", "school.1"]
    assert "groups:  school, 65\n" in mlm.summary(fits["uncorrelated"])


def test_lme4_syntax_for_one_factor_is_the_same_fit():
    exam = mlm.load_dataset("tutorial")
    a = mlm.fit_mixedlm("normexam ~ standlrt + (standlrt | school)", exam)
    b = mlm.fit_mixedlm("normexam ~ standlrt", exam, groups="school", re_formula="1 + standlrt")
    assert type(a) is type(b) and a.llf == b.llf
    pd.testing.assert_series_equal(a.fe_params, b.fe_params)
    c = mlm.fit_mixedlm("normexam ~ standlrt + (0 + standlrt | school)", exam)
    assert list(c.re_names) == ["standlrt"]
    contra = mlm.load_dataset("contraception")
    g = mlm.fit_logit_mixed("use ~ age + urban + (1 | district)", contra)
    assert "(1 | district)" in mlm.summary(g)


def test_tables_for_several_factors(fits):
    m = fits["nested"]
    share = mlm.vpc(m)
    vc = {r["grp"]: r["vcov"] for r in REF["nested"]["varcorr"]}
    total = sum(vc.values())
    assert list(share.index) == ["school:lea", "lea", "Residual"]
    for grp, v in vc.items():
        assert share[grp] == pytest.approx(v / total, rel=REL)
    ge = mlm.group_effects(m)
    assert list(ge.columns[:3]) == ["factor", "group", "term"]
    assert ge.groupby("factor").size().to_dict() == {"lea": 131, "school:lea": 2410}
    assert m.ngrps.to_dict() == {"school:lea": 2410, "lea": 131}
    with pytest.raises(AttributeError, match=r"random_terms\['lea'\]\.cov"):
        m.cov_re  # noqa: B018
    text = mlm.summary(m)
    assert "school:lea, 2410; lea, 131" in text
    assert "Formula: score ~ gcsecnt + (1 | lea/school)" in text
    assert m.fittedvalues.shape == (31022,)
    assert np.isfinite(m.resid).all()
    chem = mlm.load_dataset("chem97").head(3)
    fixed = m.predict(chem, include_random=False)
    expected = m.fe_params["Intercept"] + m.fe_params["gcsecnt"] * chem["gcsecnt"]
    np.testing.assert_allclose(fixed.to_numpy(), expected.to_numpy())
    # with each pupil's school and LEA effects (new data with the grouping columns)
    both = m.predict(chem)
    np.testing.assert_allclose(both.to_numpy(), m.fittedvalues.iloc[:3].to_numpy())
    # the fitted values add each pupil's school and LEA effects
    row = mlm.load_dataset("chem97").iloc[0]
    by_hand = (m.fe_params["Intercept"] + m.fe_params["gcsecnt"] * row["gcsecnt"]
               + m.random_terms["lea"].ranef.loc[row["lea"], "(Intercept)"]
               + m.random_terms["school:lea"].ranef.loc[f"{row['school']}:{row['lea']}",
                                                        "(Intercept)"])
    assert m.fittedvalues.iloc[0] == pytest.approx(by_hand)


def test_lr_test_across_random_structures(fits):
    chem = mlm.load_dataset("chem97")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m0 = mlm.fit_mixedlm("score ~ gcsecnt + (1 | school)", chem)
    lr = mlm.lr_test(m0, fits["nested"])
    assert lr.df == 1
    assert lr.statistic == pytest.approx(2 * (REF["nested"]["logLik"] - m0.llf), abs=2e-3)
    table = mlm.compare_models(m0, fits["nested"])
    assert list(table["npar"]) == [4, 5]


@pytest.mark.parametrize("formula, expected", [
    ("y ~ x + (1 | g)", ("y ~ x", [("g", "1")])),
    ("y ~ (x | g)", ("y ~ 1", [("g", "1 + x")])),
    ("y ~ (0 + x | g)", ("y ~ 1", [("g", "0 + x")])),
    ("y ~ x + (1 + x || g)", ("y ~ x", [("g", "1"), ("g", "0 + x")])),
    ("y ~ (1 | a/b)", ("y ~ 1", [("a", "1"), ("b:a", "1")])),
    ("y ~ z + (1 | a:b) + (1 | c)", ("y ~ z", [("a:b", "1"), ("c", "1")])),
])
def test_parser(formula, expected):
    spec = model_spec("f", formula)
    assert (spec.fixed, [(t.group, t.rhs) for t in spec.random]) == expected


@pytest.mark.parametrize("kwargs, expected", [
    (dict(groups="g"), [("g", "1")]),
    (dict(groups="g", re_formula="1 + x"), [("g", "1 + x")]),
    (dict(groups="g", re_formula="~ 0 + x"), [("g", "0 + x")]),
])
def test_groups_and_re_formula_become_the_same_terms(kwargs, expected):
    spec = model_spec("f", "y ~ x", **kwargs)
    assert spec.fixed == "y ~ x"
    assert [(t.group, t.rhs) for t in spec.random] == expected


@pytest.mark.parametrize("fit, formula, kwargs, pattern", [
    ("fit_mixedlm", "normexam ~ standlrt + (log(standlrt) | school)", {},
     "is not a covariate name.*supported are"),
    ("fit_mixedlm", "normexam ~ standlrt + standlrt | school", {}, "in parentheses"),
    ("fit_mixedlm", "normexam ~ offset(standlrt) + (1 | school)", {}, "offset"),
    ("fit_mixedlm", "normexam ~ standlrt + (1 | school)", {"groups": "school"},
     "leave out `groups`"),
    ("fit_mixedlm", "normexam ~ standlrt", {}, r"no random part.*\(1 \| school\)"),
    ("fit_logit_mixed", "use ~ age + (1 | district) + (1 | livch)", {"nagq": 25},
     r"nagq=25 .*only for a model with one scalar random term"),
    ("fit_logit_mixed", "use ~ age + (age | district)", {"nagq": 5},
     r"one scalar random term.*district: \(Intercept\) \+ age"),
])
def test_unsupported_terms_get_a_clear_error(fit, formula, kwargs, pattern):
    data = mlm.load_dataset("tutorial" if fit == "fit_mixedlm" else "contraception")
    with pytest.raises((ValueError, TypeError), match=pattern):
        getattr(mlm, fit)(formula, data, **kwargs)


def test_unknown_column_in_random_part():
    exam = mlm.load_dataset("tutorial")
    with pytest.raises(mlm.ColumnNotFoundError, match="Did you mean 'school'"):
        mlm.fit_mixedlm("normexam ~ 1 + (1 | schol) + (1 | vrband)", exam)


def test_group_effects_and_their_se_agree_with_lme4(fits):
    m = fits["crossed"]
    for factor, ref in REF["crossed"]["ranef"].items():
        ours = m.random_terms[factor].ranef["(Intercept)"]
        se = m.random_terms[factor].ranef_se["(Intercept)"]
        assert [str(v) for v in ours.index] == ref["level"]
        np.testing.assert_allclose(ours.to_numpy(), ref["u"], rtol=REL, atol=1e-5)
        np.testing.assert_allclose(se.to_numpy(), ref["se"], rtol=REL)


def test_singular_fit_warning_names_the_factor():
    assert REF["singular"]["singular"] is True
    with pytest.warns(mlm.SingularFitWarning, match=r"random effects of cohort is singular "
                      r"\(Var\(cohort: \(Intercept\)\) = 0\).*lr_test"):
        m = mlm.fit_mixedlm(MODELS["singular"][1], _data("cohort"))
    assert m.singular and m.random_terms["cohort"].cov.iloc[0, 0] == 0.0
    assert m.optinfo.boundary_checked
    assert "boundary (singular) fit" in mlm.summary(m)
    assert not REF["crossed"]["singular"]


def test_plots_of_a_model_with_several_factors():
    """plot_caterpillar draws one factor at a time; the one-factor plots say so clearly."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chem = mlm.load_dataset("chem97")
    m = mlm.fit_mixedlm("score ~ gcsecnt + (1 | lea/school)", chem)
    ax = mlm.plot_caterpillar(m, factor="lea")
    assert ax.get_xlabel().startswith("lea ")
    n_lea = chem["lea"].nunique()
    assert len(ax.lines[0].get_xdata()) == n_lea
    ax = mlm.plot_caterpillar(m)  # the first factor, as VarCorr lists it
    assert ax.get_xlabel().split(" ")[0] in {"lea", "school:lea"}
    with pytest.raises(ValueError, match="factor='school'"):
        mlm.plot_caterpillar(m, factor="school")
    axes = mlm.plot_residuals(m)  # the level-2 panel: one series per factor
    assert len(axes[0].get_legend().get_texts()) == 2
    with pytest.raises(TypeError, match="one grouping factor"):
        mlm.plot_group_lines(m, "gcsecnt")
    plt.close("all")
