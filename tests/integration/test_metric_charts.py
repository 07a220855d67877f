"""Charts' reads of a metric, on SQLite and PostgreSQL: thinned by the database to the
lowest and highest finite point of each bucket (at most two a bucket, at their own x),
for any data (hypothesis); and `tracking.get_metric_chart`'s bounds."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.errors import InvalidInput
from loopline.store import MetadataStore, MetricSpan
from loopline.tracking.charts import chart_span

VALUES = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0]),
)


def buckets_of(xs: list[int], buckets: int, low: int, high: int) -> list[int]:
    """Each x's bucket, one at a time, by the same float steps as the SQL."""
    scale = buckets / (high - low) if high > low else 0.0
    return [min(int((x - low) * scale), buckets - 1) for x in xs]


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(VALUES, min_size=30, max_size=300),  # mostly more than 2 x buckets
    gaps=st.data(),
    buckets=st.integers(1, 12),
)
def test_a_thinned_span_keeps_each_buckets_lowest_and_highest_point(
    store: MetadataStore, values: list[float], gaps: Any, buckets: int
) -> None:
    steps = gaps.draw(st.lists(st.integers(0, 4), min_size=len(values), max_size=len(values)))
    xs = [sum(steps[: index + 1]) for index in range(len(values))]  # sorted, repeats
    run_id = store.runs.create_run(store.runs.get_or_create_experiment("e").id, user="t").id
    store.runs.log_metric_points(
        [
            (run_id, "m", value, x, 1000 + index)
            for index, (x, value) in enumerate(zip(xs, values, strict=True))
        ]
    )
    found = store.runs.get_metric_series(run_id, "m", MetricSpan(buckets=buckets))
    finite = [(x, value) for x, value in zip(xs, values, strict=True) if math.isfinite(value)]
    assert (found.total, found.finite) == (len(values), len(finite))
    if not found.thinned:  # few enough: every point, as stored
        assert len(finite) <= 2 * buckets and found.step == sorted(xs)
        return
    assert found.step == sorted(found.step)
    assert set(zip(found.step, found.value, strict=True)) <= set(
        finite
    )  # stored points, at their own x
    of_point = buckets_of([x for x, _ in finite], buckets, xs[0], xs[-1])
    of_kept = buckets_of(found.step, buckets, xs[0], xs[-1])
    for bucket in set(of_point):
        inside = [value for (_, value), at in zip(finite, of_point, strict=True) if at == bucket]
        kept = [value for value, at in zip(found.value, of_kept, strict=True) if at == bucket]
        assert 1 <= len(kept) <= 2 and {min(kept), max(kept)} == {min(inside), max(inside)}


def test_a_spike_and_a_dip_survive_a_hundredfold_thinning(store: MetadataStore) -> None:
    run_id = store.runs.create_run(store.runs.get_or_create_experiment("e").id, user="t").id
    values = [math.sin(step / 1000) for step in range(20_000)]
    values[12_345], values[7_777] = 50.0, -50.0
    store.runs.log_metric_points(
        [(run_id, "m", value, step, 5000 + step) for step, value in enumerate(values)]
    )
    found = store.runs.get_metric_series(run_id, "m", MetricSpan(buckets=100))
    assert found.thinned and len(found.step) <= 200
    shown = dict(zip(found.step, found.value, strict=True))
    assert shown[12_345] == 50.0 and shown[7_777] == -50.0
    by_time = store.runs.get_metric_series(
        run_id, "m", MetricSpan(x="time", start=5000 + 7000, end=5000 + 8000, buckets=10)
    )
    assert by_time.thinned and by_time.total == 1001 and len(by_time.step) <= 20
    assert -50.0 in by_time.value and by_time.timestamp == sorted(by_time.timestamp)
    assert min(by_time.step) >= 7000 and max(by_time.step) <= 8000


def test_a_charts_range_becomes_whole_steps_or_milliseconds_inside_it() -> None:
    assert (chart_span("step", 1.5, 9.5, 10).start, chart_span("step", 1.5, 9.5, 10).end) == (2, 9)
    by_time = chart_span("time", 1.0005, 2.0, 10)
    assert (by_time.x, by_time.start, by_time.end, by_time.buckets) == ("time", 1001, 2000, 10)
    for bad in ((math.nan, None), (None, math.inf), (5.0, 1.0), (1e300, None)):
        with pytest.raises(InvalidInput):
            chart_span("step", *bad, 10)
    with pytest.raises(InvalidInput):
        chart_span("epoch", None, None, 10)
