"""Run a notebook's test cells in a clean process (no student code ever runs here).

The grader starts ``python -I -m coursetools.tester`` (or this file) with a
JSON job on stdin: the import statements of the course's own notebook (from
``solutions/``), and for each test cell its code (from the gradebook) and the
values of the variables it needs, as recorded in the student's sandbox.  The
values are rebuilt as plain Python, numpy and pandas objects by
:func:`decode` - numbers, text, lists, numeric arrays, tables - so nothing the
student defined (a float subclass, a patched ``np.isclose``, a redefined
``abs``, an IPython input transformer or event hook) exists in this process.
The verdict of every test is printed as JSON on stdout.

With ``--serve`` the process answers one job per line of stdin with one line
of stdout, so a grading worker starts numpy and pandas once rather than once
per submission.  Sharing it between submissions is safe because no student
code ever runs here: a submission contributes only plain values, rebuilt by
:func:`decode`, and each test runs in a namespace of its own.
"""

from __future__ import annotations

import base64
import json
import signal
import sys
import traceback

ALLOWED_DTYPES = {"|b1", "<i8", "<u8", "<f8", "<c16"}
MAX_ELEMENTS = 20_000_000


class ValueNotCheckable:
    """Stands for an object the grader cannot check (a model, a function...).

    Any use in a test fails with a message naming the variable and its type.
    """

    def __init__(self, name, typename):
        self._name, self._type = name, typename

    def _fail(self, *args, **kwargs):
        raise TypeError(f"{self._name} is a {self._type} in your notebook; the tests expect "
                        "a number, text, a list, an array or a table")

    __lt__ = __le__ = __gt__ = __ge__ = __add__ = __radd__ = __sub__ = __rsub__ = _fail
    __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __abs__ = __neg__ = __float__ = _fail
    __int__ = __index__ = __len__ = __iter__ = __getitem__ = __bool__ = __array__ = _fail
    __getattr__ = _fail

    def __eq__(self, other):
        self._fail()

    __ne__ = __eq__
    __hash__ = object.__hash__

    def __repr__(self):
        return f"<{self._type}>"


def _check(cond, what="value"):
    if not cond:
        raise ValueError(f"malformed {what} from the sandbox")


def decode(data, name="value", depth=0):
    """Rebuild a plain value from the sandbox's JSON; refuse anything else."""
    import numpy as np

    _check(isinstance(data, dict) and isinstance(data.get("t"), str) and depth < 8)
    kind = data["t"]
    if kind == "none":
        return None
    if kind == "bool":
        _check(type(data["v"]) is bool)
        return bool(data["v"])
    if kind == "int":
        _check(type(data["v"]) is str and len(data["v"]) < 5000)
        return int(data["v"])
    if kind == "float":
        _check(type(data["v"]) is str and len(data["v"]) < 64)
        return float(data["v"])
    if kind == "str":
        _check(type(data["v"]) is str)
        return str(data["v"])
    if kind in ("list", "tuple"):
        _check(type(data["v"]) is list)
        items = [decode(v, name, depth + 1) for v in data["v"]]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        _check(type(data["v"]) is list)
        out = {}
        for pair in data["v"]:
            _check(type(pair) is list and len(pair) == 2)
            key = decode(pair[0], name, depth + 1)
            _check(isinstance(key, (str, int, float, bool, tuple, type(None))), "dict key")
            out[key] = decode(pair[1], name, depth + 1)
        return out
    if kind == "array":
        _check(data.get("dtype") in ALLOWED_DTYPES, "array type")
        shape = data.get("shape")
        _check(type(shape) is list and all(type(n) is int and n >= 0 for n in shape) and len(shape) <= 8)
        raw = base64.b64decode(data["b64"], validate=True)
        arr = np.frombuffer(raw, dtype=np.dtype(data["dtype"])).copy()
        _check(arr.size == int(np.prod(shape)) and arr.size <= MAX_ELEMENTS, "array size")
        return arr.reshape(shape)
    if kind == "strarray":
        shape = data.get("shape")
        _check(type(shape) is list and all(type(n) is int and n >= 0 for n in shape))
        values = data.get("v")
        _check(type(values) is list and all(v is None or type(v) is str for v in values))
        _check(len(values) == int(np.prod(shape)), "array size")
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr.reshape(shape)
    if kind in ("series", "index", "frame"):
        import pandas as pd

        if kind == "index":
            values = _column_values(data["values"], name, depth)
            return pd.Index(values, name=_label(data.get("name"), name, depth))
        index = decode(data["index"], name, depth + 1)
        _check(isinstance(index, pd.Index))
        if kind == "series":
            return pd.Series(_column_values(data["values"], name, depth), index=index,
                             name=_label(data.get("name"), name, depth))
        columns = [_label(c, name, depth) for c in data["columns"]]
        _check(type(data["data"]) is list and len(data["data"]) == len(columns))
        cols = [_column_values(c, name, depth) for c in data["data"]]
        _check(all(len(c) == len(index) for c in cols), "table")
        frame = pd.DataFrame({i: c for i, c in enumerate(cols)}, index=index)
        frame.columns = columns
        return frame
    if kind == "opaque":
        return ValueNotCheckable(name, str(data.get("type", "object"))[:100])
    raise ValueError(f"unknown kind of value {kind!r} from the sandbox")


