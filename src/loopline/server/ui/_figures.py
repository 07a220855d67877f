"""Small figures of the dataset and model pages, computed here and drawn as SVG by the
templates (`_figures.html`): histograms and bars of most frequent values.

They are drawn on the server so that a profile of forty columns needs no script and
shows without JavaScript. Geometry goes in SVG attributes (x, y, width, height), which
the Content-Security-Policy allows, never in style="..."; labels are text for Jinja's
autoescape (a column value `<script>` is shown, never run).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WIDTH = 240  # a histogram's viewBox, in SVG units (the CSS scales it)
HEIGHT = 64
BAR_WIDTH = 160  # the longest bar of a top-values figure
BAR_HEIGHT = 16
LABEL = 32  # characters of a value shown beside its bar (the full value is its title)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the bar's tooltip: its range (or value) and count


@dataclass(frozen=True)
class Histogram:
    bars: tuple[Bar, ...]
    low: str  # the first edge, under the left end
    high: str  # the last edge, under the right end
    width: int = WIDTH
    height: int = HEIGHT


@dataclass(frozen=True)
class ValueBar:
    value: str
    shown: str  # `value`, cut to LABEL characters
    count: int
    width: float
    y: float


def histogram(edges: Sequence[float], counts: Sequence[int]) -> Histogram | None:
    """Bars for `counts` between `edges` (one more edge than counts); None when the
    histogram is empty or malformed (a profile read from an older loopline)."""
    if not counts or len(edges) != len(counts) + 1 or not all(map(math.isfinite, edges)):
        return None
    top, step = max(max(counts), 1), WIDTH / len(counts)
    bars = []
    for index, count in enumerate(counts):
        height = (HEIGHT - 2) * count / top
        bars.append(
            Bar(
                x=round(index * step, 2),
                y=round(HEIGHT - height, 2),
                width=round(max(step - 1, 0.5), 2),
                height=round(height, 2),
                label=f"[{short(edges[index])}, {short(edges[index + 1])}): {count:,}",
            )
        )
    return Histogram(tuple(bars), short(edges[0]), short(edges[-1]))


def value_bars(top: Sequence[tuple[str, int]]) -> tuple[ValueBar, ...]:
    """Bars for the most frequent values, the longest for the most frequent."""
    most = max((count for _, count in top), default=1) or 1
    return tuple(
        ValueBar(
            value=value,
            shown=value if len(value) <= LABEL else value[: LABEL - 1] + "…",
            count=count,
            width=round(BAR_WIDTH * count / most, 2),
            y=index * (BAR_HEIGHT + 4),
        )
        for index, (value, count) in enumerate(top)
    )


def short(value: object) -> str:
    """A number in about four significant digits, with thousands separators; other
    values as text ("" for None)."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("∞" if value > 0 else "-∞")
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1e15 or abs(value) < 1e-3:
        return f"{value:.4g}"
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}".rstrip("0").rstrip(".")


def size(count: int | None) -> str:
    """Bytes for people: `512 B`, `21.9 KiB`, `3.4 GiB`."""
    if count is None:
        return ""
    amount = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{count} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def chart_data(chart: dict[str, Any]) -> str:
    """A chart for static/models.js, as the JSON its element carries in `data-chart`
    (an attribute Jinja escapes: the JSON never reaches the page as markup)."""
    return json.dumps(chart, allow_nan=False, separators=(",", ":"))
