"""Time fit_logit_mixed on the glmer reference models and check it against glmer.

For each binary model in tests/fixtures/lme4_reference.json (contra_g0,
contra_g1, contra_g1_q25 on ``contraception``; immun_b0, immun_b1 on
``guimmun``) this prints the best of a few ``fit_logit_mixed`` timings, the
number of deviance evaluations, and the largest distance from glmer:
log-likelihood (absolute), fixed effects, standard errors and variance
(relative).  For scale: glmer fits contra_g1 in about 0.17 s on this machine
class.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from pathlib import Path

import numpy as np

from mlmhelpers import fit_logit_mixed, load_dataset

REPO = Path(__file__).resolve().parents[1]

DATASETS = {"contra": "contraception", "immun": "guimmun"}


def binary_specs(ref):
    """(data set, fixed formula, grouping column, nAGQ) of every glmer model in
    the reference file, read from its lme4 formula ``y ~ x + (1 | group)``."""
    specs = {}
    for key, entry in ref.items():
        if not isinstance(entry, dict) or entry.get("kind") != "binary":
            continue
        fixed, group = re.fullmatch(r"(.*?)\s*\+\s*\(1 \| (\w+)\)", entry["formula"]).groups()
        fixed = re.sub(r"~ 1 \+ ", "~ ", fixed)
        specs[key] = (DATASETS[key.split("_")[0]], fixed, group, int(entry["nAGQ"]))
    return specs


def _r_name(term):
    return "(Intercept)" if term == "Intercept" else re.sub(r"\[T\.(.*)\]$", r"\1", term)


def _fit(formula, data, groups, nagq):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # groups with all 0 / all 1 outcomes
        return fit_logit_mixed(formula, data, groups=groups, nagq=nagq)


def main(repeat=3):
    with open(REPO / "tests" / "fixtures" / "lme4_reference.json") as fh:
        ref = json.load(fh)
    data = {name: load_dataset(name) for name in ("contraception", "guimmun")}

    head = (f"{'model':<14} {'n':>5} {'groups':>6} {'nagq':>4} {'seconds':>8} {'evals':>6} "
            f"{'|llf-glmer|':>11} {'fe rel':>8} {'se rel':>8} {'var rel':>8}")
    print(head)
    print("-" * len(head))
    for key, (name, formula, groups, nagq) in binary_specs(ref).items():
        best, res = np.inf, None
        for _ in range(repeat):
            start = time.perf_counter()
            res = _fit(formula, data[name], groups, nagq)
            best = min(best, time.perf_counter() - start)
        r = ref[key]
        names = [_r_name(t) for t in res.fe_params.index]
        fe = np.array([r["fixef"][n] for n in names])
        se = np.array([r["se"][n] for n in names])
        fe_rel = np.max(np.abs(res.fe_params.to_numpy() / fe - 1))
        se_rel = np.max(np.abs(res.bse_fe.to_numpy() / se - 1))
        var_rel = abs(res.var_re / r["varcorr"][0]["vcov"] - 1)
        print(f"{key:<14} {res.nobs:>5} {res.ngroups:>6} {nagq:>4} {best:>8.3f} "
              f"{res._fit.n_evaluations:>6} {abs(res.llf - r['logLik']):>11.1e} "
              f"{fe_rel:>8.1e} {se_rel:>8.1e} {var_rel:>8.1e}", flush=True)
    print(f"\nfit_logit_mixed: best of {repeat} runs (includes building the design matrix).")


if __name__ == "__main__":
    main()
