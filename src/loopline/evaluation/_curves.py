"""Curves and tables behind the report's plots: ROC, precision-recall, the confusion matrix,
the reliability diagram (with its expected calibration error) and the residual histogram.

Curves are cut down to at most `MAX_POINTS` points so that a stored report stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]

MAX_POINTS = 200
CALIBRATION_BINS = 10
RESIDUAL_BINS = 20


def classification_curves(
    task: str, y: Array, pred: Array, proba: Array | None, classes: Sequence[Any]
) -> dict[str, Any]:
    """{"roc", "pr", "confusion"}; ROC and PR are None without probabilities or with one class.

    Binary curves are for the positive class (the last of `classes`); multiclass curves are
    micro-averaged over one-vs-rest labels.
    """
    import numpy as np

    labels = list(classes)
    truth, score = None, None
    if proba is not None and task == "binary":
        truth, score = np.asarray(y == labels[-1], dtype=int), proba[:, -1]
    elif proba is not None:
        truth = np.stack([np.asarray(y == label, dtype=int) for label in labels], axis=1).ravel()
        score = proba.ravel()
    return {
        "roc": None if truth is None or score is None else _roc(truth, score),
        "pr": None if truth is None or score is None else _pr(truth, score),
        "confusion": confusion(y, pred, labels),
    }


def confusion(y: Array, pred: Array, labels: list[Any]) -> dict[str, Any]:
    """Counts of (true label, predicted label), rows are true labels in `labels` order."""
    from sklearn.metrics import confusion_matrix

    if not len(y):
        return {"labels": labels, "matrix": [[0] * len(labels) for _ in labels]}
    matrix = confusion_matrix(y, pred, labels=labels)
    return {"labels": labels, "matrix": [[int(count) for count in row] for row in matrix]}


def _roc(truth: Array, score: Array) -> dict[str, list[float]] | None:
    import numpy as np
    from sklearn.metrics import roc_curve

    if len(np.unique(truth)) < 2:
        return None
    fpr, tpr, _ = roc_curve(truth, score)
    keep = _thin(len(fpr))
    return {"fpr": _floats(fpr[keep]), "tpr": _floats(tpr[keep])}


def _pr(truth: Array, score: Array) -> dict[str, list[float]] | None:
    import numpy as np
    from sklearn.metrics import precision_recall_curve

    if len(np.unique(truth)) < 2:
        return None
    precision, recall, _ = precision_recall_curve(truth, score)
    keep = _thin(len(precision))
    return {"precision": _floats(precision[keep]), "recall": _floats(recall[keep])}


def _thin(length: int) -> Array:
    """At most MAX_POINTS indexes, evenly spread, always keeping the first and the last."""
    import numpy as np

    if length <= MAX_POINTS:
        return np.arange(length)
    return np.unique(np.linspace(0, length - 1, MAX_POINTS).round().astype(int))


def _floats(values: Array) -> list[float]:
    return [round(float(v), 6) for v in values]


def calibration(task: str, y: Array, proba: Array, classes: Sequence[Any]) -> dict[str, Any]:
    """The reliability diagram in CALIBRATION_BINS equal-width bins over [0, 1], and the ECE.

    Binary: the predicted probability of the positive class against how often it was the
    true label. Multiclass: the top-label confidence against how often the top label was
    right. ECE is the row-weighted mean gap |mean predicted - fraction positive| of the bins.
    """
    import numpy as np

    labels = np.asarray(list(classes), dtype=object)
    if task == "binary":
        confidence = proba[:, -1].astype(float)
        hit = np.asarray(y == labels[-1], dtype=float)
    else:
        top = np.argmax(proba, axis=1)
        confidence = proba[np.arange(len(proba)), top].astype(float)
        hit = np.asarray(labels[top] == np.asarray(y, dtype=object), dtype=float)
    finite = np.isfinite(confidence)
    confidence, hit = confidence[finite], hit[finite]
    index = np.clip(np.floor(confidence * CALIBRATION_BINS), 0, CALIBRATION_BINS - 1).astype(int)
    bins, gap = [], 0.0
    for b in range(CALIBRATION_BINS):
        inside = index == b
        count = int(inside.sum())
        mean_predicted = float(confidence[inside].mean()) if count else None
        positive = float(hit[inside].mean()) if count else None
        if mean_predicted is not None and positive is not None:
            gap += count * abs(mean_predicted - positive)
        bins.append(
            {
                "lower": b / CALIBRATION_BINS,
                "upper": (b + 1) / CALIBRATION_BINS,
                "count": count,
                "mean_predicted": mean_predicted,
                "fraction_positive": positive,
            }
        )
    return {"ece": gap / len(confidence) if len(confidence) else None, "bins": bins}


def residuals(y: Array, pred: Array) -> dict[str, Any]:
    """{"residuals": [{"lower", "upper", "count"}, ...]}: a histogram of prediction - truth."""
    import numpy as np

    errors = pred.astype(float) - y.astype(float)
    errors = errors[np.isfinite(errors)]
    if not len(errors):
        return {"residuals": []}
    counts, edges = np.histogram(errors, bins=RESIDUAL_BINS)
    return {
        "residuals": [
            {"lower": float(edges[i]), "upper": float(edges[i + 1]), "count": int(count)}
            for i, count in enumerate(counts)
        ]
    }
