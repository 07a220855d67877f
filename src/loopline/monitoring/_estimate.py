"""Performance estimated before labels arrive: confidence-based performance estimation
(CBPE, as NannyML's) for binary and multiclass classifiers.

If the probabilities are calibrated, each row's probabilities are the chances of each
label, so the expected confusion matrix follows from them alone: a row predicted as class
c adds P(c) to c's expected true positives and 1 - P(c) to its false positives, and P(k)
to every other class k's false negatives. From it:

    accuracy       the mean probability of the predicted class
    f1, precision, recall (binary, positive class = classes[1]); macro_f1 and weighted_f1
                   (multiclass; weights = expected class counts): from expected counts
    roc_auc        the area under the expected ROC curve: rows ranked by the model's own
                   score, each contributing P(positive) to the true and 1 - P(positive) to
                   the false positives (NannyML's estimate); multiclass: one-vs-rest macro

Calibration (`_calibration`) first maps the probabilities through isotonic calibrators
fitted on labelled reference data, when that helps there. `reliable` is None without
reference data ("calibration unknown"), False when the raw probabilities are
miscalibrated on the reference data (ECE > MAX_ECE) and no calibration fixed it, or when
more than MAX_UNCOVERED_SHARE of the window's rows have probabilities in bins where the
reference data is over 5 times sparser than the window or absent (`_calibration.
uncovered_share`: what the calibration data says does not reach those rows); else True.

CBPE assumes the relation from inputs to labels is the one of the reference data
(covariate shift only): under concept drift the estimate is wrong and says nothing.
`to_dict()` floats are not rounded and never NaN or infinite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput
from loopline.monitoring._calibration import (
    COVERAGE_BINS,
    SPARSER,
    Calibration,
    apply_calibration,
    fit_calibration,
    uncovered_share,
)
from loopline.monitoring._performance_inputs import (
    checked_classes,
    class_indexes,
    column,
    plain_label,
    probability_matrix,
    same_length,
)

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]

MAX_ECE = 0.05
MAX_UNCOVERED_SHARE = 0.10
BINARY_ESTIMATES = ("accuracy", "precision", "recall", "f1", "roc_auc")
MULTICLASS_ESTIMATES = ("accuracy", "macro_f1", "weighted_f1", "roc_auc")


@dataclass(frozen=True)
class EstimatedPerformance:
    """Estimated metrics of one window of a classifier's predictions (no labels needed).

    `metrics` uses evaluation's names; `reasons` says why a None metric is None;
    `reliable` and `reason` say whether calibration lets the estimate be trusted;
    `calibration` describes the reference data ({"rows", "ece_raw", "ece_calibrated",
    "calibrated", "unfit", "uncovered_share"}) or is None without it.
    """

    task: str
    rows: int
    classes: list[Any]
    metrics: dict[str, float | None]
    reliable: bool | None
    reason: str
    reasons: dict[str, str] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy: plain str, int, float, bool, None, lists and dicts; no NaN."""
        return {
            "method": "cbpe",
            "task": self.task,
            "rows": self.rows,
            "classes": list(self.classes),
            "metrics": dict(self.metrics),
            "reasons": dict(self.reasons),
            "reliable": self.reliable,
            "reason": self.reason,
            "calibration": None if self.calibration is None else dict(self.calibration),
        }


def calibrate(labels: Any, probabilities: Any, classes: Sequence[Any]) -> Calibration:
    """Fit CBPE's calibration on labelled reference data once, to reuse across windows
    or segments (`estimate_performance(..., calibration=calibrate(...))`).

    Returns a Calibration. Raises InvalidInput as estimate_performance does for its
    `calibration` pair.
    """
    return _fit((labels, probabilities), checked_classes(classes))


