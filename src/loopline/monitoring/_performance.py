"""Realised performance: the task's metrics over the rows whose labels have arrived, and
the change against the model version's stored evaluation.

The metrics and their names are evaluation's own (`loopline.evaluation._metrics`), so that
`delta` lines up with the `metrics` mapping `ll.evaluate` stored for the version:

    binary       accuracy precision recall f1 roc_auc pr_auc log_loss brier
                 (f1, precision and recall for the positive class, classes[1])
    multiclass   accuracy macro_f1 weighted_f1 roc_auc log_loss (roc_auc: one-vs-rest macro)
    regression   rmse mae r2 mape

Labels are matched to the classes as `_performance_inputs.class_indexes` documents ("1",
1 and True name the class 1); regression labels and predictions may be numbers or numeric
text ("2.5"). A metric that is undefined on the rows is None, and
`reasons` says why; `to_dict()` never holds NaN or infinity. Floats are not rounded: the
report rounds when it renders.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput
from loopline.monitoring._performance_inputs import (
    checked_classes,
    class_indexes,
    column,
    numbers_column,
    plain_label,
    probability_matrix,
    same_length,
)

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]

TASKS = ("classification", "binary", "multiclass", "regression")
""""classification" becomes "binary" with two classes, else "multiclass"."""


@dataclass(frozen=True)
class PerformanceResult:
    """The realised metrics of one window's labelled rows.

    `metrics` maps each of the task's metric names to a float or None; `reasons` says why
    each None is None; `delta` is metric - baseline for the metrics both hold (None when
    either is None); `rows` counts the labelled rows.
    """

    task: str
    rows: int
    metrics: dict[str, float | None]
    reasons: dict[str, str] = field(default_factory=dict)
    classes: list[Any] | None = None
    baseline: dict[str, float | None] | None = None
    delta: dict[str, float | None] = field(default_factory=dict)

    @property
    def positive_class(self) -> Any:
        """The class binary f1, precision and recall are about (classes[1]), else None."""
        return self.classes[1] if self.task == "binary" and self.classes else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy: plain str, int, float, bool, None, lists and dicts; no NaN."""
        return {
            "task": self.task,
            "rows": self.rows,
            "classes": None if self.classes is None else list(self.classes),
            "positive_class": self.positive_class,
            "metrics": dict(self.metrics),
            "reasons": dict(self.reasons),
            "baseline": None if self.baseline is None else dict(self.baseline),
            "delta": dict(self.delta),
        }


