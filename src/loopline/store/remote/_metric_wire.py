"""The wire form of metric points, both ways: a batch the client's buffer sends and a
run's history the server answers.

Metric logging is the hottest path over HTTP, so points travel as columns, not as one
object per point: a batch is

    {"batch": "32 hex characters" (optional),
     "runs": [run ids], "keys": [metric keys],
     "run": [index into runs], "key": [index into keys],
     "value": [numbers, or "NaN" / "Infinity" / "-Infinity"],
     "step": [integers], "timestamp": [epoch milliseconds]}

(the run id and key, repeated on every point, are sent once; ~40 bytes a point). The
server reads it with plain loops over whole columns (`read_batch`): no per-point model
validation; a bad row is refused as a whole batch with 422 naming the row and column,
and nothing of the batch is stored. `batch` is the batch's id: the server applies a batch
once however often it arrives (store/_metrics.py), so a batch with an id is sent again
like any idempotent call when its answer is lost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidField, MalformedRequest
from loopline.store._names import check_id, check_key

if TYPE_CHECKING:  # store._metrics imports SQLAlchemy, which a remote client never needs
    from loopline.store._metrics import Point
    from loopline.store.records import MetricSeries

COLUMNS = ("run", "key", "value", "step", "timestamp")
MAX_POINTS = 200_000  # points per request: ~9 MB of JSON, below the server's body limit
INT64 = (-(2**63), 2**63 - 1)
_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_LARGEST = 1.7976931348623157e308


def _word(value: float) -> str:
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def batch_body(points: Sequence[Point], batch_id: str | None = None) -> dict[str, Any]:
    """The columnar body of `points` (run_id, key, value, step, timestamp_ms), with the
    batch's id if it has one."""
    runs: dict[str, int] = {}
    keys: dict[str, int] = {}
    head = {} if batch_id is None else {"batch": batch_id}
    return {
        **head,
        "run": [runs.setdefault(p[0], len(runs)) for p in points],
        "key": [keys.setdefault(p[1], len(keys)) for p in points],
        # NaN and the infinities fail both comparisons: JSON has no such numbers
        "value": [
            v if -_LARGEST <= v <= _LARGEST else _word(v) for v in (float(p[2]) for p in points)
        ],
        "step": [p[3] for p in points],
        "timestamp": [p[4] for p in points],
        "runs": list(runs),
        "keys": list(keys),
    }


def read_batch(data: Any) -> tuple[list[Point], str | None]:
    """The points of a batch body and its id, if it has one (see the module docstring).

    MalformedRequest (400) for a body of the wrong shape; InvalidInput (422) for a bad
    batch id, run id or key; InvalidField (422, with `row` and `field`) for a bad point.
    """
    if not isinstance(data, dict):
        raise MalformedRequest("a metric batch is a JSON object of columns")
    unknown = set(data) - {*COLUMNS, "runs", "keys", "batch"}
    if unknown:
        raise MalformedRequest(f"a metric batch has no field {sorted(unknown)[0]!r}")
    columns = [_list(data, name) for name in ("runs", "keys", *COLUMNS)]
    runs, keys, run, key, value, step, timestamp = columns
    count = len(run)
    if any(len(column) != count for column in (key, value, step, timestamp)):
        raise MalformedRequest("the columns of a metric batch must have the same length")
    if count > MAX_POINTS:
        raise MalformedRequest(f"a metric batch holds at most {MAX_POINTS:,} points")
    run_ids = [check_id("run", item) for item in runs]
    names = [check_key("metric", item) for item in keys]
    _indexes(run, len(run_ids), "run")
    _indexes(key, len(names), "key")
    _integers(step, "step", INT64)
    _integers(timestamp, "timestamp", INT64)
    values = _floats(value)
    batch_id = None if data.get("batch") is None else check_id("metric batch", data["batch"])
    points = [
        (run_ids[r], names[k], v, s, t)
        for r, k, v, s, t in zip(run, key, values, step, timestamp, strict=True)
    ]
    return points, batch_id


