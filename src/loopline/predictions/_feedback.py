"""Feedback: the ground truth for logged requests, recorded by request id and row, and
read back over a time window (the newest label of each row)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidField, InvalidInput
from loopline.predictions._window import resolve_stores, window
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    import pyarrow as pa

    from loopline.project import Stores

MAX_FEEDBACK_ITEMS = 10_000
MAX_LABEL_CHARS = 1000
MAX_ROW = 2**31 - 1
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def record_feedback(
    deployment: str,
    items: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    *,
    stores: Stores | None = None,
) -> int:
    """Record ground truth for logged requests, all in one transaction; the count stored.

    Each item is {"request_id": str, "label": JSON scalar, "row": int >= 0 (default 0)}:
    request ids are 1-64 letters, digits, '_' or '-'; a label is a finite number, a
    boolean or a string of up to 1000 characters. One item may be given without a list.

    Raises:
        InvalidInput: no items, more than 10,000, or an item that is not an object.
        InvalidField: a missing, unknown or malformed field (names the field and the
            index of the item as `row`); nothing is stored.
    """
    check_deployment_name(deployment)
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, list | tuple):
        raise InvalidInput(f"feedback must be an object or a list of objects, got {_kind(items)}")
    if not items:
        raise InvalidInput("no feedback given; send at least one {request_id, label} item")
    if len(items) > MAX_FEEDBACK_ITEMS:
        raise InvalidInput(
            f"{len(items)} feedback items in one call; at most {MAX_FEEDBACK_ITEMS} are allowed",
            hint="send them in several batches",
        )
    checked = [_feedback_item(item, index) for index, item in enumerate(items)]
    return resolve_stores(stores).metadata.predictions.add_feedback(deployment, checked)


def read_feedback(
    deployment: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    stores: Stores | None = None,
) -> pa.Table:
    """Labels of `deployment` recorded in [since, until), oldest first; of several labels
    for one (request_id, row) in the window, the newest.

    Columns: request_id string, row int32, label, time timestamp[us, UTC]. `label` is
    typed: bool, int64 or float64 (numbers: int64 when all are integers) or string, when
    every label in the result has that type (string when there are none); when types
    are mixed, every label is text (strings as they are, other values as their JSON).
    """
    import pyarrow as pa

    since, until = window(since, until)
    found = resolve_stores(stores).metadata.predictions.feedback(deployment, since, until)
    labels = [json.loads(f.label_json) for f in found]
    return pa.table(
        {
            "request_id": pa.array([f.request_id for f in found], pa.string()),
            "row": pa.array([f.row for f in found], pa.int32()),
            "label": _labels(labels),
            "time": pa.array([f.time for f in found], pa.timestamp("us", tz="UTC")),
        }
    )


def _feedback_item(item: Any, index: int) -> tuple[str, int, str]:
    if not isinstance(item, Mapping):
        raise InvalidInput(f"feedback item {index} must be an object, got {_kind(item)}")
    for key in item:
        if key not in ("request_id", "label", "row"):
            raise InvalidField(
                f"feedback item {index} has an unknown field {key!r}",
                field=str(key),
                row=index,
                hint="an item holds request_id, label and optionally row",
            )
    request_id = item.get("request_id")
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        what = "has no 'request_id'" if request_id is None else f"has request_id {request_id!r}"
        raise InvalidField(
            f"feedback item {index} {what}",
            field="request_id",
            row=index,
            hint="a request id is 1-64 letters, digits, '_' or '-' (the X-Request-Id answer)",
        )
    label = item.get("label")
    problem = _label_problem(label)
    if problem is not None:
        raise InvalidField(f"feedback item {index}: label {problem}", field="label", row=index)
    row = item.get("row", 0)
    if type(row) is not int or not 0 <= row <= MAX_ROW:
        raise InvalidField(
            f"feedback item {index}: row must be an integer >= 0, got {row!r}",
            field="row",
            row=index,
        )
    return request_id, row, json.dumps(label, ensure_ascii=False)


def _label_problem(label: Any) -> str | None:
    if label is None:
        return "is missing or null"
    if isinstance(label, bool | int):
        return None
    if isinstance(label, float):
        return None if math.isfinite(label) else f"must be finite, got {label!r}"
    if isinstance(label, str):
        if len(label) > MAX_LABEL_CHARS:
            return f"is {len(label)} characters long; at most {MAX_LABEL_CHARS} are allowed"
        return None
    return f"must be a number, a string or a boolean, got {_kind(label)}"


def _labels(labels: list[Any]) -> pa.Array:
    import pyarrow as pa

    kinds = {bool if type(v) is bool else float if type(v) in (int, float) else str for v in labels}
    if len(kinds) <= 1:
        try:
            return pa.array(labels) if labels else pa.array([], pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # an int beyond 64 bits
            pass
    return pa.array([v if isinstance(v, str) else json.dumps(v) for v in labels], pa.string())


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", type(None): "null", str: "a string"}
    return names.get(type(value), type(value).__name__)
