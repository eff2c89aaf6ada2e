"""Record the values a test cell needs (runs in the student's kernel, in the sandbox).

Executed with ``runpy.run_path`` in place of a test cell's code.  It writes the
variables named in ``__grader_args__["names"]`` as plain data (numbers, text,
lists, numeric arrays, tables) to a JSON file.  Objects of any other kind are
recorded only by their type name.  The grader trusts none of this: it rebuilds
plain Python/numpy/pandas values from the data in a separate, clean process.
"""

import base64
import json
import sys

ARGS = json.loads(globals()["__grader_args__"])
NS = globals()["__grader_ns__"]
MAX_DEPTH = 6
MAX_ITEMS = 10_000


class TooLarge(Exception):
    pass


def _modules():
    return sys.modules.get("numpy"), sys.modules.get("pandas")


def _array(arr, np):
    kind = arr.dtype.kind
    if kind == "b":
        arr = arr.astype("|b1")
    elif kind in "iu":
        arr = arr.astype("<i8") if kind == "i" or arr.dtype.itemsize < 8 else arr.astype("<u8")
    elif kind == "f":
        arr = arr.astype("<f8")
    elif kind == "c":
        arr = arr.astype("<c16")
    elif kind in "UO":
        flat = [None if x is None else _text(x) for x in arr.ravel().tolist()]
        return {"t": "strarray", "shape": list(arr.shape), "v": flat}
    else:
        return {"t": "opaque", "type": f"numpy array of {arr.dtype}"}
    arr = np.ascontiguousarray(arr)
    return {"t": "array", "dtype": arr.dtype.str, "shape": list(arr.shape),
            "b64": base64.b64encode(arr.tobytes()).decode("ascii")}


def _text(x):
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, (int, float, bool)):
        return repr(x)
    return str(x)


def _column(col, np, pd):
    """A pandas Series/Index's values as an encoded array."""
    dtype = col.dtype
    try:
        if pd.api.types.is_bool_dtype(dtype) and not col.isna().any():
            return _array(col.to_numpy(dtype=bool), np)
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            if pd.api.types.is_integer_dtype(dtype) and not col.isna().any():
                return _array(col.to_numpy(dtype="int64"), np)
            return _array(col.to_numpy(dtype="float64", na_value=np.nan), np)
    except (TypeError, ValueError):
        pass
    values = col.to_numpy(dtype=object)
    return {"t": "strarray", "shape": [len(values)],
            "v": [None if (x is None or (isinstance(x, float) and x != x) or x is pd.NA) else _text(x)
                  for x in values.tolist()]}


def encode(x, depth=0):
    np, pd = _modules()
    if depth > MAX_DEPTH:
        raise TooLarge
    if x is None:
        return {"t": "none"}
    if isinstance(x, bool) or (np is not None and isinstance(x, np.bool_)):
        return {"t": "bool", "v": bool(x)}
    if isinstance(x, int) or (np is not None and isinstance(x, np.integer)):
        return {"t": "int", "v": str(int.__index__(int(x)))}
    if isinstance(x, float) or (np is not None and isinstance(x, np.floating)):
        return {"t": "float", "v": float.__repr__(float(x))}
    if isinstance(x, str):
        return {"t": "str", "v": str.__str__(x)}
    if isinstance(x, (list, tuple)):
        if len(x) > MAX_ITEMS:
            raise TooLarge
        return {"t": "tuple" if isinstance(x, tuple) else "list", "v": [encode(i, depth + 1) for i in x]}
    if isinstance(x, dict):
        if len(x) > MAX_ITEMS:
            raise TooLarge
        return {"t": "dict", "v": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in x.items()]}
    if np is not None and isinstance(x, np.ndarray):
        return _array(x, np)
    if pd is not None:
        if isinstance(x, pd.Series):
            return {"t": "series", "index": _index(x.index, np, pd), "values": _column(x, np, pd),
                    "name": encode(x.name, depth + 1) if _plain(x.name) else {"t": "none"}}
        if isinstance(x, pd.DataFrame):
            return {"t": "frame", "index": _index(x.index, np, pd),
                    "columns": [encode(c, depth + 1) if _plain(c) else {"t": "str", "v": str(c)}
                                for c in x.columns],
                    "data": [_column(x.iloc[:, i], np, pd) for i in range(x.shape[1])]}
        if isinstance(x, pd.Index):
            return _index(x, np, pd)
    return {"t": "opaque", "type": type(x).__module__ + "." + type(x).__qualname__}