def estimate_performance(
    probabilities: Any,
    classes: Sequence[Any],
    *,
    calibration: tuple[Any, Any] | Calibration | None = None,
    predictions: Any = None,
) -> EstimatedPerformance:
    """Estimate a classifier's accuracy, f1 and ROC AUC on a window from its probabilities.

    `probabilities` is rows x classes in `classes` order (for two classes a single column,
    the probability of classes[1], also does). `predictions` are the labels the model
    returned (default: the class of the highest probability); give them when the model
    decides with another threshold. `calibration` is `(labels, probabilities)` of labelled
    reference data (the same model's probabilities on it), or what `calibrate` fitted on
    such data.

    Returns an EstimatedPerformance; with no rows every metric is None ("no rows").
    Raises InvalidInput for probabilities of the wrong shape, NaN or infinite, outside
    [0, 1] or rows not summing to 1, fewer than 2 classes, predictions or calibration
    labels that match no class or differ in length, empty calibration data, or a fitted
    calibration of other classes.
    """
    labels = checked_classes(classes)
    proba = probability_matrix(probabilities, len(labels), None, "probabilities")
    predicted = _predicted(predictions, proba, labels)
    binary = len(labels) == 2
    plain = [plain_label(label) for label in labels]
    fitted = None if calibration is None else _fit(calibration, labels)
    calibrated = proba if fitted is None else apply_calibration(fitted.calibrators, proba, binary)
    if not len(proba):
        names = BINARY_ESTIMATES if binary else MULTICLASS_ESTIMATES
        metrics: dict[str, float | None] = dict.fromkeys(names)
        reasons = dict.fromkeys(names, "no rows")
    elif binary:
        metrics, reasons = _binary(proba[:, 1], calibrated[:, 1], predicted, plain[1])
    else:
        metrics, reasons = _multiclass(proba, calibrated, predicted, plain)
    reliable, reason, described = _reliability(fitted, proba, plain)
    return EstimatedPerformance(
        task="binary" if binary else "multiclass",
        rows=len(proba),
        classes=plain,
        metrics=metrics,
        reliable=reliable,
        reason=reason,
        reasons=reasons,
        calibration=described,
    )


def _predicted(predictions: Any, proba: Array, labels: list[Any]) -> Array:
    """The predicted class position per row: the given labels', else the highest's."""
    import numpy as np

    if predictions is None:
        return np.argmax(proba, axis=1) if len(proba) else np.zeros(0, dtype=np.int64)
    given = column(predictions, "predictions")
    same_length(predictions=given, probabilities=proba)
    return class_indexes(given, labels, "predictions")


def _fit(calibration: Any, labels: list[Any]) -> Calibration:
    if isinstance(calibration, Calibration):
        if list(calibration.classes) != labels:
            raise InvalidInput(
                f"the calibration was fitted for classes {list(calibration.classes)[:10]}, "
                f"not {labels[:10]}"
            )
        return calibration
    if not isinstance(calibration, tuple | list) or len(calibration) != 2:
        raise InvalidInput(
            "calibration must be a pair (labels, probabilities) of labelled reference data"
        )
    reference_labels = column(calibration[0], "calibration labels")
    reference = probability_matrix(calibration[1], len(labels), None, "calibration probabilities")
    same_length(calibration_labels=reference_labels, calibration_probabilities=reference)
    if not len(reference):
        raise InvalidInput("the calibration data has no rows")
    positions = class_indexes(reference_labels, labels, "calibration labels")
    return fit_calibration(positions, reference, labels)


def _binary(
    raw: Array, positive: Array, predicted: Array, positive_class: Any
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Binary estimates; `raw` ranks the rows, `positive` is the calibrated P(classes[1])."""
    import numpy as np

    chosen = predicted == 1
    true_positive = float(positive[chosen].sum())
    false_positive = float(chosen.sum()) - true_positive
    false_negative = float(positive[~chosen].sum())
    accuracy = float(np.where(chosen, positive, 1.0 - positive).mean())
    metrics: dict[str, float | None] = {
        "accuracy": accuracy,
        "precision": _ratio(true_positive, true_positive + false_positive),
        "recall": _ratio(true_positive, true_positive + false_negative),
        "f1": _ratio(2 * true_positive, 2 * true_positive + false_positive + false_negative),
        "roc_auc": expected_roc_auc(raw, positive),
    }
    reasons = {}
    if metrics["precision"] is None:
        reasons["precision"] = f"no row is predicted as the positive class {positive_class!r}"
    if metrics["recall"] is None or metrics["f1"] is None:
        expected = f"the probabilities expect no row of the positive class {positive_class!r}"
        reasons.update({name: expected for name in ("recall", "f1") if metrics[name] is None})
    if metrics["roc_auc"] is None:
        reasons["roc_auc"] = "the probabilities expect one class only"
    return metrics, reasons


def _multiclass(
    raw: Array, calibrated: Array, predicted: Array, labels: list[Any]
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Multiclass estimates from expected per-class counts; ROC AUC one-vs-rest macro."""
    import numpy as np

    rows, classes = calibrated.shape
    chosen = calibrated[np.arange(rows), predicted]
    true_positive = np.bincount(predicted, weights=chosen, minlength=classes)
    predicted_count = np.bincount(predicted, minlength=classes).astype(float)
    expected_count = calibrated.sum(axis=0)
    # 2 TP / (2 TP + FP + FN) with FP = predicted - TP and FN = expected - TP
    denominator = predicted_count + expected_count
    seen = denominator > 0
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros(classes), where=seen)
    areas = [expected_roc_auc(raw[:, j], calibrated[:, j]) for j in range(classes)]
    metrics: dict[str, float | None] = {
        "accuracy": float(chosen.mean()),
        "macro_f1": float(f1[seen].mean()),
        "weighted_f1": float((f1 * expected_count).sum() / expected_count.sum()),
        "roc_auc": None if None in areas else float(np.mean([a for a in areas if a is not None])),
    }
    reasons = {}
    if metrics["roc_auc"] is None:
        missing = [labels[j] for j, area in enumerate(areas) if area is None]
        reasons["roc_auc"] = f"the probabilities expect no row, or every row, of {missing[:5]}"
    return metrics, reasons


