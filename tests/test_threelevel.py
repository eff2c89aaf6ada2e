"""The three-level model of lecture 07 (pupils in schools in LEAs) agrees with lme4.

Lecture 07 fits ``score ~ gcsecnt`` on chem97 with a random intercept for each LEA
and, nested inside, one for each school, the way statsmodels expresses nesting:
``groups="lea"`` plus a variance component ``vc_formula={"school": "0 + C(school)"}``.
The reference values come from ``lmer(score ~ gcsecnt + (1 | lea/school), Chem97,
REML = FALSE)``; see tests/fixtures/lme4_threelevel.json.
"""

from __future__ import annotations

import json

import pytest
import statsmodels.formula.api as smf

import mlmhelpers as mlm
from conftest import FIXTURES


@pytest.fixture(scope="module")
def reference():
    with open(FIXTURES / "lme4_threelevel.json") as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def fit():
    chem = mlm.load_dataset("chem97")
    model = smf.mixedlm(
        "score ~ gcsecnt",
        chem,
        groups="lea",
        re_formula="1",
        vc_formula={"school": "0 + C(school)"},
    )
    # The same call as in course/07-going-further.ipynb: the LEA variance sits on a
    # flat stretch of the likelihood, so the gradient tolerance must be tight.
    return model.fit(reml=False, method=["bfgs"], gtol=1e-10)


def _variance(reference, grp):
    return next(row["vcov"] for row in reference["varcorr"] if row["grp"] == grp)


def test_fit_converged_on_all_pupils(fit, reference):
    assert fit.converged
    assert fit.nobs == reference["nobs"]


@pytest.mark.parametrize(
    "grp, ours",
    [
        ("lea", lambda r: r.cov_re.iloc[0, 0]),
        ("school:lea", lambda r: r.vcomp[0]),
        ("Residual", lambda r: r.scale),
    ],
)
def test_variances_agree_with_lme4(fit, reference, grp, ours):
    expected = _variance(reference, grp)
    assert ours(fit) == pytest.approx(expected, rel=1e-3)


def test_loglik_agrees_with_lme4(fit, reference):
    assert fit.llf == pytest.approx(reference["logLik"], abs=1e-3)


def test_fixed_effects_agree_with_lme4(fit, reference):
    assert fit.fe_params["Intercept"] == pytest.approx(reference["fixef"]["(Intercept)"], rel=1e-4)
    assert fit.fe_params["gcsecnt"] == pytest.approx(reference["fixef"]["gcsecnt"], rel=1e-4)
