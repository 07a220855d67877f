"""The checks behind expectations: dtype families, value tests and per-row masks of a column."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeGuard, cast

from loopline.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_KIND_FAMILIES = {"b": "boolean", "i": "integer", "u": "integer", "f": "float", "M": "datetime"}
_KIND_FAMILIES |= {"m": "timedelta", "O": "object"}  # numpy's dtype.kind codes


def _positional(df: pd.DataFrame) -> pd.DataFrame:
    """The data with a 0..n-1 index (examples name rows by position) and text column names."""
    data = df.reset_index(drop=True)
    data.columns = [str(c) for c in data.columns]
    if data.columns.has_duplicates:
        dupes = sorted(set(data.columns[data.columns.duplicated()]))
        raise InvalidInput(f"the data has duplicate column names: {', '.join(dupes)}")
    return data


def _dtype_family(dtype: Any) -> str:
    """The logical type a pandas dtype stores, "object" for object columns, else "other"."""
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if isinstance(dtype, pd.StringDtype) or dtype.kind in "SU":
        return "string"
    return _KIND_FAMILIES.get(dtype.kind, "other")


def _type_mask(s: pd.Series, expected: str) -> pd.Series:
    import numpy as np
    import pandas as pd

    family = _dtype_family(s.dtype)
    if expected in ("any", family) or (expected, family) == ("float", "integer"):
        return pd.Series(True, index=s.index)
    if (expected, family) == ("integer", "float"):
        values = s.to_numpy(dtype=float, na_value=np.nan)
        return pd.Series(np.isfinite(values) & (np.floor(values) == values), index=s.index)
    if family in ("object", "category") and expected != "category":
        return s.astype(object).map(_value_test(expected)).astype(bool)
    return pd.Series(False, index=s.index)


def _value_test(expected: str) -> Callable[[object], bool]:
    """Whether one value of an object column is of the logical type `expected`."""
    import datetime as dt

    import numpy as np

    def is_integer(v: object) -> bool:
        return _is_number(v) and (isinstance(v, numbers.Integral) or float(v).is_integer())

    tests: dict[str, Callable[[object], bool]] = {
        "integer": is_integer,
        "float": _is_number,
        "boolean": lambda v: isinstance(v, (bool, np.bool_)),
        "string": lambda v: isinstance(v, str),
        "datetime": lambda v: isinstance(v, (dt.datetime, np.datetime64)),
        "timedelta": lambda v: isinstance(v, (dt.timedelta, np.timedelta64)),
    }
    return tests[expected]


def _as_float(s: pd.Series) -> np.ndarray:
    """Numbers as float64; nulls and non-numbers (text, booleans) as NaN."""
    import numpy as np

    if _dtype_family(s.dtype) in ("integer", "float"):
        return s.to_numpy(dtype=float, na_value=np.nan)
    return np.array([_to_float(v) for v in s.astype(object)], dtype=float)


def _is_number(value: object) -> TypeGuard[numbers.Real]:
    """A real number (int, float, numpy number), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _to_float(value: object) -> float:
    if not _is_number(value):
        return math.nan
    try:
        return float(value)
    except OverflowError:  # an integer beyond float64
        return math.inf if float(str(value)) > 0 else -math.inf


def _range_mask(s: pd.Series, bounds: Mapping[str, object]) -> pd.Series:
    import numpy as np
    import pandas as pd

    values = _as_float(s)
    ok = np.isfinite(values)
    if bounds["min"] is not None:
        ok &= values >= _to_float(bounds["min"])
    if bounds["max"] is not None:
        ok &= values <= _to_float(bounds["max"])
    return pd.Series(ok, index=s.index)


def _in_set_mask(s: pd.Series, values: list[object]) -> pd.Series:
    try:
        return s.isin(values)
    except TypeError:  # unhashable values (lists, dicts) in an object column
        return s.astype(object).map(lambda v: any(v == allowed for allowed in values)).astype(bool)


def _unique_mask(s: pd.Series) -> pd.Series:
    try:
        return ~s.duplicated(keep=False)
    except TypeError:  # unhashable values: compare their text
        return ~s.astype(str).duplicated(keep=False)


def _null_fraction(s: pd.Series) -> float:
    return int(s.isna().sum()) / len(s) if len(s) else 0.0


def _within(count: int, bounds: Mapping[str, object]) -> bool:
    low, high = cast(int | None, bounds["min"]), cast(int | None, bounds["max"])
    return (low is None or count >= low) and (high is None or count <= high)
