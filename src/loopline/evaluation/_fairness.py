"""Group fairness of predictions across the values of a sensitive column.

Binary classifiers: per group the positive prediction rate, the true positive rate and the
false positive rate; the demographic parity difference is the spread (max - min) of positive
rates, the equalized odds difference the larger of the spreads of TPR and FPR (the
definitions fairlearn uses). Multiclass: the same, one-vs-rest for each class, keeping the
largest spread, with per-group accuracy. Regression: the spread of mean predictions.
Groups come from `column_groups` (values, or quartiles of a numeric column).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loopline.evaluation._slices import column_groups

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    Array = npt.NDArray[Any]
    Mask = npt.NDArray[np.bool_]


def fairness(
    task: str,
    data: pd.DataFrame,
    column: str,
    y: Array,
    pred: Array,
    classes: Sequence[Any] | None,
) -> dict[str, Any]:
    """The fairness entry of one sensitive column (see the module docstring)."""
    groups = [(label, mask) for label, mask in column_groups(data, column) if mask.any()]
    if task == "regression":
        return _regression(groups, y, pred)
    labels = list(classes or [])
    if task == "binary":
        return _binary(groups, y, pred, labels[-1])
    return _multiclass(groups, y, pred, labels)


def binary_rates(y: Array, pred: Array, positive: Any) -> dict[str, Any]:
    """{"rows", "positive_rate", "tpr", "fpr"}; a rate without rows to measure it is None."""
    import numpy as np

    actual = np.asarray(y == positive, dtype=bool)
    predicted = np.asarray(pred == positive, dtype=bool)
    return {
        "rows": len(y),
        "positive_rate": float(predicted.mean()) if len(y) else None,
        "tpr": float(predicted[actual].mean()) if actual.any() else None,
        "fpr": float(predicted[~actual].mean()) if (~actual).any() else None,
    }


def spread(values: Sequence[float | None]) -> float | None:
    """max - min of the values that are not None; None when there are none."""
    known = [v for v in values if v is not None]
    return max(known) - min(known) if known else None


def _binary(groups: list[tuple[str, Mask]], y: Array, pred: Array, positive: Any) -> dict[str, Any]:
    rates = {label: binary_rates(y[mask], pred[mask], positive) for label, mask in groups}
    return {
        "demographic_parity_diff": spread([r["positive_rate"] for r in rates.values()]),
        "equalized_odds_diff": _odds_spread(list(rates.values())),
        "groups": rates,
    }


def _odds_spread(rates: list[dict[str, Any]]) -> float | None:
    return _largest([spread([r["tpr"] for r in rates]), spread([r["fpr"] for r in rates])])


def _multiclass(
    groups: list[tuple[str, Mask]], y: Array, pred: Array, labels: list[Any]
) -> dict[str, Any]:
    parity: list[float | None] = []
    odds: list[float | None] = []
    for label in labels:
        rates = [binary_rates(y[mask], pred[mask], label) for _, mask in groups]
        parity.append(spread([r["positive_rate"] for r in rates]))
        odds.append(_odds_spread(rates))
    per_group = {
        name: {"rows": int(mask.sum()), "accuracy": float((y[mask] == pred[mask]).mean())}
        for name, mask in groups
    }
    return {
        "demographic_parity_diff": _largest(parity),
        "equalized_odds_diff": _largest(odds),
        "accuracy_diff": spread([g["accuracy"] for g in per_group.values()]),
        "groups": per_group,
    }


def _regression(groups: list[tuple[str, Mask]], y: Array, pred: Array) -> dict[str, Any]:
    per_group = {}
    for name, mask in groups:
        predicted, actual = pred[mask].astype(float), y[mask].astype(float)
        per_group[name] = {
            "rows": int(mask.sum()),
            "mean_prediction": _finite_mean(predicted),
            "mean_target": _finite_mean(actual),
        }
    return {
        "demographic_parity_diff": None,
        "equalized_odds_diff": None,
        "mean_prediction_diff": spread([g["mean_prediction"] for g in per_group.values()]),
        "groups": per_group,
    }


def _finite_mean(values: Array) -> float | None:
    import numpy as np

    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def _largest(values: list[float | None]) -> float | None:
    return max((v for v in values if v is not None), default=None)
