"""One results model for both fitters: same names, same tables, same conventions.

Reference values: tests/fixtures/lme4_reference.json (lme4 1.1-31).
"""

from __future__ import annotations

import doctest
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mlmhelpers as mlm
from mlmhelpers import _format
from mlmhelpers import results as results_module


@pytest.fixture(scope="module")
def exam():
    return mlm.load_dataset("tutorial")


@pytest.fixture(scope="module")
def contra():
    return mlm.load_dataset("contraception")


@pytest.fixture(scope="module")
def linear(exam):
    return mlm.fit_mixedlm("normexam ~ standlrt + schgend", exam, groups="school",
                           re_formula="1 + standlrt")


@pytest.fixture(scope="module")
def logistic(contra):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-0/all-1 districts
        return mlm.fit_logit_mixed("use ~ age + urban", contra, groups="district")


def test_both_fitters_return_the_librarys_results(linear, logistic):
    assert type(linear) is mlm.LinearMixedResults
    assert isinstance(linear, mlm.MixedResults) and isinstance(logistic, mlm.MixedResults)
    for name in ("params", "fe_params", "bse", "bse_fe", "tvalues", "pvalues", "llf", "aic",
                 "bic", "cov_re", "ranef", "ranef_se", "warnings", "singular", "nobs",
                 "ngroups", "re_blocks"):
        assert hasattr(linear, name) and hasattr(logistic, name), name
    assert linear.re_blocks == [("school", ["(Intercept)", "standlrt"])]
    assert logistic.re_blocks == [("district", ["(Intercept)"])]


def test_linear_attributes_against_lme4(linear, lme4_reference):
    ref = lme4_reference["exam_m4"]
    assert linear.llf == pytest.approx(ref["logLik"], abs=1e-3)
    assert linear.aic == pytest.approx(ref["AIC"], abs=0.01)
    assert linear.bse["standlrt"] == pytest.approx(ref["se"]["standLRT"], rel=1e-3)
    resid = [r["vcov"] for r in ref["varcorr"] if r["grp"] == "Residual"][0]
    assert linear.scale == pytest.approx(resid, rel=1e-3)
    slope = [r["vcov"] for r in ref["varcorr"] if r.get("var1") == "standLRT"
             and "var2" not in r][0]
    assert linear.cov_re.loc["standlrt", "standlrt"] == pytest.approx(slope, rel=1e-3)
    assert linear.k_params == 8 and linear.df_resid == 4051
    assert linear.params["Var(school: standlrt)"] == pytest.approx(slope, rel=1e-3)
    assert linear.ranef.shape == (65, 2) and linear.ranef_se.shape == (65, 2)
    assert not linear.singular and linear.warnings == []


@pytest.mark.parametrize("kind", ["linear", "logistic"])
def test_functions_and_methods_give_identical_output(kind, request):
    m = request.getfixturevalue(kind)
    assert str(mlm.summary(m)) == str(m.summary())
    pd.testing.assert_frame_equal(mlm.fixed_effects(m), m.fixed_effects())
    pd.testing.assert_frame_equal(mlm.random_effects(m), m.varcorr())
    pd.testing.assert_frame_equal(mlm.group_effects(m, alpha=0.1), m.group_effects(alpha=0.1))


