"""The JSON form of store records: every record reads back equal, and data that does not
fit its type is refused with a one-line MalformedRequest (it may come from anyone)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from loopline.errors import MalformedRequest
from loopline.store import CodeVersion, Direction, Experiment, LinkKind, MetricPoint, Run
from loopline.store.query import And, Compare, Condition, Field, Or, OrderBy
from loopline.store.records import RunStatus
from loopline.store.remote._codec import decode, encode

NOW = datetime(2026, 12, 7, 13, 0, 0, 123456, tzinfo=UTC)


def _through_json(hint: Any, value: Any) -> Any:
    text = json.dumps(encode(value), allow_nan=False)  # strictly JSON: no NaN literals
    return decode(hint, json.loads(text))


def _run(**changes: Any) -> Run:
    base: dict[str, Any] = {
        "id": "r1",
        "experiment_id": "e1",
        "experiment": "churn",
        "name": "first",
        "status": RunStatus.FINISHED,
        "start_time": NOW,
        "end_time": NOW + timedelta(seconds=3),
        "parent_id": None,
        "user": "ana",
        "source": "train.py",
        "code": CodeVersion(commit="abc", dirty=True),
        "params": {"C": "1.0"},
        "metrics": {"auc": 0.93, "loss": math.inf},
        "tags": {"team": "risk"},
    }
    return Run(**{**base, **changes})


def test_records_read_back_equal() -> None:
    run = _run()
    assert _through_json(Run, run) == run
    assert _through_json(list[Run], [run, _run(id="r2", end_time=None)]) == [
        run,
        _run(id="r2", end_time=None),
    ]
    assert _through_json(Run | None, None) is None
    experiment = Experiment("e1", "churn", NOW, run_count=3)
    assert _through_json(Experiment, experiment) == experiment
    local = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5)))
    assert _through_json(datetime, local) == local


def test_nan_and_infinite_metrics_survive_strict_json() -> None:
    point = _through_json(MetricPoint, MetricPoint("loss", math.nan, 3, NOW))
    assert math.isnan(point.value) and point.step == 3
    assert _through_json(dict[str, float], {"a": -math.inf}) == {"a": -math.inf}
    # a string where str is allowed stays a string, even when it spells NaN
    assert _through_json(float | str, "NaN") == "NaN"
    assert math.isnan(_through_json(float, "NaN"))


def test_a_search_condition_reads_back_with_its_union_members() -> None:
    auc = Field("metric", "auc")
    condition: Condition = Or(
        (
            And((Compare(auc, ">", 0.9), Compare(Field("tag", "team"), "in", ("a", "b")))),
            Compare(Field("param", "C"), "is null", None),
        )
    )
    assert _through_json(Condition, condition) == condition
    assert _through_json(tuple[OrderBy, ...], (OrderBy(auc, descending=True),)) == (
        OrderBy(auc, True),
    )


def test_enums_and_tuples() -> None:
    assert _through_json(Direction, Direction.OUTPUT) is Direction.OUTPUT
    assert _through_json(tuple[LinkKind, ...], (LinkKind.ARTIFACT,)) == (LinkKind.ARTIFACT,)
    assert _through_json(tuple[str, int], ("a", 1)) == ("a", 1)


@pytest.mark.parametrize(
    ("hint", "data", "message"),
    [
        (Run, {**encode(_run()), "extra": 1}, "unknown field 'extra'"),
        (Run, {"id": "r1"}, "missing"),
        (Run, {**encode(_run()), "start_time": "2026-12-07T13:00:00"}, "UTC offset"),
        (Run, {**encode(_run()), "start_time": "yesterday"}, "ISO-8601"),
        (Run, {**encode(_run()), "status": "sleeping"}, "RunStatus"),
        (Run, {**encode(_run()), "metrics": {"auc": "high"}}, "metrics.auc"),
        (Run, [1, 2], "an object"),
        (int, True, "an integer"),
        (int, 1.5, "an integer"),
        (float, "1.5", "a number"),
        (bool, 1, "true or false"),
        (str, None, "a string"),
        (tuple[str, int], ["a"], "an array of 2"),
        (Condition, {"$type": "Subprocess", "items": []}, "a known $type"),
        (Condition, {"items": "x"}, "Compare or And or Or"),
    ],
)
def test_data_that_does_not_fit_is_refused(hint: Any, data: Any, message: str) -> None:
    with pytest.raises(MalformedRequest, match=message.replace("$", r"\$")):
        decode(hint, data)


def test_deep_nesting_is_refused() -> None:
    deep: Any = {"$type": "Compare", "field": {"kind": "metric", "key": "a"}, "op": ">", "value": 1}
    for _ in range(40):
        deep = {"$type": "And", "items": [deep]}
    with pytest.raises(MalformedRequest, match="nested too deeply"):
        decode(Condition, deep)


def test_what_cannot_be_json_is_not_encoded() -> None:
    with pytest.raises(TypeError, match="cannot encode a bytes"):
        encode(b"raw")
