"""Small text helpers for validation messages: JSON-safe values, ranges, counts, sets."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence


def _json_safe(value: object) -> object:
    """A JSON-safe value: NaN and ±inf as "nan"/"inf"/"-inf" as in profiles, nulls as None."""
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else str(number)
    if isinstance(value, str):
        return value
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()) if callable(isoformat) else str(value)


def _span(params: Mapping[str, object]) -> str:
    low = "-inf" if params.get("min") is None else _number_text(params["min"])
    high = "inf" if params.get("max") is None else _number_text(params["max"])
    return f"[{low}, {high}]"


def _number_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _n(count: int, noun: str = "value") -> str:
    """ "1 value", "3 values"; "1 null", "3 nulls"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _percent(value: object) -> str:
    return f"{float(value) * 100:.4g}%" if isinstance(value, (int, float)) else "?"


def _short_set(values: object, limit: int = 5) -> str:
    items = list(values) if isinstance(values, list) else []
    more = f", … {len(items) - limit} more" if len(items) > limit else ""
    return "{" + ", ".join(json.dumps(v, ensure_ascii=False) for v in items[:limit]) + more + "}"


def _names(keys: Sequence[str]) -> str:
    return " and ".join(repr(key) for key in keys)


def _yaml_type(value: object) -> str:
    names = {dict: "a mapping", list: "a list", str: "text", type(None): "nothing"}
    return names.get(type(value), f"a {type(value).__name__}")