def test_a_statsmodels_fit_reads_like_ours(exam):
    """The same model fitted by statsmodels itself gives the same tables."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    ours = mlm.fit_mixedlm("normexam ~ standlrt", exam, groups="school")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = MixedLM.from_formula("normexam ~ standlrt", exam, groups="school").fit(
            reml=False, method="bfgs", gtol=1e-10)
    pd.testing.assert_frame_equal(mlm.fixed_effects(sm), mlm.fixed_effects(ours), rtol=1e-4)
    pd.testing.assert_frame_equal(mlm.random_effects(sm), mlm.random_effects(ours), rtol=1e-4)
    assert mlm.summary(sm).splitlines()[:12] == mlm.summary(ours).splitlines()[:12]


@pytest.mark.parametrize("kind", ["linear", "logistic"])
def test_conf_int_shape_and_alpha(kind, request):
    m = request.getfixturevalue(kind)
    ci = m.conf_int()
    assert list(ci.columns) == ["lower", "upper"] and list(ci.index) == m.exog_names
    z = stats.norm.ppf(0.95)
    ci90 = m.conf_int(alpha=0.1)
    np.testing.assert_allclose(ci90["upper"] - m.fe_params, z * m.bse, rtol=1e-12)
    assert (ci90["upper"] - ci90["lower"] < ci["upper"] - ci["lower"]).all()
    with pytest.raises(ValueError, match=r"alpha must be between 0 and 1"):
        m.conf_int(alpha=95)
    ge = m.group_effects(alpha=0.1)
    np.testing.assert_allclose(ge["upper"] - ge["effect"], z * ge["se"], rtol=1e-12)


def test_correlation_labels_are_the_same_for_both_kinds(linear, logistic):
    # R's names with the level appended, cut to 6 characters, for either fitter
    for m, label in ((linear, "schgen"), (logistic, "urbanY")):
        lines = m.summary().splitlines()
        i = lines.index("Correlation of Fixed Effects:")
        assert lines[i + 1].split()[:2] == ["(Intr)", label]
        assert "[" not in lines[i + 1]


def test_linear_predict_new_data(linear, exam):
    levels = exam["schgend"].cat.categories
    new = pd.DataFrame({"standlrt": [0.0, 1.0], "school": [1, 999],
                        "schgend": pd.Categorical([levels[0]] * 2, categories=levels)})
    b = linear.fe_params
    pop = linear.predict(new, include_random=False)
    np.testing.assert_allclose(pop, [b["Intercept"], b["Intercept"] + b["standlrt"]])
    with pytest.warns(UserWarning, match=r"1 of 2 rows belong to school groups not in the fit"):
        cond = linear.predict(new)
    assert cond.iloc[0] == pytest.approx(pop.iloc[0] + linear.ranef.loc[1, "(Intercept)"])
    assert cond.iloc[1] == pytest.approx(pop.iloc[1])
    np.testing.assert_allclose(linear.predict(), linear.fittedvalues)


# --- p-values as R prints them -------------------------------------------------------

@pytest.mark.parametrize("p, kwargs, text", [
    (0.0, {}, "< 2e-16"),
    (1e-300, {}, "< 2e-16"),
    (3.3351e-10, dict(digits=4), "3.335e-10"),
    (0.0123456, {}, "0.0123"),
    (0.5, {}, "0.5"),
    (0.0952, {}, "0.0952"),
    (0.00004, dict(decimals=3), "< 0.001"),
    (0.0004, dict(decimals=4), "0.0004"),
    (0.0, dict(decimals=4), "< 0.0001"),
    (0.04567, dict(decimals=3), "0.046"),
    (float("nan"), {}, "NA"),
])
def test_format_p_like_r(p, kwargs, text):
    assert _format.format_p(p, **kwargs) == text


def test_no_p_value_prints_as_zero(exam, logistic):
    text = str(logistic.summary())
    assert "Pr(>|z|)" in text and "< 2e-16 ***" in text  # the intercept: z = -8.3
    m2 = mlm.fit_mixedlm("normexam ~ standlrt", exam, groups="school")
    single = __import__("statsmodels.formula.api", fromlist=["ols"]).ols(
        "normexam ~ standlrt", exam).fit()
    test = mlm.lr_test(single, m2)
    assert test.pvalue < 1e-80
    assert "p < 2e-16" in str(test) and "= 0\n" not in str(test) + "\n"
    for line in str(test).splitlines() + text.splitlines():
        assert not re.search(r"(^|\s)0(\.0+)?$", line), line


def test_rounded_tables_never_show_a_zero_p_value(exam, logistic):
    fe = mlm.fixed_effects(logistic)
    assert fe.loc["Intercept", "Pr(>|z|)"] < 1e-10  # numbers stay numbers
    rounded = fe.round({"Estimate": 4, "Pr(>|z|)": 4})
    assert rounded.loc["Intercept", "Pr(>|z|)"] == "< 0.0001"
    assert rounded.loc["age", "Pr(>|z|)"] == f"{fe.loc['age', 'Pr(>|z|)']:.4f}"
    assert rounded.loc["age", "Estimate"] == round(fe.loc["age", "Estimate"], 4)
    assert "0.0000" not in fe.round(4).to_string()
    m1 = mlm.fit_mixedlm("normexam ~ 1", exam, groups="school")
    m2 = mlm.fit_mixedlm("normexam ~ standlrt", exam, groups="school")
    table = mlm.compare_models(m1, m2).round(3)
    assert table["Pr(>Chisq)"].tolist()[1] == "< 0.001"
    assert np.isnan(table["Pr(>Chisq)"].tolist()[0])


# --- one data preparation, one set of conventions --------------------------------------

@pytest.mark.parametrize("fit, data_name, groups, formula", [
    (mlm.fit_mixedlm, "tutorial", "school", "normexam ~ standlrt"),
    (mlm.fit_logit_mixed, "contraception", "district", "use ~ age"),
])
def test_both_fitters_share_conventions(fit, data_name, groups, formula):
    data = mlm.load_dataset(data_name)
    name = fit.__name__
    with pytest.raises(mlm.ColumnNotFoundError, match=rf"^{name}: groups='schul' is not a "
                                                      r"column of `data`"):
        fit(formula, data, groups="schul")
    with pytest.raises(TypeError, match=rf"^{name}: `groups` must be the name of a column"):
        fit(formula, data, groups=[groups])
    with pytest.raises(ValueError, match=rf"^{name}: the formula has random terms"):
        fit(formula + f" + (1 | {groups})", data, groups=groups)
    with pytest.raises(TypeError, match=rf"^{name}: the formula comes first"):
        fit(data, formula, groups=groups)
    # arguments after `data` are named: a positional one gets an error saying so
    with pytest.raises(TypeError, match=rf"^{name}: write the arguments after `data` with "
                                        rf"their names, e.g. {name}\(formula, data, "
                                        rf"groups='{groups}'\)"):
        fit(formula, data, groups)
    # missing values anywhere the model looks (outcome included): dropped, with a warning
    response = formula.split("~")[0].strip()
    holes = data.copy()
    holes[response] = holes[response].astype(float)
    holes.loc[[0, 1], response] = np.nan
    holes.loc[2, groups] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = fit(formula, holes, groups=groups)
    expected = (f"{name}: dropped 3 of {len(data)} rows with missing values in {response}, "
                f"{groups}; the model uses the remaining {len(data) - 3} rows.")
    assert expected in [str(w.message) for w in caught]
    # the warning names the student's line, not the library's
    assert {w.filename for w in caught if str(w.message) == expected} == {__file__}
    assert m.nobs == len(data) - 3 and not {0, 1, 2} & set(m.rows)


def test_docstring_examples_run():
    for module in (results_module, _format):
        failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert tried > 0 and failures == 0, module.__name__
