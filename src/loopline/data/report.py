"""A self-contained HTML data-quality report of a validation result (and a profile).

One file, no scripts, fonts or links to fetch: inline CSS and inline SVG charts, so the page
can be mailed, attached to CI runs or stored as an artifact. Every value from the data or the
suite is escaped by Jinja2's autoescaping.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from loopline.errors import InvalidInput

if TYPE_CHECKING:
    import jinja2

    from loopline.data.validation import Expectation, Failure, ValidationResult

_TEMPLATE = Path(__file__).parent / "templates" / "validation_report.html.j2"
_CHART_WIDTH, _CHART_HEIGHT = 320, 90
_FACTS = ("non_finite", "distinct", "min", "max", "mean", "std")  # shown when present
_LABEL = 26  # characters of a top value shown before it is cut


def render_html(
    result: ValidationResult, *, title: str, profile: Mapping[str, object] | None = None
) -> str:
    """The report as one HTML page: summary, failed expectations with example rows, the
    expectations that held and, given a `profile` (`TableProfile.to_dict()`), one section per
    column with its statistics, a histogram and its most frequent values."""
    from loopline.data.validation import ValidationResult

    if not isinstance(result, ValidationResult):
        raise InvalidInput(f"render_html needs a ValidationResult, got {type(result).__name__}")
    if not isinstance(title, str):
        raise InvalidInput(f"the report title must be text, got {type(title).__name__}")
    if profile is not None and not isinstance(profile, Mapping):
        raise InvalidInput(f"the profile must be a mapping, got {type(profile).__name__}")
    failed_columns = {f.expectation.column for f in result.failures}
    columns = _profile_columns(profile, failed_columns) if profile is not None else []
    anchors = {c["name"]: c["anchor"] for c in columns}
    return _template().render(
        title=title,
        result=result,
        failures=[_failure_view(f, result.checked_rows, anchors) for f in result.failures],
        passed=[_rule_view(e, anchors) for e in result.passed],
        profile_rows=None if profile is None else profile.get("row_count"),
        columns=columns,
    )


@functools.cache
def _template() -> jinja2.Template:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = human_number
    return env.from_string(_TEMPLATE.read_text(encoding="utf-8"))


def _failure_view(failure: Failure, rows: int, anchors: Mapping[object, str]) -> dict[str, object]:
    """The failure, and its example rows as a table whose failing column is marked."""
    keys = list(dict.fromkeys(key for example in failure.examples for key in example))
    table = [[example.get(key) for key in keys] for example in failure.examples]
    share = failure.failed_count / rows if rows and failure.expectation.column else None
    return {
        **_rule_view(failure.expectation, anchors),
        "count": failure.failed_count,
        "share": None if share is None else f"{min(share, 1.0):.2%}",
        "message": failure.message,
        "header": [
            {
                "name": key,
                "hit": key == failure.expectation.column,
                "numeric": all(isinstance(row[i], (int, float)) or row[i] is None for row in table),
            }
            for i, key in enumerate(keys)
        ],
        "examples": table,
    }


def _rule_view(exp: Expectation, anchors: Mapping[object, str]) -> dict[str, object]:
    return {
        "column": "(table)" if exp.column is None else exp.column,
        "anchor": anchors.get(exp.column),
        "kind": exp.kind,
        "rule": _rule_text(exp),
    }


def _rule_text(exp: Expectation) -> str:
    p = exp.params
    if exp.kind in ("between", "row_count_between"):
        low, high = p.get("min"), p.get("max")
        return f"[{'-∞' if low is None else _exact(low)}, {'∞' if high is None else _exact(high)}]"
    if exp.kind == "in_set":
        values = list(p.get("values") or [])  # type: ignore[call-overload]
        shown = ", ".join(json.dumps(v, ensure_ascii=False) for v in values[:8])
        return "{" + shown + (f", … {len(values) - 8} more" if len(values) > 8 else "") + "}"
    if exp.kind == "column_type":
        return str(p.get("type"))
    if exp.kind == "max_null_fraction":
        return f"at most {float(cast(float, p.get('max'))) * 100:.4g}% null"
    return ""


# --- profile ----------------------------------------------------------------------------------


def _profile_columns(
    profile: Mapping[str, object], failed: set[str | None]
) -> list[dict[str, Any]]:
    stats = profile.get("stats") or []
    if not isinstance(stats, Sequence) or not all(isinstance(s, Mapping) for s in stats):
        raise InvalidInput("the profile's 'stats' must be a list of mappings")
    views = []
    for index, stat in enumerate(stats):
        name = str(stat.get("name", f"column {index + 1}"))
        count, nulls = _int(stat.get("count")), _int(stat.get("nulls"))
        total = count + nulls
        quantiles = stat.get("quantiles")
        views.append(
            {
                "name": name,
                "anchor": f"column-{index}",
                "type": str(stat.get("type", "")),
                "failed": name in failed,
                "facts": [
                    ("values", count),
                    ("nulls", f"{nulls:,} ({nulls / total:.1%})" if total else nulls),
                    *((key, stat[key]) for key in _FACTS if stat.get(key) is not None),
                ],
                "quantiles": list(quantiles.items()) if isinstance(quantiles, Mapping) else [],
                "histogram": _histogram(stat.get("histogram")),
                "top_values": _top_values(stat.get("top_values")),
            }
        )
    return views


def _histogram(data: object) -> dict[str, object] | None:
    """SVG bars for a histogram given as {"edges", "counts"} or [edges, counts]."""
    edges, counts = (
        (data.get("edges"), data.get("counts"))
        if isinstance(data, Mapping)
        else (data if isinstance(data, Sequence) and len(data) == 2 else (None, None))
    )
    try:
        edges = [float(e) for e in edges]  # type: ignore[union-attr]
        counts = [int(c) for c in counts]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if not counts or len(edges) != len(counts) + 1 or not all(map(math.isfinite, edges)):
        return None
    top, width = max(max(counts), 1), _CHART_WIDTH / len(counts)
    bars = []
    for i, count in enumerate(counts):
        height = (_CHART_HEIGHT - 4) * count / top
        bars.append(
            {
                "x": round(i * width, 2),
                "y": round(_CHART_HEIGHT - height, 2),
                "w": round(max(width - 1, 0.5), 2),
                "h": round(height, 2),
                "label": f"[{human_number(edges[i])}, {human_number(edges[i + 1])}): {count:,}",
            }
        )
    return {"bars": bars, "low": human_number(edges[0]), "high": human_number(edges[-1])}


def _top_values(data: object) -> list[dict[str, object]]:
    """Bars for the most frequent values, widths relative to the most frequent one."""
    if not isinstance(data, Sequence) or isinstance(data, str):
        return []
    pairs = []
    for item in data:
        if isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
            pairs.append((str(item[0]), _int(item[1])))
    top = max((count for _, count in pairs), default=1) or 1
    return [
        {
            "value": value,
            "label": value if len(value) <= _LABEL else value[: _LABEL - 1] + "…",
            "count": count,
            "width": round(150 * count / top, 2),
            "y": 20 * i,
        }
        for i, (value, count) in enumerate(pairs)
    ]


# --- formatting -------------------------------------------------------------------------------


def human_number(value: object) -> str:
    """Numbers for people: thousands separators and about four significant digits."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    if not math.isfinite(value) or abs(value) >= 1e15 or abs(value) < 1e-3:
        return f"{value:.4g}"
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _exact(value: object) -> str:
    """A bound as the suite holds it: no separators, no rounding."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError, OverflowError):
        return 0