def _plain(x):
    np, _ = _modules()
    return x is None or isinstance(x, (bool, int, float, str)) or (np is not None and isinstance(x, np.generic))


def _index(index, np, pd):
    if isinstance(index, pd.MultiIndex):
        return {"t": "index", "values": {"t": "strarray", "shape": [len(index)],
                                         "v": [str(v) for v in index.tolist()]}, "name": {"t": "none"}}
    return {"t": "index", "values": _column(index.to_series(), np, pd),
            "name": encode(index.name) if _plain(index.name) else {"t": "none"}}


def _foreign(obj, prefixes):
    """True when ``obj`` was defined by the notebook, not by an installed library."""
    import os

    func = getattr(obj, "__func__", obj)
    code = getattr(func, "__code__", None)
    if code is None:
        call = getattr(type(obj), "__call__", None) or getattr(type(obj), "visit", None)
        code = getattr(call, "__code__", None)
        if code is None:
            module = getattr(type(obj), "__module__", "") or ""
            return module in ("__main__", "builtins") and type(obj).__name__ not in (
                "builtin_function_or_method", "method-wrapper")
    return not os.path.realpath(code.co_filename).startswith(prefixes)


def _kernel_state():
    """What the student's code changed in the kernel (reported, never trusted)."""
    import builtins
    import os

    prefixes = tuple(os.path.realpath(p) for p in {sys.prefix, sys.base_prefix})
    state = {}
    try:
        ip = get_ipython()  # noqa: F821 - defined in an IPython kernel
        state["input transformers"] = sum(
            _foreign(t, prefixes) for t in list(ip.input_transformers_cleanup)
            + list(ip.input_transformers_post) + list(getattr(ip.input_transformer_manager,
                                                              "line_transforms", [])))
        state["AST transformers"] = sum(_foreign(t, prefixes) for t in ip.ast_transformers)
        state["event hooks"] = sum(_foreign(f, prefixes) for v in ip.events.callbacks.values() for f in v)
        state["custom exception handler"] = int(ip.custom_exceptions != ())
    except Exception:  # noqa: BLE001
        pass
    for dotted in ARGS.get("watch", []):
        module, _, attr = dotted.rpartition(".")
        if module == "builtins" and attr in NS:
            state["redefined " + attr] = 1
        mod = sys.modules.get(module)
        if mod is None or not hasattr(mod, attr):
            continue
        obj = getattr(mod, attr)
        if module == "builtins":
            changed = type(obj).__name__ not in ("builtin_function_or_method", "type")
        else:
            changed = _foreign(obj, prefixes) if getattr(obj, "__code__", None) else False
        if changed:
            state["patched " + dotted] = 1
    return state


def main():
    if ARGS.get("baseline"):
        with open(ARGS["path"], "w") as fh:
            json.dump(_kernel_state(), fh)
        return
    out = {}
    for name in ARGS["names"]:
        if name not in NS:
            continue
        try:
            out[name] = encode(NS[name])
        except TooLarge:
            out[name] = {"t": "opaque", "type": "too large to check"}
        except Exception as err:  # noqa: BLE001 - one odd value must not lose the others
            out[name] = {"t": "opaque", "type": f"unreadable ({type(err).__name__})"}
    for name in ARGS["names"]:
        value = NS.get(name)
        for base in (float, int, str):
            if isinstance(value, base) and type(value) not in (base, bool) and type(value).__module__ != "numpy":
                out.setdefault("__notes__", []).append(
                    f"{name} is a {type(value).__name__} (a {base.__name__} subclass); checked as a plain {base.__name__}")
                break
    out["__kernel__"] = _kernel_state()
    text = json.dumps(out)
    if len(text) > ARGS["max_bytes"]:
        text = json.dumps({name: {"t": "opaque", "type": "too large to check"} for name in out})
    with open(ARGS["path"], "w") as fh:
        fh.write(text)


main()
