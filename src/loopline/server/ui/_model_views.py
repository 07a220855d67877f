"""What a model version's page shows of its evaluation report and its model card, laid
out for the templates.

The report is the core's plain data (see loopline.evaluation.compute): metrics, slices,
fairness per sensitive column, calibration, curves, robustness, latency and size. ROC,
precision-recall and reliability curves become chart data for static/models.js (uPlot);
the confusion matrix a table; a regression's residuals a histogram drawn as SVG.

The card is the structured one the registry keeps (Model Card Toolkit fields), shown
field by field as text: never its HTML rendering, and no Markdown is interpreted, so a
description holding `<script>` is shown as those characters. Both are read defensively
(`.get`, type checks): a stored report or card from an older loopline may lack a part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loopline.server.ui import _figures


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    data: str  # JSON for static/models.js (see _figures.chart_data)


@dataclass(frozen=True)
class Table:
    """Rows of values under named columns (the first column names the row)."""

    columns: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class Fairness:
    column: str
    summary: list[tuple[str, Any]]  # the spreads: demographic parity, equalized odds, ...
    groups: Table


@dataclass(frozen=True)
class EvaluationView:
    facts: list[tuple[str, Any]]  # task, target, rows, positive class
    metrics: list[tuple[str, Any]]
    slices: Table | None
    fairness: list[Fairness]
    ece: float | None
    charts: list[Chart]
    confusion: Table | None
    residuals: _figures.Histogram | None
    analysis: list[tuple[str, Any]] = field(default_factory=list)  # robustness, latency, size


def evaluation_view(report: Mapping[str, Any]) -> EvaluationView:
    """The parts of an evaluation report the page shows (see the module docstring)."""
    curves = _mapping(report.get("curves"))
    calibration = _mapping(report.get("calibration"))
    facts = [
        (name, report.get(key))
        for name, key in (
            ("task", "task"),
            ("target", "target"),
            ("rows", "rows"),
            ("positive class", "positive_class"),
        )
        if report.get(key) is not None
    ]
    charts = [
        chart
        for chart in (_roc(curves.get("roc")), _pr(curves.get("pr")), _reliability(calibration))
        if chart is not None
    ]
    analysis: list[tuple[str, Any]] = []
    for key in ("robustness", "latency", "size"):
        _flatten(report.get(key), key, analysis)
    return EvaluationView(
        facts=facts,
        metrics=list(_mapping(report.get("metrics")).items()),
        slices=_slices(_mapping(report.get("slices"))),
        fairness=[
            _fairness(column, _mapping(found))
            for column, found in _mapping(report.get("fairness")).items()
        ],
        ece=calibration.get("ece"),
        charts=charts,
        confusion=_confusion(_mapping(curves.get("confusion"))),
        residuals=_residuals(curves.get("residuals")),
        analysis=analysis,
    )


def _slices(slices: Mapping[str, Any]) -> Table | None:
    if not slices:
        return None
    names: list[str] = []
    for found in slices.values():
        names.extend(k for k in _mapping(_mapping(found).get("metrics")) if k not in names)
    rows = []
    for name, found in slices.items():
        metrics = _mapping(_mapping(found).get("metrics"))
        rows.append([name, _mapping(found).get("rows"), *(metrics.get(k) for k in names)])
    return Table(["slice", "rows", *names], rows)


def _fairness(column: str, found: Mapping[str, Any]) -> Fairness:
    summary = [(k, v) for k, v in found.items() if k != "groups" and not isinstance(v, Mapping)]
    groups = _mapping(found.get("groups"))
    keys: list[str] = []
    for rates in groups.values():
        keys.extend(k for k in _mapping(rates) if k not in keys)
    rows = [[group, *(_mapping(rates).get(k) for k in keys)] for group, rates in groups.items()]
    return Fairness(column, summary, Table(["group", *keys], rows))


def _confusion(confusion: Mapping[str, Any]) -> Table | None:
    labels, matrix = confusion.get("labels"), confusion.get("matrix")
    if not isinstance(labels, list) or not isinstance(matrix, list) or len(labels) != len(matrix):
        return None
    rows = [[label, *counts] for label, counts in zip(labels, matrix, strict=True)]
    return Table(["true \\ predicted", *labels], rows)


def _residuals(bins: object) -> _figures.Histogram | None:
    if not isinstance(bins, list) or not bins:
        return None
    try:
        edges = [float(bins[0]["lower"]), *(float(b["upper"]) for b in bins)]
        counts = [int(b["count"]) for b in bins]
    except (KeyError, TypeError, ValueError):
        return None
    return _figures.histogram(edges, counts)


def _roc(roc: object) -> Chart | None:
    points = _points(roc, "fpr", "tpr")
    if points is None:
        return None
    x, y = points
    return _chart("roc", "ROC curve", "false positive rate", "true positive rate", x, [
        ("ROC", y), ("chance", list(x)),
    ])  # fmt: skip


def _pr(pr: object) -> Chart | None:
    points = _points(pr, "recall", "precision")
    if points is None:
        return None
    x, y = points  # sklearn gives recall falling; uPlot wants x rising
    return _chart("pr", "Precision-recall curve", "recall", "precision", x[::-1], [
        ("precision", y[::-1]),
    ])  # fmt: skip


def _reliability(calibration: Mapping[str, Any]) -> Chart | None:
    bins = [b for b in calibration.get("bins") or [] if isinstance(b, Mapping)]
    shown = [
        (float(b["mean_predicted"]), float(b["fraction_positive"]))
        for b in bins
        if b.get("mean_predicted") is not None and b.get("fraction_positive") is not None
    ]
    if not shown:
        return None
    x = [predicted for predicted, _ in shown]
    observed = [positive for _, positive in shown]
    series = [("observed", observed), ("perfect", list(x))]
    return _chart("calibration", "Reliability", "mean predicted", "fraction positive", x, series)


def _points(curve: object, x_key: str, y_key: str) -> tuple[list[float], list[float]] | None:
    if not isinstance(curve, Mapping):
        return None
    x, y = curve.get(x_key), curve.get(y_key)
    if not isinstance(x, list) or not isinstance(y, list) or len(x) != len(y) or not x:
        return None
    try:
        return [float(v) for v in x], [float(v) for v in y]
    except (TypeError, ValueError):
        return None


def _chart(
    id: str,
    title: str,
    x_label: str,
    y_label: str,
    x: list[float],
    series: list[tuple[str, list[float]]],
) -> Chart:
    body = {
        "x_label": x_label,
        "y_label": y_label,
        "x": x,
        "series": [{"label": label, "values": values} for label, values in series],
    }
    return Chart(id, title, _figures.chart_data(body))


def _flatten(value: object, name: str, rows: list[tuple[str, Any]]) -> None:
    """Nested numbers as (dotted name, value) rows; a list is shown as its items."""
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(item, f"{name}.{key}", rows)
    elif isinstance(value, list | tuple):
        rows.append((name, ", ".join(str(item) for item in value)))
    else:
        rows.append((name, value))


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# --- the model card ----------------------------------------------------------------------


@dataclass(frozen=True)
class CardView:
    overview: str
    details: list[tuple[str, str]]
    data: list[str]
    performance: list[tuple[str, Any]]  # (metric, value) over all rows
    considerations: list[tuple[str, list[str]]]


CONSIDERATIONS = (
    ("users", "Intended users"),
    ("use_cases", "Use cases"),
    ("limitations", "Limitations"),
    ("tradeoffs", "Trade-offs"),
)


def card_view(card: Mapping[str, Any]) -> CardView:
    """The card's fields as text rows (see the module docstring)."""
    details = _mapping(card.get("model_details"))
    parameters = _mapping(card.get("model_parameters"))
    extension = _mapping(card.get("loopline"))
    rows = [
        ("Owners", ", ".join(_texts(details.get("owners"), "name"))),
        ("Licences", ", ".join(_texts(details.get("licenses"), "identifier"))),
        ("Version", str(_mapping(details.get("version")).get("name") or "")),
        ("Changed", str(_mapping(details.get("version")).get("diff") or "")),
        ("Path", str(details.get("path") or "")),
        ("Architecture", str(parameters.get("model_architecture") or "")),
        ("Inputs", str(parameters.get("input_format") or "")),
        ("Outputs", str(parameters.get("output_format") or "")),
        ("Risk category", str(extension.get("risk_category") or "")),
        ("Generated", str(extension.get("generated_at") or "")),
    ]
    performance = [
        (str(m.get("type", "")), m.get("value"))
        for m in _list(_mapping(card.get("quantitative_analysis")).get("performance_metrics"))
        if isinstance(m, Mapping) and not m.get("slice")  # slices: the evaluation's table
    ]
    considerations = _mapping(card.get("considerations"))
    groups = [
        (title, _texts(considerations.get(key), "description")) for key, title in CONSIDERATIONS
    ]
    groups.append(
        ("Ethical considerations", _texts(considerations.get("ethical_considerations"), "name"))
    )
    return CardView(
        overview=str(details.get("overview") or ""),
        details=[(label, text) for label, text in rows if text],
        data=_texts(parameters.get("data"), "name"),
        performance=performance,
        considerations=[(title, items) for title, items in groups if items],
    )


def _texts(items: object, key: str) -> list[str]:
    return [
        str(item.get(key)) for item in _list(items) if isinstance(item, Mapping) and item.get(key)
    ]


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
