"""A monitoring report as one self-contained HTML page: inline CSS and inline SVG, no
scripts, nothing fetched. Per feature, the reference's and the window's histograms are
overlaid; drift scores of the last reports are drawn as small time series; performance
and the checks are tables. Every value from the data is escaped by Jinja2's autoescaping.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

_TEMPLATE = Path(__file__).parent / "templates" / "monitor_report.html.j2"
_WIDTH, _HEIGHT = 300, 80
_SPARK_WIDTH, _SPARK_HEIGHT = 140, 28


def render(report: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """The page of `report` (a MonitorReport's data), with `history` (earlier reports'
    index rows: created_at and scores, oldest first) drawn as time series."""
    versions = []
    for name, body in (report.get("versions") or {}).items():
        versions.append(
            {
                "name": name,
                "body": body,
                "features": [
                    _feature_view(feature, stats, _series(history, name, "features", feature))
                    for feature, stats in (body.get("features") or {}).items()
                ],
                "outputs": [
                    _feature_view(feature, stats, _series(history, name, "outputs", feature))
                    for feature, stats in (body.get("outputs") or {}).items()
                ],
                "metrics": _metrics(body.get("performance") or {}),
                "segments": body.get("segments") or {},
            }
        )
    return _template().render(report=report, versions=versions, number=_number)


@functools.cache
def _template() -> jinja2.Template:
    import jinja2

    # reports are JSON whose optional parts may be absent: a missing key renders as nothing
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    return environment.from_string(_TEMPLATE.read_text(encoding="utf-8"))


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.{digits}g}"
    return str(value)


def _feature_view(name: str, stats: dict[str, Any], series: list[float]) -> dict[str, Any]:
    shown = [
        (key, stats.get(key))
        for key in ("psi", "ks", "ks_pvalue", "wasserstein", "chi2", "chi2_pvalue", "js")
        if stats.get(key) is not None
    ]
    return {
        "name": name,
        "drifted": bool(stats.get("drifted")),
        "reasons": stats.get("reasons") or [],
        "stats": shown,
        "unseen": stats.get("unseen") or [],
        "null_rate": stats.get("null_rate"),
        "bars": _bars(stats.get("histogram") or []),
        "spark": _spark(series),
    }


def _bars(histogram: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Two overlaid bar series (reference, window) as SVG rectangles; `histogram` is a
    FeatureDrift's bins ({low, high} or {category}, with reference and current shares)."""
    if not isinstance(histogram, list) or not histogram:
        return None
    reference = [float(b.get("reference") or 0.0) for b in histogram]
    current = [float(b.get("current") or 0.0) for b in histogram]
    labels = [_bin_label(b) for b in histogram]
    top = max(max(reference), max(current), 1e-12)
    step = _WIDTH / len(reference)
    bars = []
    for index, (ref, cur) in enumerate(zip(reference, current, strict=True)):
        label = labels[index] if index < len(labels) else str(index)
        bars.append(
            {
                "x": round(index * step, 2),
                "width": round(max(step - 1, 1), 2),
                "ref_height": round(ref / top * (_HEIGHT - 4), 2),
                "cur_height": round(cur / top * (_HEIGHT - 4), 2),
                "title": f"{label}: reference {ref:.3f}, window {cur:.3f}",
            }
        )
    return {"width": _WIDTH, "height": _HEIGHT, "bars": bars}


def _bin_label(entry: dict[str, Any]) -> str:
    if "category" in entry:
        return str(entry["category"])
    low, high = entry.get("low"), entry.get("high")
    if low is None:
        return f"below {_number(high)}"
    if high is None:
        return f"above {_number(low)}"
    return f"{_number(low)} to {_number(high)}"


def _series(history: list[dict[str, Any]], version: str, part: str, feature: str) -> list[float]:
    """The feature's PSI over the earlier reports (oldest first)."""
    values = []
    for entry in history:
        stats = ((entry.get("scores") or {}).get(version) or {}).get(part, {}).get(feature) or {}
        value = stats.get("psi")
        if isinstance(value, int | float) and math.isfinite(value):
            values.append(float(value))
    return values


def _spark(values: list[float]) -> dict[str, Any] | None:
    if len(values) < 2:
        return None
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = _SPARK_WIDTH / (len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{_SPARK_HEIGHT - 2 - (v - low) / span * (_SPARK_HEIGHT - 4):.1f}"
        for i, v in enumerate(values)
    )
    return {"width": _SPARK_WIDTH, "height": _SPARK_HEIGHT, "points": points, "last": values[-1]}


def _metrics(performance: dict[str, Any]) -> list[dict[str, Any]]:
    baseline = (performance.get("baseline") or {}).get("metrics") or {}
    realised = (performance.get("realised") or {}).get("metrics") or {}
    estimated = (performance.get("estimated") or {}).get("metrics") or {}
    names = list(dict.fromkeys([*realised, *estimated]))
    return [
        {
            "name": name,
            "realised": realised.get(name),
            "estimated": estimated.get(name),
            "baseline": baseline.get(name),
        }
        for name in names
    ]