def realised_performance(
    task: str,
    y_true: Any,
    y_pred: Any,
    probabilities: Any = None,
    classes: Sequence[Any] | None = None,
    *,
    baseline: Mapping[str, Any] | None = None,
) -> PerformanceResult:
    """The task's metrics over labelled rows: `y_true` (labels) against `y_pred`.

    `task` is "classification" (binary or multiclass by the number of classes), "binary",
    "multiclass" or "regression". `probabilities` (rows x classes, columns in `classes`
    order; for two classes a single column of classes[1]'s probability also does) enables
    roc_auc, pr_auc, log_loss and brier. `classes` is the model's class list; without it
    the classes are the sorted predicted values plus any label that matches none of them
    (labels are matched to predictions as to classes). `baseline` is the version's stored
    evaluation metrics (name -> value); the result's `delta` is realised - baseline.

    Returns a PerformanceResult; with no rows every metric is None ("no labelled rows").
    Raises InvalidInput for an unknown task, arrays of different lengths, NaN or infinity,
    probabilities of the wrong shape, outside [0, 1] or not summing to 1, labels that match
    no class, probabilities without classes, or a baseline that is not name -> number.
    """
    if not isinstance(task, str) or task not in TASKS:
        raise InvalidInput(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    truth, predicted = column(y_true, "y_true"), column(y_pred, "y_pred")
    same_length(y_true=truth, y_pred=predicted)
    checked_baseline = _checked_baseline(baseline)
    if task == "regression":
        if probabilities is not None or classes is not None:
            raise InvalidInput("probabilities and classes are for classification, not regression")
        result = _regression(truth, predicted)
    else:
        result = _classification(task, truth, predicted, probabilities, classes)
    task_name, metrics, reasons, labels = result
    return PerformanceResult(
        task=task_name,
        rows=len(truth),
        metrics=metrics,
        reasons=reasons,
        classes=labels,
        baseline=checked_baseline,
        delta=_delta(metrics, checked_baseline),
    )


_Computed = tuple[str, dict[str, float | None], dict[str, str], list[Any] | None]


def _regression(truth: Array, predicted: Array) -> _Computed:
    from loopline.evaluation import _metrics

    y = numbers_column(truth, "y_true")
    pred = numbers_column(predicted, "y_pred")
    if not len(y):
        return "regression", _metrics.empty_metrics("regression"), _no_rows("regression"), None
    metrics = _metrics.regression_metrics(y, pred)
    return "regression", metrics, _regression_reasons(metrics, y), None


def _classification(
    task: str, truth: Array, predicted: Array, probabilities: Any, classes: Any
) -> _Computed:
    from loopline.evaluation import _metrics

    if classes is None and probabilities is not None:
        raise InvalidInput(
            "probabilities need classes: the class of each probability column, in order"
        )
    if classes is None and not len(truth):
        metrics = {} if task == "classification" else _metrics.empty_metrics(task)
        return task, metrics, dict.fromkeys(metrics, "no labelled rows"), None
    labels = _inferred_classes(truth, predicted) if classes is None else checked_classes(classes)
    task = _class_task(task, labels)
    proba = None
    if probabilities is not None:
        proba = probability_matrix(probabilities, len(labels), len(truth), "probabilities")
    plain = [plain_label(label) for label in labels]
    if not len(truth):
        return task, _metrics.empty_metrics(task), _no_rows(task), plain
    y = class_indexes(truth, labels, "y_true")
    pred = class_indexes(predicted, labels, "y_pred")
    positions = list(range(len(labels)))
    # evaluation's metrics on class positions: the same numbers as on the labels, with
    # no type mismatch left for sklearn to trip on
    metrics = _metrics.classification_metrics(task, y, pred, proba, positions)
    return task, metrics, _classification_reasons(task, metrics, y, pred, proba, plain), plain


def _inferred_classes(truth: Array, predicted: Array) -> list[Any]:
    """The sorted predicted values, plus labels that match none of them (never predicted).

    Raises InvalidInput when no label matches a prediction (a type or encoding mismatch,
    not a window of new classes) or when fewer than two classes are seen.
    """
    import numpy as np
    import pandas as pd

    values = _sorted([value for value in pd.unique(predicted) if not _is_missing(value)])
    labels = [value for value in pd.unique(truth) if not _is_missing(value)]
    extra: list[Any] = []
    for value in labels:
        try:
            class_indexes(np.asarray([value], dtype=object), values, "y_true")
        except InvalidInput:
            extra.append(value)
    if values and labels and len(extra) == len(labels):
        raise InvalidInput(
            f"y_true holds no value that matches a prediction: labels {_sorted(extra)[:5]}, "
            f"predictions {values[:5]}; pass classes or fix the labels' encoding"
        )
    inferred = values + _sorted(extra)
    if len(inferred) < 2:
        raise InvalidInput(
            f"y_true and y_pred hold one class only ({inferred}); pass the model's classes"
        )
    return inferred


def _sorted(values: list[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:  # mixed types: order by text
        return sorted(values, key=str)


def _class_task(task: str, labels: list[Any]) -> str:
    if task == "classification":
        return "binary" if len(labels) == 2 else "multiclass"
    if task == "binary" and len(labels) != 2:
        raise InvalidInput(f"task 'binary' needs 2 classes, got {len(labels)}: {labels[:5]}")
    return task


def _classification_reasons(
    task: str,
    metrics: Mapping[str, float | None],
    y: Array,
    pred: Array,
    proba: Array | None,
    labels: list[Any],
) -> dict[str, str]:
    """Why each None metric is None, in the user's words."""
    import numpy as np

    present = len(np.unique(y))
    positive = labels[-1]
    reasons: dict[str, str] = {}
    for name, value in metrics.items():
        if value is not None:
            continue
        if name in ("roc_auc", "pr_auc", "log_loss", "brier") and proba is None:
            reasons[name] = "no probabilities given"
        elif name == "roc_auc" and task == "binary" and present < 2:
            reasons[name] = "the labels hold one class only"
        elif name == "roc_auc":
            reasons[name] = (
                f"the labels hold {present} of {len(labels)} classes; "
                "one-vs-rest ROC AUC needs every class"
            )
        elif name in ("recall", "pr_auc") and not (y == 1).any():
            reasons[name] = f"no label is the positive class {positive!r}"
        elif name == "precision" and not (pred == 1).any():
            reasons[name] = f"no row is predicted as the positive class {positive!r}"
        elif name == "f1":
            reasons[name] = f"neither labels nor predictions hold the positive class {positive!r}"
        else:
            reasons[name] = "undefined on these rows"
    return reasons


def _regression_reasons(metrics: Mapping[str, float | None], y: Array) -> dict[str, str]:
    import numpy as np

    reasons: dict[str, str] = {}
    for name, value in metrics.items():
        if value is not None:
            continue
        if name == "mape" and bool(np.any(y == 0)):
            reasons[name] = "a label is 0, where the percentage error is infinite"
        elif name == "r2" and len(y) < 2:
            reasons[name] = "r2 needs at least 2 labelled rows"
        else:
            reasons[name] = "undefined on these rows"
    return reasons


def _no_rows(task: str) -> dict[str, str]:
    from loopline.evaluation import _metrics

    return dict.fromkeys(_metrics.metric_names(task), "no labelled rows")


def _checked_baseline(baseline: Mapping[str, Any] | None) -> dict[str, float | None] | None:
    """The stored evaluation's metrics as name -> float or None.

    Raises InvalidInput for a non-mapping, a non-text name, or a value that is not a finite
    number or None.
    """
    if baseline is None:
        return None
    if not isinstance(baseline, Mapping):
        raise InvalidInput(
            f"baseline must map metric names to numbers, got {type(baseline).__name__}"
        )
    checked: dict[str, float | None] = {}
    for name, value in baseline.items():
        if not isinstance(name, str):
            raise InvalidInput(f"baseline metric names must be text, got {name!r}")
        if value is None:
            checked[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidInput(f"baseline metric {name!r} must be a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise InvalidInput(f"baseline metric {name!r} is {value}; it must be finite")
        checked[name] = float(value)
    return checked


def _delta(
    metrics: Mapping[str, float | None], baseline: Mapping[str, float | None] | None
) -> dict[str, float | None]:
    if baseline is None:
        return {}
    delta: dict[str, float | None] = {}
    for name, value in metrics.items():
        if name not in baseline:
            continue
        stored = baseline[name]
        delta[name] = None if value is None or stored is None else value - stored
    return delta


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
