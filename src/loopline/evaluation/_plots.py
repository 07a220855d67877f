"""Small inline-SVG charts for the evaluation report: lines on unit axes (ROC, precision-recall,
reliability), a heat map (confusion matrix) and a histogram (residuals).

Plain functions returning SVG text, no plotting library. Every label is escaped here, so the
caller may mark the result safe for Jinja2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

WIDTH, HEIGHT = 320, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 40
INK, MUTED, LINE, BAR = "#1f2328", "#656d76", "#d0d7de", "#4c78a8"
LABEL_CHARS = 14


@dataclass(frozen=True)
class _Frame:
    """The plotting area and the data ranges it shows."""

    x_low: float = 0.0
    x_high: float = 1.0
    y_low: float = 0.0
    y_high: float = 1.0

    def x(self, value: float) -> float:
        span = (self.x_high - self.x_low) or 1.0
        return round(LEFT + (value - self.x_low) / span * (WIDTH - LEFT - RIGHT), 2)

    def y(self, value: float) -> float:
        span = (self.y_high - self.y_low) or 1.0
        return round(HEIGHT - BOTTOM - (value - self.y_low) / span * (HEIGHT - TOP - BOTTOM), 2)


def line_chart(
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    x_label: str,
    y_label: str,
    title: str,
    diagonal: bool = False,
    points: bool = False,
) -> str:
    """A line (and optionally its points) on [0, 1] x [0, 1], with an optional y = x guide."""
    frame = _Frame()
    parts = _axes(frame, x_label, y_label)
    if diagonal:
        parts.append(
            f'<line x1="{frame.x(0)}" y1="{frame.y(0)}" x2="{frame.x(1)}" y2="{frame.y(1)}" '
            f'stroke="{MUTED}" stroke-dasharray="4 3"/>'
        )
    coords = [(frame.x(x), frame.y(y)) for x, y in zip(xs, ys, strict=True) if _finite(x, y)]
    if coords:
        path = " ".join(f"{x},{y}" for x, y in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{BAR}" stroke-width="2"/>')
    if points:
        parts.extend(f'<circle cx="{x}" cy="{y}" r="3" fill="{BAR}"/>' for x, y in coords)
    return _svg(title, parts)


def heat_map(labels: Sequence[Any], matrix: Sequence[Sequence[int]], *, title: str) -> str:
    """A confusion matrix: true labels down, predicted labels across, shaded by row share."""
    n = max(len(labels), 1)
    cell = min(64.0, (WIDTH - LEFT - RIGHT) / n)
    side = cell * n
    height = round(TOP + side + BOTTOM)
    parts = [
        _text(LEFT + side / 2, TOP + side + 32, "predicted", anchor="middle"),
        _text(12, TOP + side / 2, "true", anchor="middle", rotate=True),
    ]
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        for j, count in enumerate(row):
            x, y = LEFT + j * cell, TOP + i * cell
            share = count / total
            tip = f"true {_short(labels[i])}, predicted {_short(labels[j])}: {count}"
            parts.append(
                f'<rect x="{x:.2f}" y="{y:.2f}" width="{cell:.2f}" height="{cell:.2f}" '
                f'fill="{BAR}" fill-opacity="{0.08 + 0.92 * share:.3f}" stroke="#fff">'
                f"<title>{escape(tip)}</title></rect>"
            )
            if cell >= 18:
                colour = "#fff" if share > 0.5 else INK
                parts.append(
                    _text(x + cell / 2, y + cell / 2 + 4, str(count), anchor="middle", fill=colour)
                )
    if cell >= 14:
        for k, label in enumerate(labels):
            short = _short(label, 8)
            parts.append(_text(LEFT + (k + 0.5) * cell, TOP + side + 14, short, anchor="middle"))
            parts.append(_text(LEFT - 4, TOP + (k + 0.5) * cell + 4, short, anchor="end"))
    return _svg(title, parts, height=height)


def histogram(bins: Sequence[dict[str, Any]], *, x_label: str, title: str) -> str:
    """Bars for bins given as {"lower", "upper", "count"}, with ticks on both axes."""
    if not bins:
        return _svg(title, [_text(WIDTH / 2, HEIGHT / 2, "no data", anchor="middle")])
    low, high = float(bins[0]["lower"]), float(bins[-1]["upper"])
    top = max(int(b["count"]) for b in bins) or 1
    frame = _Frame(low, high if high > low else low + 1, 0, top)
    parts = _axes(frame, x_label, "rows")
    for b in bins:
        x0, x1 = frame.x(float(b["lower"])), frame.x(float(b["upper"]))
        y = frame.y(int(b["count"]))
        tip = f"[{_tick(float(b['lower']))}, {_tick(float(b['upper']))}): {b['count']}"
        parts.append(
            f'<rect x="{x0}" y="{y}" width="{max(x1 - x0 - 1, 0.5):.2f}" '
            f'height="{frame.y(0) - y:.2f}" fill="{BAR}"><title>{escape(tip)}</title></rect>'
        )
    return _svg(title, parts)


def _axes(frame: _Frame, x_label: str, y_label: str) -> list[str]:
    """Both axes with about five ticks each, grid lines and the axis labels."""
    bottom, left = frame.y(frame.y_low), frame.x(frame.x_low)
    parts = [
        f'<line x1="{left}" y1="{bottom}" x2="{frame.x(frame.x_high)}" y2="{bottom}" '
        f'stroke="{MUTED}"/>',
        f'<line x1="{left}" y1="{bottom}" x2="{left}" y2="{frame.y(frame.y_high)}" '
        f'stroke="{MUTED}"/>',
    ]
    for value in ticks(frame.x_low, frame.x_high):
        x = frame.x(value)
        parts.append(f'<line x1="{x}" y1="{bottom}" x2="{x}" y2="{bottom + 4}" stroke="{MUTED}"/>')
        parts.append(_text(x, bottom + 15, _tick(value), anchor="middle"))
    for value in ticks(frame.y_low, frame.y_high):
        y = frame.y(value)
        parts.append(
            f'<line x1="{left}" y1="{y}" x2="{frame.x(frame.x_high)}" y2="{y}" stroke="{LINE}" '
            'stroke-width="0.5"/>'
        )
        parts.append(_text(left - 5, y + 3.5, _tick(value), anchor="end"))
    parts.append(_text((left + frame.x(frame.x_high)) / 2, HEIGHT - 6, x_label, anchor="middle"))
    parts.append(_text(11, (bottom + frame.y(frame.y_high)) / 2, y_label, "middle", rotate=True))
    return parts


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    values, value = [], first
    while value <= high + step * 1e-9:
        values.append(round(value, 12))
        value += step
    return values


def _tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4g}"


def _text(
    x: float, y: float, text: str, anchor: str = "start", *, rotate: bool = False, fill: str = ""
) -> str:
    turn = f' transform="rotate(-90 {x:.2f} {y:.2f})"' if rotate else ""
    colour = fill or MUTED
    return (
        f'<text x="{x:.2f}" y="{y:.2f}" text-anchor="{anchor}" font-size="10" fill="{colour}"'
        f"{turn}>{escape(text)}</text>"
    )


def _svg(title: str, parts: list[str], *, height: int = HEIGHT) -> str:
    body = "".join(parts)
    return (
        f'<svg class="plot" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def _short(label: Any, limit: int = LABEL_CHARS) -> str:
    text = str(label)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finite(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
