"""A metric's history as a chart draws it: at most two points per pixel column.

A chart `width` pixels wide cannot show more than the lowest and the highest value in
each column of pixels, so `get_metric_chart` cuts the x range into `width` buckets and
keeps, in each, the point of the lowest and the point of the highest value (at their own
x, in x order): at most 2 x width points, and every spike and dip of the full history
still drawn. A range (`start`, `end`) reads only the points inside it, so a chart zoomed
in asks again and gets finer points, down to every point.

The store reads the range as plain columns (`RunStore.get_metric_series`) and numpy
picks the points: 100,000 points take ~0.1 s, most of it the database read (see
benchmarks/bench_ui.py). NaN and infinite values have no place on a chart's y axis; they
are counted in `skipped` and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from loopline.errors import InvalidInput
from loopline.project import stores
from loopline.store import MetricSpan

if TYPE_CHECKING:
    import numpy as np

WIDTHS = (10, 4000)
"""The buckets a chart may ask for: from a thumbnail to a wide screen at 2x."""
MAX_CHART_POINTS = 2_000_000
"""Points read for one chart at most (~50 MB of columns); past it, the first ones (in x
order) are used and `truncated` says so: a zoom into the range reads the rest."""


@dataclass(frozen=True)
class MetricChart:
    """The points of one metric to draw: `xs` (steps, or epoch seconds for x="time") and
    `values`, in x order; `points` finite points in the range, of which these are all
    (`downsampled` False) or the lowest and highest of each of `width` buckets."""

    run_id: str
    key: str
    x: Literal["step", "time"]
    xs: list[float]
    values: list[float]
    points: int
    skipped: int
    downsampled: bool
    truncated: bool


def get_metric_chart(
    run_id: str,
    key: str,
    *,
    x: Literal["step", "time"] = "step",
    width: int = 1000,
    start: float | None = None,
    end: float | None = None,
) -> MetricChart:
    """The points of metric `key` of the run that a chart `width` pixels wide draws (see
    the module docstring), over the whole history or from `start` to `end` of the x axis
    (steps, or epoch seconds for x="time").

    Raises:
        InvalidInput: a width outside 10..4000, an unknown axis, a bound that is not a
            finite number, or `start` after `end`.
        NotFound: no such run.
    """
    import numpy as np

    if isinstance(width, bool) or not isinstance(width, int) or not WIDTHS[0] <= width <= WIDTHS[1]:
        raise InvalidInput(f"width must be {WIDTHS[0]}..{WIDTHS[1]} buckets, got {width!r}")
    span = _span(x, start, end)
    metadata = stores().metadata
    run_id = metadata.runs.resolve_run_id(run_id)
    series = metadata.runs.get_metric_series(run_id, key, span)
    truncated = len(series.step) > MAX_CHART_POINTS
    along = series.step if x == "step" else series.timestamp
    xs = np.asarray(along[:MAX_CHART_POINTS], dtype=np.float64)
    values = np.asarray(series.value[:MAX_CHART_POINTS], dtype=np.float64)
    finite = np.isfinite(values)
    skipped = int(xs.size - np.count_nonzero(finite))
    if skipped:
        xs, values = xs[finite], values[finite]
    if x == "time":
        xs = xs / 1000.0
    downsampled = xs.size > 2 * width
    if downsampled:
        low = xs[0] if start is None else start
        high = xs[-1] if end is None else end
        kept = lowest_and_highest(xs, values, width, low, high)
        xs, values = xs[kept], values[kept]
    return MetricChart(
        run_id=run_id,
        key=key,
        x=x,
        xs=xs.tolist(),
        values=values.tolist(),
        points=int(np.count_nonzero(finite)),
        skipped=skipped,
        downsampled=downsampled,
        truncated=truncated,
    )


def lowest_and_highest(
    xs: np.ndarray, values: np.ndarray, buckets: int, low: float, high: float
) -> np.ndarray:
    """The sorted indexes of the lowest and the highest value (the first of equals) in
    each of `buckets` equal slices of [low, high], for points sorted by `xs`."""
    import numpy as np

    scale = buckets / (high - low) if high > low else 0.0
    bucket = np.clip(((xs - low) * scale).astype(np.int64), 0, buckets - 1)
    starts = np.flatnonzero(np.diff(bucket, prepend=-1))  # xs sorted: buckets are runs
    group = np.cumsum(np.diff(bucket, prepend=bucket[0]) != 0)  # the run each point is in
    kept = []
    for reduce in (np.minimum, np.maximum):
        extreme = reduce.reduceat(values, starts)
        at = np.flatnonzero(values == extreme[group])
        firsts = np.unique(group[at], return_index=True)[1]  # first such point per run
        kept.append(at[firsts])
    found: np.ndarray = np.unique(np.concatenate(kept))
    return found


def _span(x: str, start: float | None, end: float | None) -> MetricSpan:
    """The store's range for a chart's bounds: whole steps inside [start, end], or whole
    milliseconds for a time axis (in seconds)."""
    if x not in ("step", "time"):
        raise InvalidInput(f"a chart's x axis is 'step' or 'time', got {x!r}")
    scale = 1000 if x == "time" else 1
    for name, bound in (("start", start), ("end", end)):
        if bound is not None and (
            isinstance(bound, bool)
            or not isinstance(bound, int | float)
            or not math.isfinite(bound)
            or abs(bound * scale) >= 2**62
        ):
            raise InvalidInput(f"{name} must be a finite number, got {bound!r}")
    if start is not None and end is not None and start > end:
        raise InvalidInput(f"start ({start}) is after end ({end})")
    return MetricSpan(
        x="time" if x == "time" else "step",
        start=None if start is None else math.ceil(start * scale),
        end=None if end is None else math.floor(end * scale),
        limit=MAX_CHART_POINTS + 1,
    )
