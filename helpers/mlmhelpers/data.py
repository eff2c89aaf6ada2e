"""Loading the course data sets.

The CSV files live in the repository's ``data/`` folder.  A wheel of the
helper library carries a copy of them inside the package (``mlmhelpers/_data``),
so :func:`load_dataset` works from any working directory, from an editable
install in the repository and from an ordinary installed copy alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

__all__ = ["load_dataset", "dataset_names", "data_dir"]

# For each data set: integer identifier columns, categorical columns with their
# levels (the first level is the reference category the course uses) and
# 0/1 outcome columns.  Anything not listed is numeric.
_SCHEMA: dict[str, dict[str, object]] = {
    "tutorial": {
        "ids": ["school", "student"],
        "categories": {
            "sex": ["boy", "girl"],
            "schgend": ["mixedsch", "boysch", "girlsch"],
            "vrband": ["bottom 25%", "mid 50%", "top 25%"],
            "intake": ["bottom 25%", "mid 50%", "top 25%"],
            "type": ["Mxd", "Sngl"],
        },
    },
    "chem97": {
        "ids": ["lea", "school", "student"],
        "categories": {"gender": ["M", "F"]},
    },
    "contraception": {
        "ids": ["woman", "district"],
        "categories": {
            "livch": ["0", "1", "2", "3+"],
            "urban": ["N", "Y"],
        },
    },
    "scotssec": {
        "ids": ["primary", "second"],
        "categories": {"sex": ["M", "F"]},
    },
    "mmmec": {
        "ids": ["region", "county"],
        "categories": {
            "nation": ["Belgium", "W.Germany", "Denmark", "France", "UK", "Italy", "Ireland",
                       "Luxembourg", "Netherlands"],
        },
    },
    "guimmun": {
        "ids": ["kid", "mom", "comm"],
        "categories": {
            "kid2p": ["N", "Y"],
            "mom25p": ["N", "Y"],
            "ord": ["01", "23", "46", "7p"],
            "ethn": ["L", "N", "S"],
            "momEd": ["N", "P", "S"],
            "husEd": ["N", "P", "S", "U"],
            "momWork": ["N", "Y"],
            "rural": ["N", "Y"],
        },
    },
}


def dataset_names() -> list[str]:
    """Return the names of the data sets that ship with the course.

    Examples
    --------
    >>> dataset_names()
    ['chem97', 'contraception', 'guimmun', 'mmmec', 'scotssec', 'tutorial']
    """
    return sorted(_SCHEMA)


def data_dir() -> Path:
    """Return the folder the course data are read from.

    The environment variable ``MLM_DATA_DIR`` wins if it is set; otherwise the
    copy bundled in an installed package, otherwise the repository's ``data/``
    folder next to ``helpers/``.

    Examples
    --------
    >>> (data_dir() / "tutorial.csv").exists()
    True
    """
    candidates = []
    env = os.environ.get("MLM_DATA_DIR")
    if env:
        candidates.append(Path(env))
    here = Path(__file__).resolve().parent
    candidates.append(here / "_data")
    candidates.append(here.parent.parent / "data")
    for folder in candidates:
        if (folder / "tutorial.csv").is_file():
            return folder
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        "Cannot find the course data (looked in: " + searched + "). "
        "Reinstall the helpers with `pip install .` from the repository root, "
        "or set MLM_DATA_DIR to the repository's data/ folder."
    )


def load_dataset(name: str) -> pd.DataFrame:
    """Load one of the course data sets as a pandas DataFrame.

    Parameters
    ----------
    name : str
        One of ``"tutorial"``, ``"chem97"``, ``"contraception"``,
        ``"guimmun"`` or ``"scotssec"`` (case does not matter).  ``data/README.md`` is the
        codebook.

    Returns
    -------
    pandas.DataFrame
        Identifier columns as integers, categorical variables as pandas
        categoricals whose first category is the reference level used in the
        course, binary outcomes as 0/1 integers, everything else as floats.

    Examples
    --------
    >>> tutorial = load_dataset("tutorial")
    >>> tutorial.shape
    (4059, 10)
    >>> list(tutorial["schgend"].cat.categories)
    ['mixedsch', 'boysch', 'girlsch']
    """
    if not isinstance(name, str):
        raise TypeError(
            f"load_dataset expects the name of a data set as a string, got {type(name).__name__}. "
            f"Known data sets: {', '.join(dataset_names())}."
        )
    key = name.strip().lower()
    if key not in _SCHEMA:
        raise ValueError(
            f"Unknown data set {name!r}. Known data sets: {', '.join(dataset_names())}."
        )
    schema = _SCHEMA[key]
    categories: dict[str, list[str]] = schema["categories"]  # type: ignore[assignment]
    dtypes = {col: "string" for col in categories}
    frame = pd.read_csv(data_dir() / f"{key}.csv", dtype=dtypes)
    for col, levels in categories.items():
        unknown = set(frame[col].dropna()) - set(levels)
        if unknown:
            raise ValueError(f"{key}.csv: column {col!r} has unexpected values {sorted(unknown)}")
        frame[col] = pd.Categorical(frame[col], categories=levels)
    for col in schema["ids"]:  # type: ignore[union-attr]
        frame[col] = frame[col].astype("int64")
    return frame