def _list(data: dict[str, Any], name: str) -> list[Any]:
    column = data.get(name)
    if not isinstance(column, list):
        raise MalformedRequest(f"a metric batch needs {name!r}: an array")
    return column


def _indexes(column: list[Any], size: int, name: str) -> None:
    """Every item an int in range(size); whole-column checks first (C speed), the row
    only when one fails."""
    if not column:
        return
    if {type(item) for item in column} == {int} and min(column) >= 0 and max(column) < size:
        return
    for row, item in enumerate(column):
        if type(item) is not int or not 0 <= item < size:
            raise InvalidField(
                f"point {row}: {name} must index the batch's {name}s (0..{size - 1}), "
                f"got {_shown(item)}",
                field=name,
                row=row,
            )


def _integers(column: list[Any], name: str, bounds: tuple[int, int]) -> None:
    if not column:
        return
    low, high = bounds
    if {type(item) for item in column} == {int} and min(column) >= low and max(column) <= high:
        return
    for row, item in enumerate(column):
        if type(item) is not int or not low <= item <= high:
            raise InvalidField(
                f"point {row}: {name} must be an integer in {low}..{high}, got {_shown(item)}",
                field=name,
                row=row,
            )


def _floats(column: list[Any]) -> list[float]:
    kinds = {type(item) for item in column}
    if kinds <= {float}:
        return column
    if kinds <= {float, int, str}:
        try:
            return [
                item if type(item) is float else _WORDS[item] if type(item) is str else float(item)
                for item in column
            ]
        except (KeyError, OverflowError):
            pass
    for row, item in enumerate(column):
        ok = type(item) in (float, int) or (type(item) is str and item in _WORDS)
        if ok and type(item) is int:
            try:
                float(item)
            except OverflowError:
                ok = False
        if not ok:
            raise InvalidField(
                f"point {row}: value must be a number (or 'NaN', 'Infinity', '-Infinity'), "
                f"got {_shown(item)}",
                field="value",
                row=row,
            )
    raise AssertionError("unreachable: a column that failed has a bad row")  # pragma: no cover


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def series_body(series: MetricSeries) -> dict[str, Any]:
    """A run's points of one metric (a MetricSeries) as columns: value, step, timestamp
    (ms), with the counts of the span (total, finite) and whether it was thinned."""
    return {
        "key": series.key,
        "value": [v if -_LARGEST <= v <= _LARGEST else _word(v) for v in series.value],
        "step": series.step,
        "timestamp": series.timestamp,
        "total": series.total,
        "finite": series.finite,
        "thinned": series.thinned,
    }


def read_series(data: Any) -> MetricSeries:
    """The MetricSeries of a history answer (`series_body`)."""
    from loopline.store.records import MetricSeries

    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        raise MalformedRequest("a metric history answer is an object of columns")
    value, step, timestamp = (_list(data, name) for name in ("value", "step", "timestamp"))
    if not len(value) == len(step) == len(timestamp):
        raise MalformedRequest("the columns of a metric history must have the same length")
    _integers(step, "step", INT64)
    _integers(timestamp, "timestamp", INT64)
    total, finite = data.get("total", len(step)), data.get("finite", 0)
    _integers([total, finite], "count", (0, INT64[1]))
    thinned = data.get("thinned", False)
    if not isinstance(thinned, bool):
        raise MalformedRequest("thinned must be true or false")
    return MetricSeries(data["key"], step, timestamp, _floats(value), total, finite, thinned)


def read_history(data: Any) -> list[Any]:
    """The MetricPoints of a history answer (`series_body`)."""
    from loopline.store.records import MetricPoint, ms_to_datetime

    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        raise MalformedRequest("a metric history answer is an object of columns")
    key = data["key"]
    value, step, timestamp = (_list(data, name) for name in ("value", "step", "timestamp"))
    if not len(value) == len(step) == len(timestamp):
        raise MalformedRequest("the columns of a metric history must have the same length")
    _integers(step, "step", INT64)
    _integers(timestamp, "timestamp", INT64)
    return [
        MetricPoint(key=key, value=v, step=s, timestamp=ms_to_datetime(t))
        for v, s, t in zip(_floats(value), step, timestamp, strict=True)
    ]
