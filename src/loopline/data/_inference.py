"""Inferring an expectation suite from reference data: `infer_suite`."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from typing import TYPE_CHECKING

from loopline.data._checks import _as_float, _dtype_family, _is_number, _positional, _unique_mask
from loopline.data._suite import TYPES, Expectation, ExpectationSuite, _plain_scalar
from loopline.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

_OBJECT_TYPES = {"floating": "float", "mixed-integer-float": "float", "datetime64": "datetime"}
_OBJECT_TYPES |= {"timedelta64": "timedelta"} | {t: t for t in TYPES}  # from pandas' infer_dtype
_DECIMALS = Context(prec=1000)  # exact for any float64 bound
_ID_NAME = re.compile(r"(?:^|[\W_])(?:id|uuid|guid|key)$", re.IGNORECASE)  # id, user_id, "User ID"
_CAMEL_ID_NAME = re.compile(r"[a-z0-9](?:Id|ID|Key|Uuid|UUID)$")  # userId, but not "valid"


def infer_suite(
    df: pd.DataFrame,
    *,
    name: str,
    key_columns: Sequence[str] = (),
    margin: float = 0.1,
    max_categories: int = 20,
) -> ExpectationSuite:
    """Infer a suite that `df` passes and that similar data should pass too. Deterministic.

    Per column: its logical type; not_null when it has no nulls, else a max_null_fraction
    `margin` (relative) above the observed one; numeric ranges widened by `margin` of the
    range (not across zero) and rounded outward; the allowed values of string, categorical
    and integer columns with at most `max_categories` values, each seen twice on average (a
    class label such as wine's 0/1/2: a range would let 3 through; such an integer column gets
    the set instead of the range); uniqueness for
    `key_columns` and for unique, null-free integer/string columns named like ids (`id`,
    `user_id`, `userId`). The row count is widened by `margin` too.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise InvalidInput(f"infer_suite needs a pandas DataFrame, got {type(df).__name__}")
    if not (_is_number(margin) and 0 <= float(margin) < math.inf):
        raise InvalidInput(f"margin must be a finite number >= 0, got {margin!r}")
    if type(max_categories) is not int or max_categories < 0:
        raise InvalidInput(f"max_categories must be an integer >= 0, got {max_categories!r}")
    keys = [key_columns] if isinstance(key_columns, str) else list(key_columns)
    data = _positional(df)
    for key in keys:
        if key not in data.columns:
            raise InvalidInput(f"key column {key!r} is not in the data")
    m, n = Decimal(repr(float(margin))), Decimal(len(data))
    rows = {"min": max(0, _floor(n * (1 - m))), "max": _floor(n * (1 + m), ROUND_CEILING)}
    expectations = [Expectation("row_count_between", None, rows)]
    for column in data.columns:
        expectations += _infer_column(data[column], column, column in keys, m, max_categories)
    return ExpectationSuite(name, tuple(expectations))


def _infer_column(
    s: pd.Series, column: str, key: bool, margin: Decimal, max_categories: int
) -> list[Expectation]:
    kind = _infer_type(s)
    found = [Expectation("column_type", column, {"type": kind})]
    rows, nulls = len(s), int(s.isna().sum())
    if rows and not nulls:
        found.append(Expectation("not_null", column))
    elif 0 < nulls < rows:
        fraction = Decimal(nulls) / Decimal(rows) * (1 + margin)
        fraction = min(fraction.quantize(Decimal("0.0001"), ROUND_CEILING), Decimal(1))
        found.append(Expectation("max_null_fraction", column, {"max": float(fraction)}))
    unique = bool(_unique_mask(s.dropna()).all())
    if key and not unique:
        logger.warning("key column %r is not unique in the reference data", column)
    id_like = bool(_ID_NAME.search(column) or _CAMEL_ID_NAME.search(column))
    if key or (id_like and unique and not nulls and rows >= 2 and kind in ("integer", "string")):
        found.append(Expectation("unique", column))
    values = _infer_categories(s, kind, max_categories)
    bounds = (
        _infer_range(s, margin, whole=kind == "integer")
        if kind in ("integer", "float") and values is None
        else None
    )
    if bounds is not None:
        found.append(Expectation("between", column, bounds))
    if values is not None:
        found.append(Expectation("in_set", column, {"values": values}))
    return found


def _infer_type(s: pd.Series) -> str:
    import pandas as pd

    family = _dtype_family(s.dtype)
    if family != "object":
        return family if family in TYPES else "any"
    return _OBJECT_TYPES.get(pd.api.types.infer_dtype(s, skipna=True), "any")


def _infer_range(s: pd.Series, margin: Decimal, *, whole: bool) -> dict[str, object] | None:
    import numpy as np

    values = _as_float(s)
    values = values[~np.isnan(values)]
    if not values.size or not np.isfinite(values).all():
        return None  # no numbers, or infinities the data itself holds: no finite range fits
    if _dtype_family(s.dtype) == "integer":  # exact, even beyond 2**53
        low, high = Decimal(int(s.min())), Decimal(int(s.max()))
    else:  # the shortest decimal that reads back as the same float
        low, high = Decimal(repr(float(values.min()))), Decimal(repr(float(values.max())))
    width = high - low if high > low else max(abs(low), abs(high))
    lo, hi = low - margin * width, high + margin * width
    lo = max(lo, Decimal(0)) if low >= 0 else lo
    hi = min(hi, Decimal(0)) if high <= 0 else hi
    if whole:
        return {"min": _floor(lo), "max": _floor(hi, ROUND_CEILING)}
    if width:  # round outward to four significant digits of the range: short bounds
        step = Decimal(1).scaleb(width.adjusted() - 3)
        lo = lo.quantize(step, ROUND_FLOOR, context=_DECIMALS)
        hi = hi.quantize(step, ROUND_CEILING, context=_DECIMALS)
    # Rounding to float is monotone, so the bounds still hold every value; should one
    # overflow to inf, the observed extreme takes its place. (+ 0.0 turns -0.0 into 0.0.)
    lo_f, hi_f = float(lo), float(hi)
    return {
        "min": (lo_f if math.isfinite(lo_f) else float(values.min())) + 0.0,
        "max": (hi_f if math.isfinite(hi_f) else float(values.max())) + 0.0,
    }


def _infer_categories(s: pd.Series, kind: str, max_categories: int) -> list[object] | None:
    import pandas as pd

    declared = isinstance(s.dtype, pd.CategoricalDtype)
    if not declared and kind not in ("string", "integer"):
        return None
    values = [_plain_scalar(v) for v in (s.cat.categories if declared else s.dropna().unique())]
    if not values or len(values) > max_categories or any(v is None for v in values):
        return None
    if not declared and 2 * len(values) > int(s.notna().sum()):
        return None  # most values seen once: free text or names, not categories
    return sorted(values, key=lambda v: (type(v).__name__, v))


def _floor(value: Decimal, rounding: str = ROUND_FLOOR) -> int:
    return int(value.to_integral_value(rounding))