def _label(data, name, depth):
    if data is None:
        return None
    value = decode(data, name, depth + 1)
    _check(isinstance(value, (str, int, float, bool, type(None))), "label")
    return value


def _column_values(data, name, depth):
    import numpy as np
    import pandas as pd

    arr = decode(data, name, depth + 1)
    _check(isinstance(arr, np.ndarray) and arr.ndim == 1, "column")
    if arr.dtype == object:
        return pd.array(arr, dtype="str") if all(v is not None for v in arr) else pd.array(arr, dtype="str")
    return arr


def _error(err, source, index):
    tb = traceback.extract_tb(err.__traceback__)
    lines = [f"{type(err).__name__}    Traceback (most recent call last)"]
    for frame in tb:
        if frame.filename == f"<test cell {index}>":
            code = source.splitlines()[frame.lineno - 1] if frame.lineno else ""
            lines.append(f"Cell In[{index}], line {frame.lineno}\n----> {frame.lineno} {code}")
    lines.append(f"{type(err).__name__}: {err}")
    return {"ok": False, "ename": type(err).__name__, "evalue": str(err)[:2000], "traceback": lines}


def _alarm(signum, frame):
    raise TimeoutError("the test took too long on this answer")


def run(job: dict) -> dict:
    base = {"__name__": "__test__"}
    import_errors = {}
    for statement in job.get("imports", []):
        try:
            exec(compile(statement, "<course imports>", "exec"), base)
        except Exception as err:  # noqa: BLE001
            import_errors[statement] = f"{type(err).__name__}: {err}"
    signal.signal(signal.SIGALRM, _alarm)
    verdicts = {}
    for test in job["tests"]:
        index, source = test["index"], test["source"]
        namespace = dict(base)
        try:
            values = test.get("values")
            if values is None:
                raise RuntimeError("the notebook stopped before this test's values could be recorded")
            if "__error__" in values:
                raise RuntimeError(str(values["__error__"])[:300])
            for name in test["names"]:
                if name in values:
                    namespace[name] = decode(values[name], name)
            signal.alarm(int(job.get("timeout", 60)))
            try:
                exec(compile(source, f"<test cell {index}>", "exec"), namespace)
            finally:
                signal.alarm(0)
            verdicts[str(index)] = {"ok": True}
        except Exception as err:  # noqa: BLE001 - a failed test is a verdict
            verdicts[str(index)] = _error(err, source, index)
    return {"verdicts": verdicts, "import_errors": import_errors}


def main() -> int:
    if "--serve" in sys.argv[1:]:
        import numpy  # noqa: F401 - loaded once for every job that follows
        import pandas  # noqa: F401

        for line in sys.stdin:
            try:
                out = run(json.loads(line))
            except Exception as err:  # noqa: BLE001 - a malformed job gets an answer, not a hang
                out = {"error": f"{type(err).__name__}: {err}"[:300]}
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()
        return 0
    job = json.load(sys.stdin)
    json.dump(run(job), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
