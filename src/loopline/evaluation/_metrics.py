"""Headline metrics of one set of predictions: classification and regression.

Every value is a plain float or None. A metric sklearn cannot define on these rows (one class
only, no predicted positives, a single row for r2, ...) becomes None instead of a warning or an
exception, so that a thin slice never stops an evaluation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]

BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss", "brier")
MULTICLASS_METRICS = ("accuracy", "macro_f1", "weighted_f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")
HIGHER_IS_BETTER = frozenset(
    {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "macro_f1", "weighted_f1", "r2"}
)
"""Metrics where a bigger number is a better model; the others are losses or errors."""


def metric_names(task: str) -> tuple[str, ...]:
    """The metric keys reported for a task."""
    if task == "binary":
        return BINARY_METRICS
    return MULTICLASS_METRICS if task == "multiclass" else REGRESSION_METRICS


def safe_value(compute: Callable[..., Any], *args: Any, **kwargs: Any) -> float | None:
    """`compute(*args, **kwargs)` as a finite float, or None when it is undefined.

    Undefined means: it raised ValueError, TypeError or ZeroDivisionError, emitted an
    UndefinedMetricWarning or a RuntimeWarning, or returned NaN or infinity. Other warnings
    are passed on unchanged.
    """
    from sklearn.exceptions import UndefinedMetricWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = float(compute(*args, **kwargs))
        except (ValueError, TypeError, ZeroDivisionError, FloatingPointError):
            value = math.nan
    undefined = False
    for item in caught:
        if issubclass(item.category, (UndefinedMetricWarning, RuntimeWarning)):
            undefined = True
        else:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    return None if undefined or not math.isfinite(value) else value


def classification_metrics(
    task: str, y: Array, pred: Array, proba: Array | None, classes: Sequence[Any]
) -> dict[str, float | None]:
    """Binary or multiclass metrics; the probability-based ones are None without `proba`."""
    from sklearn import metrics

    if task == "binary":
        positive = classes[-1]
        y_pos, pred_pos = (y == positive).astype(int), (pred == positive).astype(int)
        score = None if proba is None else proba[:, -1]
        return {
            "accuracy": safe_value(metrics.accuracy_score, y, pred),
            "precision": safe_value(metrics.precision_score, y_pos, pred_pos),
            "recall": safe_value(metrics.recall_score, y_pos, pred_pos),
            "f1": safe_value(metrics.f1_score, y_pos, pred_pos),
            "roc_auc": _with(score, lambda s: safe_value(metrics.roc_auc_score, y_pos, s)),
            "pr_auc": _with(score, lambda s: safe_value(metrics.average_precision_score, y_pos, s)),
            "log_loss": _with(proba, lambda p: _log_loss(y, p, classes)),
            "brier": _with(score, lambda s: safe_value(metrics.brier_score_loss, y_pos, s)),
        }
    labels = list(classes)
    return {
        "accuracy": safe_value(metrics.accuracy_score, y, pred),
        # F1 over the labels present in y or pred, as sklearn does: a class absent from a
        # slice does not make its macro F1 undefined.
        "macro_f1": safe_value(metrics.f1_score, y, pred, average="macro"),
        "weighted_f1": safe_value(metrics.f1_score, y, pred, average="weighted"),
        "roc_auc": _with(proba, lambda p: _multiclass_auc(y, p, labels)),
        "log_loss": _with(proba, lambda p: _log_loss(y, p, classes)),
    }


def regression_metrics(y: Array, pred: Array) -> dict[str, float | None]:
    """RMSE, MAE, R² and MAPE (None when any true value is 0, where MAPE is infinite)."""
    import numpy as np
    from sklearn import metrics

    y, pred = y.astype(float), pred.astype(float)
    return {
        "rmse": safe_value(metrics.root_mean_squared_error, y, pred),
        "mae": safe_value(metrics.mean_absolute_error, y, pred),
        "r2": safe_value(metrics.r2_score, y, pred),
        "mape": None
        if bool(np.any(y == 0))
        else safe_value(metrics.mean_absolute_percentage_error, y, pred),
    }


def empty_metrics(task: str) -> dict[str, float | None]:
    """Every metric of the task as None (a slice without rows)."""
    return dict.fromkeys(metric_names(task))


def _with(value: Array | None, compute: Callable[[Array], float | None]) -> float | None:
    return None if value is None else compute(value)


def _log_loss(y: Array, proba: Array, classes: Sequence[Any]) -> float | None:
    """Log loss; rows that sum to one only within float32 rounding (an ONNX runtime's
    probabilities) are rescaled first, as sklearn warns about any row off by more than
    a few float64 epsilons."""
    import numpy as np
    from sklearn.metrics import log_loss

    if proba.ndim == 2 and proba.shape[1] > 1:
        totals = proba.sum(axis=1, keepdims=True)
        if not np.array_equal(totals, np.ones_like(totals)):
            proba = proba / np.clip(totals, 1e-12, None)
    return safe_value(log_loss, y, proba, labels=list(classes))


def _multiclass_auc(y: Array, proba: Array, labels: list[Any]) -> float | None:
    """One-vs-rest macro ROC AUC; None unless every class is present (else it is undefined)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) != len(labels):
        return None
    totals = proba.sum(axis=1, keepdims=True)
    if not np.allclose(totals, 1.0):  # roc_auc_score insists that each row sums to one
        proba = proba / np.clip(totals, 1e-12, None)
    return safe_value(roc_auc_score, y, proba, multi_class="ovr", average="macro", labels=labels)
