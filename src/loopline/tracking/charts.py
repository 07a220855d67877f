"""A metric's history as a chart draws it: at most two points per pixel column.

A chart `width` pixels wide cannot show more than the lowest and the highest value in
each column of pixels, so `get_metric_chart` cuts the x range into `width` buckets and
keeps, in each, the point of the lowest and the point of the highest value (at their own
x, in x order): at most 2 x width points, and every spike and dip of the full history
still drawn. A range (`start`, `end`) reads only the points inside it, so a chart zoomed
in asks again and gets finer points, down to every point.

The database does the thinning (`MetricSpan.buckets`: one grouped pass, one row read a
bucket), so a 100,000-point metric costs ~40 ms on PostgreSQL and ~130 ms on SQLite
where reading every point cost 4-5x that (benchmarks/bench_ui.py). NaN and infinite
values have no place on a chart's y axis; they are counted in `skipped` and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from loopline.errors import InvalidInput
from loopline.project import stores
from loopline.store import MetricSpan

WIDTHS = (10, 4000)
"""The buckets a chart may ask for: from a thumbnail to a wide screen at 2x."""
MAX_CHART_POINTS = 100_000
"""Points read for a chart that is not thinned (its finite points fit in 2 x width, but
it may hold any number of NaN): past it, the first ones, and `truncated` says so."""


@dataclass(frozen=True)
class MetricChart:
    """The points of one metric to draw: `xs` (steps, or epoch seconds for x="time") and
    `values`, in x order, all finite; `points` finite points in the range, of which these
    are all (`downsampled` False) or the lowest and highest of each of `width` buckets."""

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
    if isinstance(width, bool) or not isinstance(width, int) or not WIDTHS[0] <= width <= WIDTHS[1]:
        raise InvalidInput(f"width must be {WIDTHS[0]}..{WIDTHS[1]} buckets, got {width!r}")
    span = chart_span(x, start, end, width)
    metadata = stores().metadata
    run_id = metadata.runs.resolve_run_id(run_id)
    series = metadata.runs.get_metric_series(run_id, key, span)
    along: list[float] = list(series.step) if x == "step" else [t / 1000 for t in series.timestamp]
    kept = [
        (at, value) for at, value in zip(along, series.value, strict=True) if math.isfinite(value)
    ]
    return MetricChart(
        run_id=run_id,
        key=key,
        x=x,
        xs=[at for at, _ in kept],
        values=[value for _, value in kept],
        points=series.finite,
        skipped=series.total - series.finite,
        downsampled=series.thinned,
        truncated=not series.thinned and len(series.step) < series.total,
    )


def chart_span(x: str, start: float | None, end: float | None, width: int) -> MetricSpan:
    """The store's span of a chart: whole steps inside [start, end], or whole
    milliseconds for a time axis (given in seconds), thinned to `width` buckets."""
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
        limit=MAX_CHART_POINTS,
        buckets=width,
    )
