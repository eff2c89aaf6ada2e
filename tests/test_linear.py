"""fit_mixedlm against lme4 (tests/fixtures/lme4_reference.json) and its input checks."""

from __future__ import annotations

import doctest
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlmhelpers
from mlmhelpers import fit_mixedlm, load_dataset
from mlmhelpers import linear as linear_module
from mlmhelpers.linear import SingularFitWarning

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# lme4 term names (mlmRev data) -> our names (patsy, course data)
TERM = {
    "(Intercept)": "Intercept",
    "standLRT": "standlrt",
    "schgendboys": "schgend[T.boysch]",
    "schgendgirls": "schgend[T.girlsch]",
    "gcsescore": "gcsescore",
    "gcse_z": "gcse_z",
    "genderF": "gender[T.F]",
}
RE_TERM = {"(Intercept)": "(Intercept)", "standLRT": "standlrt", "gcse_z": "gcse_z"}

# key -> (data set, formula, re_formula), shared with benchmarks/bench_linear.py
with open(FIXTURES / "linear_reference_models.json") as _fh:
    SPECS = {k: (v["data"], v["formula"], v["re_formula"])
             for k, v in json.load(_fh)["models"].items()}

REL = 1e-3


@pytest.fixture(scope="module")
def data():
    chem = load_dataset("chem97")
    # as in the R call: gcse_z = as.vector(scale(gcsescore)) (sample SD)
    chem["gcse_z"] = (chem["gcsescore"] - chem["gcsescore"].mean()) / chem["gcsescore"].std()
    return {"tutorial": load_dataset("tutorial"), "chem97": chem}


@pytest.fixture(scope="module")
def fits(data):
    """Each reference model fitted once (the chem97 fits are the slow part)."""
    out = {}
    for key, (name, formula, re_formula) in SPECS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error", SingularFitWarning)
            out[key] = fit_mixedlm(formula, data[name], groups="school", re_formula=re_formula)
    return out


@pytest.fixture(scope="module")
def ref(lme4_reference):
    return lme4_reference


@pytest.mark.parametrize("key", list(SPECS))
def test_fixed_effects_and_lme4_standard_errors(key, fits, ref):
    res = fits[key]
    table = mlmhelpers.fixed_effects(res)
    for r_name, value in ref[key]["fixef"].items():
        assert table.loc[TERM[r_name], "Estimate"] == pytest.approx(value, rel=REL, abs=1e-6)
    for r_name, value in ref[key]["se"].items():
        assert table.loc[TERM[r_name], "Std. Error"] == pytest.approx(value, rel=REL)
    # statsmodels' own accessor carries lme4's covariance of the fixed effects too
    assert np.asarray(res.bse_fe) == pytest.approx(table["Std. Error"].to_numpy(), rel=1e-10)


@pytest.mark.parametrize("key", list(SPECS))
def test_variances_and_correlation(key, fits, ref):
    table = mlmhelpers.random_effects(fits[key])
    for row in ref[key]["varcorr"]:
        if row["grp"] == "Residual":
            got = table.loc[table["Groups"] == "Residual", "Variance"].item()
            assert got == pytest.approx(row["vcov"], rel=REL)
        elif "var2" in row:  # covariance row: sdcor is the correlation
            got = table.loc[table["Name"] == RE_TERM[row["var2"]], "Corr"].item()
            assert got == pytest.approx(row["sdcor"], rel=REL)
        else:
            got = table.loc[table["Name"] == RE_TERM[row["var1"]], "Variance"].item()
            assert got == pytest.approx(row["vcov"], rel=REL)
            sd = table.loc[table["Name"] == RE_TERM[row["var1"]], "Std.Dev."].item()
            assert sd == pytest.approx(row["sdcor"], rel=REL)