def expected_roc_auc(score: Array, positive: Array) -> float | None:
    """The area under the expected ROC curve: rows ranked by `score` (ties grouped), row i
    counting `positive[i]` expected positives and 1 - `positive[i]` expected negatives.

    Returns None when the expected positives or negatives are (almost) zero.
    """
    import numpy as np

    order = np.argsort(-score, kind="stable")
    ranked, chances = score[order], positive[order]
    true_positives, false_positives = np.cumsum(chances), np.cumsum(1.0 - chances)
    last = np.append(ranked[1:] != ranked[:-1], True)  # the end of each group of tied scores
    true_positives, false_positives = true_positives[last], false_positives[last]
    positives, negatives = float(true_positives[-1]), float(false_positives[-1])
    if positives < 1e-9 or negatives < 1e-9:
        return None
    tpr = np.concatenate([[0.0], true_positives / positives])
    fpr = np.concatenate([[0.0], false_positives / negatives])
    return float(np.trapezoid(tpr, fpr))


def _reliability(
    fitted: Calibration | None, window: Array, labels: list[Any]
) -> tuple[bool | None, str, dict[str, Any] | None]:
    """(reliable, reason, calibration description) as the module docstring defines them."""
    if fitted is None:
        return None, "calibration unknown: no labelled calibration data was given", None
    share, column_index, first_bin = uncovered_share(fitted.reference, window, len(labels) == 2)
    described = {
        "rows": fitted.rows,
        "ece_raw": fitted.ece_raw,
        "ece_calibrated": fitted.ece_calibrated,
        "calibrated": fitted.calibrated,
        "unfit": fitted.unfit,
        "uncovered_share": share,
    }
    ece_raw = fitted.ece_raw if fitted.ece_raw is not None else 0.0
    problems = []
    if not fitted.calibrated and ece_raw > MAX_ECE:
        why = (
            f"no calibrator could be fitted ({fitted.unfit})"
            if fitted.unfit is not None
            else f"calibration did not lower it (held-out ECE {fitted.ece_calibrated:.3f})"
        )
        problems.append(
            f"the probabilities are miscalibrated on the calibration data (ECE {ece_raw:.3f} > "
            f"{MAX_ECE}) and {why}"
        )
    if share > MAX_UNCOVERED_SHARE:
        low = first_bin / COVERAGE_BINS
        problems.append(
            f"{share:.0%} of the window's rows have probabilities of class "
            f"{labels[column_index]!r} where the calibration data is over {SPARSER:g} times "
            f"sparser (first from {low:.1f} to {low + 1 / COVERAGE_BINS:.1f})"
        )
    if problems:
        return False, "; ".join(problems), described
    if fitted.calibrated:
        reason = (
            f"calibrated on {fitted.rows} labelled rows (ECE {ece_raw:.3f} raw, "
            f"{fitted.ece_calibrated:.3f} calibrated, held out)"
        )
    else:
        reason = f"probabilities calibrated as given (ECE {ece_raw:.3f} on {fitted.rows} rows)"
    return True, reason, described


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator <= 1e-12 else numerator / denominator
