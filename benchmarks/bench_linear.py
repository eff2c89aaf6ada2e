"""Time fit_mixedlm on every lme4 reference model and check it against lme4.

For each model in tests/fixtures/lme4_reference.json (exam_m1..m4 on
``tutorial``, chem_c0..c2 on ``chem97``) this prints the best of a few
``fit_mixedlm`` timings, the distance of its log-likelihood from lme4's,
and, for comparison, statsmodels' own ``MixedLM.fit(reml=False)`` (time and
log-likelihood gap; it stops short on ``normexam ~ 1``).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from mlmhelpers import fit_mixedlm, load_dataset

REPO = Path(__file__).resolve().parents[1]

with open(REPO / "tests" / "fixtures" / "linear_reference_models.json") as _fh:
    SPECS = {k: (v["data"], v["formula"], v["re_formula"])
             for k, v in json.load(_fh)["models"].items()}


def _best_time(func, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = func()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(repeat=3, compare_statsmodels=True):
    from statsmodels.regression.mixed_linear_model import MixedLM

    with open(REPO / "tests" / "fixtures" / "lme4_reference.json") as fh:
        ref = json.load(fh)
    chem = load_dataset("chem97")
    chem["gcse_z"] = (chem["gcsescore"] - chem["gcsescore"].mean()) / chem["gcsescore"].std()
    data = {"tutorial": load_dataset("tutorial"), "chem97": chem}

    head = (f"{'model':<9} {'n':>6} {'groups':>6} {'fit_mixedlm s':>13} "
            f"{'|llf-lme4|':>11} {'statsmodels s':>13} {'sm llf-lme4':>12}")
    print(head)
    print("-" * len(head))
    for key, (name, formula, re_formula) in SPECS.items():
        d = data[name]
        secs, res = _best_time(
            lambda: fit_mixedlm(formula, d, groups="school", re_formula=re_formula), repeat)
        gap = abs(res.llf - ref[key]["logLik"])
        sm_secs, sm_gap = float("nan"), float("nan")
        if compare_statsmodels:
            def sm_fit():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return MixedLM.from_formula(
                        formula, d, groups="school",
                        re_formula=None if re_formula is None else "~" + re_formula,
                    ).fit(reml=False)
            try:
                sm_secs, sm_res = _best_time(sm_fit, 1)
                sm_gap = sm_res.llf - ref[key]["logLik"]
            except Exception:  # noqa: BLE001 - statsmodels failing is a finding too
                sm_secs, sm_gap = float("nan"), float("nan")
        print(f"{key:<9} {int(res.nobs):>6} {len(res.model.group_labels):>6} "
              f"{secs:>13.3f} {gap:>11.1e} {sm_secs:>13.3f} {sm_gap:>12.3f}", flush=True)
    print("\nfit_mixedlm: best of", repeat, "runs; statsmodels: MixedLM.fit(reml=False) "
          "defaults, one run.")


if __name__ == "__main__":
    main()