@pytest.mark.parametrize("key", list(SPECS))
def test_loglik_aic_bic_nobs(key, fits, ref):
    res, r = fits[key], ref[key]
    assert res.llf == pytest.approx(r["logLik"], abs=1e-3)
    # lme4 prints AIC/BIC with one decimal in summary(); ours agree far closer
    assert abs(res.aic - r["AIC"]) < 0.01
    assert abs(res.bic - r["BIC"]) < 0.01
    assert res.nobs == r["nobs"]
    assert res.reml is False


def test_beats_statsmodels_default_on_the_empty_model(data, fits, ref):
    """The trap from the issue: statsmodels' default fit stops short on normexam ~ 1."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = MixedLM.from_formula("normexam ~ 1", data["tutorial"],
                                       groups="school").fit(reml=False)
    ours = fits["exam_m1"]
    assert ours.llf >= default.llf - 1e-9
    assert float(ours.cov_re.iloc[0, 0]) == pytest.approx(
        ref["exam_m1"]["varcorr"][0]["vcov"], rel=REL)


def test_reml_fit_matches_lme4_reml(data):
    with open(FIXTURES / "lme4_ranef.json") as fh:
        r = json.load(fh)["exam_m1_reml"]
    res = fit_mixedlm("normexam ~ 1", data["tutorial"], groups="school", reml=True)
    table = mlmhelpers.random_effects(res)
    assert table["Variance"].to_numpy() == pytest.approx(r["vcov"], rel=REL)
    assert -2 * res.llf == pytest.approx(r["REMLcrit"], abs=2e-3)
    assert res.reml is True


def test_result_is_the_librarys_class_with_statsmodels_behind_it(fits):
    from statsmodels.regression.mixed_linear_model import MixedLMResults

    res = fits["exam_m4"]
    assert type(res) is mlmhelpers.LinearMixedResults
    assert res.exog_names == ["Intercept", "schgend[T.boysch]", "schgend[T.girlsch]",
                              "standlrt"]
    # the statsmodels result is built on first use, at the same estimates
    sm = res.statsmodels
    assert isinstance(sm._results, MixedLMResults)
    assert res.statsmodels is sm
    assert list(sm.model.exog_names) == res.exog_names
    assert sm.llf == pytest.approx(res.llf, abs=1e-9)
    np.testing.assert_allclose(np.asarray(sm.fe_params), res.fe_params, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(sm.bse_fe), res.bse_fe, rtol=1e-10)
    # statsmodels' per-group dict agrees with the lme4 conditional modes
    ge = mlmhelpers.group_effects(res)
    first = ge[(ge["group"] == 1) & (ge["term"] == "(Intercept)")]["effect"].item()
    assert sm.random_effects[1].iloc[0] == pytest.approx(first, rel=1e-8)
    assert res.ranef.loc[1, "(Intercept)"] == pytest.approx(first, rel=1e-12)
    assert np.all(np.isfinite(res.fittedvalues))


def test_random_effects_attribute_is_not_a_trap(fits):
    # statsmodels' .random_effects (per-group effects) and mlm.random_effects()
    # (the variance table) share a name: the attribute explains instead
    with pytest.raises(AttributeError, match=r"mlm\.random_effects\(m\).*m\.ranef"):
        fits["exam_m1"].random_effects  # noqa: B018


def test_categorical_levels_and_pandas_string_columns(data):
    exam = data["tutorial"].copy()
    exam["sex_text"] = exam["sex"].astype(str)          # pandas 3 string dtype
    exam["school_text"] = "s" + exam["school"].astype(str)
    assert pd.api.types.is_string_dtype(exam["sex_text"])
    res = fit_mixedlm("normexam ~ sex_text", exam, groups="school_text")
    assert "sex_text[T.girl]" in res.exog_names
    cat = fit_mixedlm("normexam ~ sex", exam, groups="school")
    fe_text = mlmhelpers.fixed_effects(res)["Estimate"].to_numpy()
    fe_cat = mlmhelpers.fixed_effects(cat)["Estimate"].to_numpy()
    assert fe_text == pytest.approx(fe_cat, rel=1e-6)
    # the caller's data are not modified
    assert list(exam.columns)[-2:] == ["sex_text", "school_text"]


def test_missing_rows_are_dropped_with_a_message(data):
    exam = data["tutorial"].copy()
    exam.loc[[3, 10, 20], "standlrt"] = np.nan
    exam.loc[40, "normexam"] = np.nan
    with pytest.warns(UserWarning, match=r"dropped 4 of 4059 rows with missing values "
                                         r"in normexam, standlrt"):
        res = fit_mixedlm("normexam ~ standlrt", exam, groups="school")
    assert res.nobs == 4055
    info = mlmhelpers.tables._model_info(res)
    assert 3 not in info["rows"] and 40 not in info["rows"] and 4 in info["rows"]


def test_unused_missing_values_do_not_drop_rows(data):
    exam = data["tutorial"].copy()
    exam.loc[[1, 2], "avslrt"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fit_mixedlm("normexam ~ standlrt", exam, groups="school")
    assert res.nobs == 4059


def _singular_data():
    # y depends on x only: the school variance is estimated as exactly zero
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"g": np.repeat(np.arange(30), 10), "x": rng.normal(size=300)})
    d["y"] = d["x"] + rng.normal(size=300)
    return d


def test_singular_fit_warns_like_lme4():
    with pytest.warns(SingularFitWarning, match=r"boundary \(singular\) fit"):
        res = fit_mixedlm("y ~ x", _singular_data(), groups="g")
    table = mlmhelpers.random_effects(res)
    assert table.loc[0, "Variance"] == 0.0
    # the fit is then the single-level regression
    import statsmodels.formula.api as smf
    ols = smf.ols("y ~ x", _singular_data()).fit()
    assert res.llf == pytest.approx(ols.llf, abs=1e-6)
    assert np.isfinite(res.aic)
    assert "boundary (singular) fit" in mlmhelpers.summary(res)


def test_singular_random_slope_warns():
    # every group has exactly the same within-group slope: no slope variance
    rng = np.random.default_rng(3)
    x = np.array([-2.0, -1, 0, 1, 2, -1.5, 0.5, 1.0])
    x = x - x.mean()
    e = rng.normal(size=8)
    e = e - e.mean()
    e = e - (e @ x) / (x @ x) * x  # orthogonal to the intercept and to x
    d = pd.DataFrame({"g": np.repeat(np.arange(40), 8), "x": np.tile(x, 40)})
    d["y"] = np.repeat(rng.normal(size=40), 8) + d["x"] + np.tile(e, 40)
    with pytest.warns(SingularFitWarning, match=r"boundary \(singular\) fit.*Var\(g: x\) = 0"):
        res = fit_mixedlm("y ~ x", d, groups="g", re_formula="1 + x")
    table = mlmhelpers.random_effects(res)
    assert table.loc[1, "Variance"] == 0.0
    assert table.loc[0, "Variance"] > 0.1


def test_no_warning_on_a_regular_fit(data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_mixedlm("normexam ~ standlrt", data["tutorial"], groups="school")


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(formula="normexam ~ standlrtt"), KeyError,
         r"'standlrtt' in formula .* is not a column of `data`\. Did you mean 'standlrt'"),
        (dict(groups="schol"), KeyError,
         r"groups='schol' is not a column of `data`\. Did you mean 'school'"),
        (dict(groups=["school"]), TypeError, r"`groups` must be the name of a column"),
        (dict(re_formula="1 + standlrtt"), KeyError, r"'standlrtt' in re_formula"),
        (dict(re_formula=2), TypeError, r"`re_formula` must be a string"),
        (dict(reml="no"), TypeError, r"`reml` must be True or False"),
        (dict(reml=1), TypeError, r"`reml` must be True or False"),
        (dict(formula="sex ~ standlrt"), TypeError,
         r"the response 'sex' must be numeric.*fit_logit_mixed"),
        (dict(formula="normexam ~ standlrt + (1 | school)"), ValueError,
         r"has random terms .*so leave out `groups`"),
        (dict(formula="normexam standlrt"), ValueError, r"`formula` must be a string such as"),
        (dict(formula="~ standlrt"), ValueError, r"the formula has no response"),
        (dict(formula="normexam ~ "), ValueError, r"nothing right of '~'.*'normexam ~ 1'"),
        (dict(formula="normexam ~ standlrt + standlrt2"), KeyError, r"'standlrt2'"),
    ],
)
def test_bad_input_gets_a_clear_error(data, kwargs, exc, pattern):
    args = dict(formula="normexam ~ standlrt", data=data["tutorial"], groups="school")
    args.update(kwargs)
    with pytest.raises(exc, match=pattern):
        fit_mixedlm(**args)


def test_a_name_in_the_index_gets_a_reset_index_hint(data):
    indexed = data["tutorial"].set_index("school")
    with pytest.raises(KeyError, match=r"'school' is the index of `data`.*reset_index\(\)"):
        fit_mixedlm("normexam ~ standlrt", indexed, groups="school")
    with pytest.raises(KeyError, match=r"'standlrt' is the index of `data`"):
        fit_mixedlm("normexam ~ standlrt", data["tutorial"].set_index("standlrt"),
                    groups="school")


def test_swapped_formula_and_data_get_the_right_order(data):
    with pytest.raises(TypeError, match=r"formula comes first.*fit_mixedlm\('normexam ~ 1', data"):
        fit_mixedlm(data["tutorial"], "normexam ~ 1", groups="school")


def test_data_must_be_a_dataframe(data):
    with pytest.raises(TypeError, match=r"`data` must be a pandas DataFrame"):
        fit_mixedlm("normexam ~ 1", data["tutorial"].to_dict("list"), groups="school")


def test_a_single_group_is_refused(data):
    one = data["tutorial"][data["tutorial"]["school"] == 1]
    with pytest.raises(ValueError, match=r"has only one value.*ols\(\)"):
        fit_mixedlm("normexam ~ 1", one, groups="school")


def test_one_row_per_group_is_refused_like_lme4(data):
    # lme4: "number of levels of each grouping factor must be < number of
    # observations"; without the check a meaningless variance came back
    exam = data["tutorial"].assign(pupil=range(len(data["tutorial"])))
    with pytest.raises(ValueError, match=r"4059 observations but 4059 groups of 'pupil'"):
        fit_mixedlm("normexam ~ standlrt", exam, groups="pupil")
    # lme4: "number of observations (=4) <= number of random effects (=4)"
    tiny = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.5], "x": [0.0, 1.0, 0.0, 1.0],
                         "g": [1, 1, 2, 2]})
    with pytest.raises(ValueError, match=r"2 groups of 'g' x 2 random terms.*re_formula=None"):
        fit_mixedlm("y ~ x", tiny, groups="g", re_formula="1 + x")


def test_constant_response_is_refused(data):
    exam = data["tutorial"].assign(const=1.0)
    with pytest.raises(ValueError, match=r"response 'const' has the same value \(1\)"):
        fit_mixedlm("const ~ standlrt", exam, groups="school")


def test_keyword_column_names_need_q(data):
    exam = data["tutorial"].assign(**{"pass": (data["tutorial"]["normexam"] > 0).astype(float)})
    with pytest.raises(ValueError, match=r"'pass' in formula is a Python keyword.*Q\('pass'\)"):
        fit_mixedlm("pass ~ standlrt", exam, groups="school")
    res = fit_mixedlm('Q("pass") ~ standlrt', exam, groups="school")
    assert res.nobs == 4059


def test_unused_categories_after_filtering_are_dropped_like_r(data):
    # filtering out every girls' school leaves schgend with an empty level;
    # R's model.frame drops it, and so must we (it was a rank-deficiency error)
    exam = data["tutorial"]
    boys_mixed = exam[exam["schgend"] != "girlsch"]
    res = fit_mixedlm("normexam ~ standlrt + schgend", boys_mixed, groups="school")
    assert res.exog_names == ["Intercept", "schgend[T.boysch]", "standlrt"]
    explicit = boys_mixed.assign(schgend=boys_mixed["schgend"].cat.remove_unused_categories())
    ref = fit_mixedlm("normexam ~ standlrt + schgend", explicit, groups="school")
    assert res.llf == pytest.approx(ref.llf, abs=1e-9)
    np.testing.assert_allclose(res.fe_params, ref.fe_params, rtol=1e-9)


def test_collinear_terms_are_refused(data):
    exam = data["tutorial"].copy()
    exam["twice"] = 2 * exam["standlrt"]
    with pytest.raises(ValueError, match=r"rank deficient.*twice"):
        fit_mixedlm("normexam ~ standlrt + twice", exam, groups="school")


def test_formula_functions_are_allowed(data):
    res = fit_mixedlm("normexam ~ np.exp(standlrt / 10) + C(vrband)", data["tutorial"],
                      groups="school")
    assert "C(vrband)[T.top 25%]" in res.exog_names


def test_tilde_in_re_formula_is_accepted(data, fits):
    res = fit_mixedlm("normexam ~ standlrt + schgend", data["tutorial"], groups="school",
                      re_formula="~ standlrt")
    assert res.llf == pytest.approx(fits["exam_m4"].llf, abs=1e-6)


def test_docstring_examples_run():
    failures, tried = doctest.testmod(linear_module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0


def test_deviance_helper_matches_llf(fits):
    """The profiled deviance at the optimum is -2 logLik (lme4's definition)."""
    from mlmhelpers import _lmm

    res = fits["exam_m3"]
    cp = _lmm.DenseDeviance.from_arrays(res._y, res._X, res._Z, res._codes, res.ngroups)
    dev, grad = cp.deviance_and_gradient(res.theta)
    assert dev == pytest.approx(-2 * res.llf, abs=1e-8)
    assert math.isfinite(dev)
    # the optimum: the gradient (analytic) is zero there
    assert np.max(np.abs(grad)) < 1e-3


@pytest.mark.parametrize("reml", [False, True])
def test_analytic_gradient_matches_finite_differences(data, reml):
    from mlmhelpers import _lmm

    res = fit_mixedlm("normexam ~ standlrt", data["tutorial"], groups="school",
                      re_formula="1 + standlrt")
    cp = _lmm.DenseDeviance.from_arrays(res._y, res._X, res._Z, res._codes, res.ngroups,
                                        reml=reml)
    theta = np.array([0.5, 0.1, 0.2])
    _, grad = cp.deviance_and_gradient(theta)
    h = 1e-6
    numeric = [(cp.deviance(theta + e) - cp.deviance(theta - e)) / (2 * h)
               for e in np.eye(3) * h]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-4)


def test_few_deviance_evaluations(fits):
    # the analytic gradient: a few dozen evaluations, not the ~1,000 of the
    # derivative-free search this replaced
    for key in ("exam_m1", "exam_m4", "chem_c2"):
        assert fits[key].optinfo.evaluations < 150, key
        assert fits[key].optinfo.gradient < 1e-3, key
        assert not fits[key].optinfo.boundary_checked, key  # no restarts away from it


def test_keyword_argument_in_formula_is_not_a_column():
    """Treatment(reference="F") names a parameter, not a column of the data."""
    chem = load_dataset("chem97")
    m = fit_mixedlm('score ~ C(gender, Treatment(reference="F"))', chem, groups="school")
    term = 'C(gender, Treatment(reference="F"))[T.M]'
    m_default = fit_mixedlm("score ~ gender", chem, groups="school")
    # mlmRev orders the levels M, F: the default reference is M, so the
    # contrast with F as reference is the same number with the sign turned
    assert abs(m.fe_params[term] + m_default.fe_params["gender[T.F]"]) < 1e-6
