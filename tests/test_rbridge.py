"""The R bridge (course/r-bridge.md) and the glossary (course/glossary.md).

* Every ```python block of the bridge runs, top to bottom in one namespace, and
  the models it fits give lme4's numbers (tests/fixtures/lme4_reference.json).
* Every `mlm.<name>` the bridge mentions exists in the helper library.
* The bridge covers the R functions students bring with them, the glossary the
  course's terms, and the landing page links both.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest
from scipy import special

import mlmhelpers as mlm

REPO = Path(__file__).resolve().parents[1]
BRIDGE = REPO / "course" / "r-bridge.md"
GLOSSARY = REPO / "course" / "glossary.md"
LME4 = json.loads((REPO / "tests" / "fixtures" / "lme4_reference.json").read_text())


def _python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.fixture(scope="module")
def bridge():
    """The namespace left by running every Python block of the bridge in order."""
    import matplotlib

    matplotlib.use("Agg")
    namespace: dict = {}
    blocks = _python_blocks(BRIDGE.read_text())
    assert len(blocks) >= 5
    with warnings.catch_warnings():
        # no block should warn; a warning would not fail the bridge's numbers
        warnings.simplefilter("ignore", UserWarning)
        for number, block in enumerate(blocks, 1):
            exec(compile(block, f"r-bridge.md python block {number}", "exec"), namespace)
    return namespace


def _varcorr(ref, grp):
    return next(r["vcov"] for r in ref["varcorr"] if r["grp"] == grp and not r.get("var2"))


def test_bridge_models_give_lme4_numbers(bridge):
    ns = bridge
    ref2, ref1, ref4 = LME4["exam_m2"], LME4["exam_m1"], LME4["exam_m4"]
    assert math.isclose(ns["beta"]["standlrt"], ref2["fixef"]["standLRT"], rel_tol=1e-4)
    assert math.isclose(ns["school_var"], _varcorr(ref2, "school"), rel_tol=1e-3)
    assert math.isclose(ns["residual_var"], _varcorr(ref2, "Residual"), rel_tol=1e-4)
    assert math.isclose(ns["test"].statistic, 2 * (ref2["logLik"] - ref1["logLik"]), rel_tol=1e-5)
    assert math.isclose(ns["p_value"], ns["test"].pvalue, rel_tol=1e-9)
    assert math.isclose(ns["m2"].aic, ref2["AIC"], rel_tol=1e-7)
    # R names the term schgendgirls (mlmRev's level name); the course schgend[T.girlsch]
    assert math.isclose(ns["b_girlsch"], ref4["fixef"]["schgendgirls"], rel_tol=1e-3)
    assert len(ns["effects"]) == 65


def test_bridge_odds_ratios_and_predictions(bridge):
    ns = bridge
    ref = LME4["contra_g1"]["fixef"]
    ors = mlm.odds_ratios(ns["g1"])
    assert math.isclose(ors.loc["urban[T.Y]", "odds ratio"], math.exp(ref["urbanY"]), rel_tol=1e-3)
    # predict(g1, newdata, re.form = NA, type = "response") for age 0, rural and urban
    expected = special.expit([ref["(Intercept)"], ref["(Intercept)"] + ref["urbanY"]])
    np.testing.assert_allclose(ns["p_new"].to_numpy(), expected, rtol=1e-3)
    # predict(m2, re.form = NA) is the fixed part; predict(m2) adds each school's effect
    exam = ns["exam"]
    fixed = LME4["exam_m2"]["fixef"]
    np.testing.assert_allclose(ns["average_school"].to_numpy(),
                               fixed["(Intercept)"] + fixed["standLRT"] * exam["standlrt"].to_numpy(),
                               atol=1e-3)
    school_effect = exam["school"].map(ns["effects"].set_index("group")["effect"]).to_numpy()
    np.testing.assert_allclose(ns["with_schools"].to_numpy() - ns["average_school"].to_numpy(),
                               school_effect, atol=1e-8)


def test_bridge_factor_and_data_examples(bridge):
    ns = bridge
    # girls as the reference: the boy coefficient is minus the girl one of the default coding
    girl = mlm.fixed_effects(
        mlm.fit_mixedlm("normexam ~ standlrt + sex", ns["exam"], groups="school")
    ).loc["sex[T.girl]", "Estimate"]
    assert math.isclose(ns["b_boy"], -girl, rel_tol=1e-6)
    # husEd 'U' (unknown) counted as missing: 182 of the 2,159 children (R: table(guImmun$husEd))
    assert ns["guimmun"]["husEd"].isna().sum() == 182
    assert len(ns["known"]) == 2159 - 182
    exam = ns["exam"]
    assert np.allclose(exam.groupby("school")["lrt_within"].mean(), 0, atol=1e-12)


def test_bridge_names_only_existing_helpers():
    text = BRIDGE.read_text()
    names = set(re.findall(r"\bmlm\.(\w+)", text))
    assert names and not names - set(mlm.__all__), f"not in mlmhelpers: {sorted(names - set(mlm.__all__))}"


def test_bridge_covers_the_r_functions():
    text = BRIDGE.read_text()
    for r_name in ["lmer(", "glmer(", "summary(", "fixef(", "ranef(", "VarCorr(", "anova(",
                   "predict(", "REML = FALSE", "nAGQ", "factor(", "relevel(", "[T.", "family = binomial"]:
        assert r_name in text, f"the R bridge does not mention {r_name!r}"
    assert "## Defaults that differ" in text


GLOSSARY_TERMS = ["Level", "Variance partition coefficient", "Intra-class correlation", "Shrinkage",
                  "Random slope", "Random intercept", "Deviance", "Boundary", "Contextual effect",
                  "Within-group effect", "Between-group effect", "Centring", "Latent-variable scale",
                  "Likelihood-ratio test", "Caterpillar plot", "Maximum likelihood"]


def test_glossary_defines_the_course_terms():
    text = GLOSSARY.read_text()
    headwords = re.findall(r"^\*\*([^*]+?)\.\*\*", text, re.M)
    for term in GLOSSARY_TERMS:
        assert any(h.startswith(term) for h in headwords), f"the glossary has no entry for {term}"
    keys = [h.lower() for h in headwords]
    assert keys == sorted(keys), "glossary entries are in alphabetical order"


@pytest.mark.parametrize("page", [BRIDGE, GLOSSARY])
def test_relative_links_resolve(page):
    for link in re.findall(r"\]\(([^)\s#]+)\)", page.read_text()):
        if not re.match(r"\w+://", link):
            assert (page.parent / link).is_file(), f"{page.name} links to missing {link}"


def test_landing_page_links_the_bridge_and_glossary():
    landing = nbformat.read(REPO / "index.ipynb", as_version=4)
    text = "\n".join(c.source for c in landing.cells if c.cell_type == "markdown")
    for target in ["course/r-bridge.md", "course/glossary.md"]:
        assert f"]({target})" in text, f"index.ipynb does not link {target}"
        assert (REPO / target).is_file()
