"""A deployment's traffic over time from its prediction log (`read_traffic`, what the web
UI's deployment page charts): requests, rows, latency percentiles, the versions that
answered, shadow errors and feedback coverage per bucket, computed from the Parquet
files the real PredictionLog delivered. On SQLite: the index and feedback queries it
uses are conformance-checked on both back-ends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from loopline.errors import InvalidInput
from loopline.predictions import Block, PredictionLog, PredictionRecord, read_traffic

START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def opened(tmp_path: Any) -> Iterator[Any]:
    from loopline.config import init_project
    from loopline.project import open_stores, project_settings

    init_project(tmp_path)
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith("LOOPLINE_") and name != "LOOPLINE_TEST_POSTGRES_URL":
                env.delenv(name)
        stores = open_stores(project_settings(tmp_path))
    yield stores
    stores.close()


def record(request_id: str, at: datetime, rows: int, latency: float, **kw: Any) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        time=at,
        deployment="churn",
        model_version=kw.pop("version", "churn/1"),
        runtime_version="native",
        endpoint="predict",
        predictions=np.zeros(rows, dtype=np.int64),
        probabilities=None,
        latency_ms=latency,
        block=Block(("x",), rows, np.ones((rows, 1))),
        **kw,
    )


def test_traffic_counts_requests_latency_versions_errors_and_feedback_per_bucket(
    opened: Any,
) -> None:
    from loopline.predictions import record_feedback

    with PredictionLog(opened, flush_seconds=60) as log:
        # bucket 0 (10:00-10:10): four requests of 1 row, latencies 1..4 ms, one by churn/2
        for i in range(4):
            version = "churn/2" if i == 3 else "churn/1"
            log(record(f"a{i}", START + MINUTE * i, 1, float(i + 1), version=version))
        # bucket 2 (10:20-10:30): one request of 3 rows whose shadow failed
        log(
            record(
                "b0", START + MINUTE * 25, 3, 50.0, shadow_version="churn/3", shadow_error="boom"
            )
        )
        # before the window and at its end: not counted
        log(record("early", START - MINUTE, 1, 9.0))
        log(record("late", START + MINUTE * 30, 1, 9.0))
    record_feedback(
        "churn",
        [{"request_id": "a0", "label": 1}, {"request_id": "b0", "row": 2, "label": 0}],
        stores=opened,
    )
    found = read_traffic(
        "churn", since=START, until=START + MINUTE * 30, bucket=MINUTE * 10, stores=opened
    )
    assert found.starts == (START, START + MINUTE * 10, START + MINUTE * 20)
    assert found.requests == (4, 0, 1) and found.rows == (4, 0, 3)
    assert found.latency_p50 == (2.5, None, 50.0)
    assert found.latency_p95 is not None and found.latency_p95[0] == pytest.approx(3.85)
    assert found.versions == {"churn/1": (3, 0, 1), "churn/2": (1, 0, 0)}
    assert found.shadowed == (0, 0, 1) and found.shadow_errors == (0, 0, 1)
    assert found.labelled == (1, 0, 1) and found.coverage == pytest.approx(2 / 7)
    assert (found.total_requests, found.total_rows) == (5, 7)


def test_traffic_of_a_deployment_without_a_log_is_empty_buckets(opened: Any) -> None:
    found = read_traffic(
        "quiet", since=START, until=START + timedelta(hours=1), bucket=MINUTE * 20, stores=opened
    )
    assert found.requests == (0, 0, 0) and found.latency_p95 == (None, None, None)
    assert found.versions == {} and found.coverage is None


@pytest.mark.parametrize(
    ("since", "until", "bucket", "message"),
    [
        (START, START - MINUTE, MINUTE, "ends .* before it starts"),
        (START, START + MINUTE, timedelta(0), "bucket must be a positive timedelta"),
        (START, START + timedelta(days=30), MINUTE, "buckets asked for; at most 2000"),
    ],
)
def test_a_window_or_bucket_that_cannot_be_charted_is_refused(
    opened: Any, since: datetime, until: datetime, bucket: timedelta, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        read_traffic("churn", since=since, until=until, bucket=bucket, stores=opened)
    with pytest.raises(InvalidInput, match="invalid deployment name"):
        read_traffic("../x", since=START, until=START + MINUTE, bucket=MINUTE, stores=opened)
