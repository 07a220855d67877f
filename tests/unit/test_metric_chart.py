"""The downsampling of metric charts (`tracking.charts.lowest_and_highest`): at most two
points a bucket, and in each bucket the lowest and the highest value kept at their own x,
for any data (hypothesis) and for a known series with a spike and a dip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopline.errors import InvalidInput
from loopline.tracking.charts import _span, lowest_and_highest


def buckets_of(xs: np.ndarray, buckets: int, low: float, high: float) -> np.ndarray:
    """Each point's bucket, one point at a time (the same float steps as the code under
    test, so that a point on a boundary falls alike)."""
    scale = buckets / (high - low) if high > low else 0.0
    found = []
    for x in xs:
        index = int((x - low) * scale)
        found.append(min(max(index, 0), buckets - 1))
    return np.array(found)


@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=400),
    gaps=st.data(),
    buckets=st.integers(1, 40),
)
def test_each_bucket_keeps_its_lowest_and_highest_point_and_no_more_than_two(
    values: list[float], gaps: st.DataObject, buckets: int
) -> None:
    steps = gaps.draw(st.lists(st.integers(0, 5), min_size=len(values), max_size=len(values)))
    xs = np.cumsum(np.array(steps, dtype=np.float64))  # sorted, with repeated x
    ys = np.array(values)
    kept = lowest_and_highest(xs, ys, buckets, float(xs[0]), float(xs[-1]))
    assert list(kept) == sorted(set(kept.tolist()))  # in x order, each point once
    of_point = buckets_of(xs, buckets, float(xs[0]), float(xs[-1]))
    for bucket in set(of_point.tolist()):
        inside = np.flatnonzero(of_point == bucket)
        chosen = [index for index in kept if of_point[index] == bucket]
        assert 1 <= len(chosen) <= 2
        assert {ys[index] for index in chosen} == {ys[inside].min(), ys[inside].max()}


def test_a_spike_and_a_dip_survive_a_hundredfold_reduction() -> None:
    xs = np.arange(20_000, dtype=np.float64)
    ys = np.sin(xs / 1000)
    ys[12_345], ys[7_777] = 50.0, -50.0
    kept = lowest_and_highest(xs, ys, 100, 0.0, 19_999.0)
    assert len(kept) <= 200
    assert 12_345 in kept and 7_777 in kept
    assert ys[kept].max() == 50.0 and ys[kept].min() == -50.0


def test_one_x_value_is_one_bucket() -> None:
    kept = lowest_and_highest(np.zeros(5), np.array([3.0, 1.0, 4.0, 1.0, 5.0]), 10, 0.0, 0.0)
    assert kept.tolist() == [1, 4]  # the first of the two lowest, and the highest


def test_a_charts_range_becomes_whole_steps_or_milliseconds_inside_it() -> None:
    assert (_span("step", 1.5, 9.5).start, _span("step", 1.5, 9.5).end) == (2, 9)
    by_time = _span("time", 1.0005, 2.0)
    assert (by_time.x, by_time.start, by_time.end) == ("time", 1001, 2000)
    for bad in ((math.nan, None), (None, math.inf), (5.0, 1.0), (1e300, None)):
        with pytest.raises(InvalidInput):
            _span("step", *bad)
    with pytest.raises(InvalidInput):
        _span("epoch", None, None)
