"""A self-contained HTML page of an evaluation report (the dict of `evaluate_predictor`).

One file, no scripts, fonts or links to fetch: inline CSS and inline SVG plots, in the look
of the data-quality report. Every value from the report is escaped by Jinja2's autoescaping;
the SVG plots escape their own labels.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.data.report import human_number
from loopline.errors import InvalidInput
from loopline.evaluation import _plots
from loopline.evaluation._metrics import HIGHER_IS_BETTER, metric_names

if TYPE_CHECKING:
    import jinja2

__all__ = ["render_html"]

_TEMPLATE = Path(__file__).parent / "templates" / "evaluation.html.j2"
_TASKS = ("binary", "multiclass", "regression")
_KEY_METRICS = {
    "binary": ("roc_auc", "f1", "accuracy"),
    "multiclass": ("accuracy", "macro_f1", "roc_auc"),
    "regression": ("rmse", "mae", "r2"),
}
_LATENCY = (
    ("single row p50 (ms)", "p50_ms"),
    ("single row p99 (ms)", "p99_ms"),
    ("batch rows", "batch_rows"),
    ("batch p50 (ms)", "batch_p50_ms"),
    ("batch p99 (ms)", "batch_p99_ms"),
    ("rows per second", "rows_per_second"),
)


def render_html(report: Mapping[str, Any], *, title: str) -> str:
    """The report as one HTML page: summary, metrics, slices (the worst one marked), fairness
    per sensitive column, calibration, robustness, latency and size, and SVG plots (ROC,
    precision-recall, reliability, confusion matrix; residuals for regression).

    Raises InvalidInput when `report` is not an evaluation report or `title` is not text.
    """
    if not isinstance(report, Mapping) or report.get("task") not in _TASKS:
        raise InvalidInput("render_html needs an evaluation report with a 'task' entry")
    if not isinstance(title, str):
        raise InvalidInput(f"the report title must be text, got {type(title).__name__}")
    from markupsafe import Markup

    task = str(report["task"])
    metrics = _mapping(report.get("metrics"))
    latency = _mapping(report.get("latency"))
    calibration = _mapping(report.get("calibration"))
    classes = report.get("classes")
    return _template().render(
        title=title,
        task=task,
        target=report.get("target"),
        model_ref=_mapping(report.get("model")).get("ref"),
        data_ref=_mapping(report.get("data")).get("ref"),
        rows=report.get("rows"),
        positive_class=report.get("positive_class"),
        class_count=len(classes) if isinstance(classes, list) else None,
        cards=[(name, metrics.get(name)) for name in _KEY_METRICS[task]],
        metrics=[(name, metrics.get(name)) for name in metric_names(task)],
        slices=_slices_view(task, _mapping(report.get("slices"))),
        fairness=_fairness_view(_mapping(report.get("fairness"))),
        ece=calibration.get("ece"),
        bins=[_mapping(b) for b in calibration.get("bins") or []],
        robustness=_robustness_view(_mapping(report.get("robustness"))),
        latency=[(label, latency.get(key)) for label, key in _LATENCY],
        size=_mapping(report.get("size")).get("bytes"),
        plots=[(name, Markup(svg)) for name, svg in _plots_of(task, report)],
    )


@functools.cache
def _template() -> jinja2.Template:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = human_number
    return env.from_string(_TEMPLATE.read_text(encoding="utf-8"))


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _slices_view(task: str, slices: Mapping[str, Any]) -> dict[str, Any]:
    """Rows of the slices table; the worst slice by the task's headline metric is marked,
    unless every slice scores the same: marking one of equals would point at a problem
    that is not there."""
    names = metric_names(task)
    key = next(
        (m for m in _KEY_METRICS[task] if any(_value(s, m) is not None for s in slices.values())),
        None,
    )
    scored = [(_value(s, key), name) for name, s in slices.items() if key is not None]
    known = [(value, name) for value, name in scored if value is not None]
    worst = None
    if len({value for value, _ in known}) > 1 and key is not None:  # a tie has no worst slice
        pick = min if key in HIGHER_IS_BETTER else max
        worst = pick(known, key=lambda pair: pair[0])[1]
    rows = [
        {
            "name": name,
            "rows": _mapping(entry).get("rows"),
            "values": [_value(entry, m) for m in names],
            "worst": name == worst,
        }
        for name, entry in slices.items()
    ]
    return {"columns": names, "rows": rows, "key": key, "worst": worst}


def _value(entry: object, metric: str | None) -> Any:
    metrics = _mapping(entry).get("metrics")
    return _mapping(metrics).get(metric) if metric is not None else None


def _robustness_view(robustness: Mapping[str, Any]) -> dict[str, Any] | None:
    if not robustness:
        return None
    view = {key: robustness.get(key) for key in ("flip_rate", "mean_abs_change", "noise")}
    return view | {"features": len(robustness.get("features") or [])}


def _fairness_view(fairness: Mapping[str, Any]) -> list[dict[str, Any]]:
    views = []
    for column, entry in fairness.items():
        entry = _mapping(entry)
        groups = _mapping(entry.get("groups"))
        columns = list(dict.fromkeys(k for g in groups.values() for k in _mapping(g)))
        views.append(
            {
                "column": column,
                "summary": [(k, v) for k, v in entry.items() if k != "groups" and v is not None],
                "columns": columns,
                "groups": [
                    (name, [_mapping(g).get(c) for c in columns]) for name, g in groups.items()
                ],
            }
        )
    return views


def _plots_of(task: str, report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(heading, svg) of each plot the report has data for."""
    curves = _mapping(report.get("curves"))
    plots = []
    if task == "regression":
        bins = curves.get("residuals") or []
        plots.append(
            ("Residuals", _plots.histogram(bins, x_label="prediction - truth", title="residuals"))
        )
        return plots
    roc, pr = _mapping(curves.get("roc")), _mapping(curves.get("pr"))
    if roc.get("fpr"):
        svg = _plots.line_chart(
            roc["fpr"], roc["tpr"], x_label="false positive rate", y_label="true positive rate",
            title="ROC curve", diagonal=True,
        )  # fmt: skip
        plots.append(("ROC curve", svg))
    if pr.get("recall"):
        svg = _plots.line_chart(
            pr["recall"], pr["precision"], x_label="recall", y_label="precision",
            title="precision-recall curve",
        )  # fmt: skip
        plots.append(("Precision-recall curve", svg))
    bins = [b for b in _mapping(report.get("calibration")).get("bins") or [] if b.get("count")]
    if bins:
        svg = _plots.line_chart(
            [b["mean_predicted"] for b in bins], [b["fraction_positive"] for b in bins],
            x_label="mean predicted probability",
            y_label="fraction positive" if task == "binary" else "fraction correct",
            title="reliability diagram", diagonal=True, points=True,
        )  # fmt: skip
        plots.append(("Reliability diagram", svg))
    confusion = _mapping(curves.get("confusion"))
    if confusion.get("labels"):
        svg = _plots.heat_map(confusion["labels"], confusion["matrix"], title="confusion matrix")
        plots.append(("Confusion matrix", svg))
    return plots
