"""Evaluate a model on a labelled frame: one JSON-ready report of metrics, slices, fairness,
calibration, robustness, latency, size and curves.

The report is plain data (str, int, float, bool, None, lists and dicts, no NaN; an undefined
value is None) so that it can be stored as an artifact and addressed by promotion gates with
dotted paths such as `metrics.roc_auc` or `slices_min.f1`. Its keys:

    task, target, rows, positive_class, classes
    metrics       binary: accuracy precision recall f1 roc_auc pr_auc log_loss brier
                  multiclass: accuracy macro_f1 weighted_f1 roc_auc log_loss
                  regression: rmse mae r2 mape
    slices        {name: {"rows", "metrics"}}, plus slices_min / slices_max per metric
    fairness      {column: {"demographic_parity_diff", "equalized_odds_diff", "groups", ...}}
    calibration   {"ece", "bins"} or None        robustness  {"flip_rate", "mean_abs_change", ...}
    latency       {"p50_ms", "p99_ms", "batch_rows", "batch_p50_ms", "batch_p99_ms", ...}
    size          {"bytes"}                      curves      {"roc", "pr", "confusion"} or
                                                             {"residuals"}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from loopline.errors import InvalidInput
from loopline.evaluation import _curves, _fairness, _metrics, _robustness, _slices, _timing

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    Array = npt.NDArray[Any]
    Mask = npt.NDArray[np.bool_]

__all__ = ["TASKS", "Predictor", "evaluate_predictor", "slice_mask"]

TASKS = ("binary", "multiclass", "regression")
MAX_CLASSES_FOR_INTEGERS = 20
"""A float target with more distinct values than this is a regression target."""

slice_mask = _slices.slice_mask


@runtime_checkable
class Predictor(Protocol):
    """What evaluation needs of a model: labels (or values) and, optionally, probabilities."""

    def predict(self, data: pd.DataFrame) -> Array:
        """One prediction per row of `data`."""
        ...

    @property
    def has_proba(self) -> bool:
        """Whether `predict_proba` is available."""
        ...

    def predict_proba(self, data: pd.DataFrame) -> Array:
        """Class probabilities, shape (rows, classes), columns in `classes` order."""
        ...

    @property
    def classes(self) -> list[Any] | None:
        """The class labels of a classifier (sorted, as sklearn keeps them), else None."""
        ...


def evaluate_predictor(
    model: Predictor,
    data: pd.DataFrame,
    *,
    target: str,
    slices: Sequence[str] = (),
    sensitive: Sequence[str] = (),
    task: str | None = None,
    model_size_bytes: int | None = None,
    seed: int = 0,
    latency_repeats: int = 200,
) -> dict[str, Any]:
    """Evaluate `model` on `data`, whose `target` column holds the true values.

    `slices` are column names (one slice per value, or quartiles of a numeric column with
    many values) or conditions such as `age > 60 and segment == 'gold'`; `sensitive` names the
    columns to measure group fairness on. `task` ("binary", "multiclass", "regression") is
    inferred when None. Features are all columns but the target.

    Raises InvalidInput for a missing column, missing target values, an empty frame, a
    malformed slice condition, an unknown task or predictions of the wrong shape.
    """
    _check_frame(data, target, sensitive)
    task = _task(task, data[target], model)
    y = data[target].to_numpy()
    classes = None if task == "regression" else _classes(model, y, task)
    masks = _slice_masks(data, slices)  # before predicting: fail fast on a typo
    features = data.drop(columns=[target])
    pred = _predictions(model, features, task)
    proba = None if classes is None else _probabilities(model, features, classes)
    run = _Predictions(task, y, pred, proba, classes)
    slice_reports = {name: run.slice(mask) for name, mask in masks.items()}
    report: dict[str, Any] = {
        "task": task,
        "target": target,
        "rows": len(data),
        "positive_class": classes[-1] if task == "binary" and classes else None,
        "classes": classes,
        "metrics": run.metrics(),
        "slices": slice_reports,
        "slices_min": _extreme(task, slice_reports, min),
        "slices_max": _extreme(task, slice_reports, max),
        "fairness": {
            column: _fairness.fairness(task, data, column, y, pred, classes) for column in sensitive
        },
        "calibration": None
        if proba is None or classes is None
        else _curves.calibration(task, y, proba, classes),
        "robustness": _robustness.robustness(
            model.predict, features, pred, task=task, y=y, seed=seed, inputs=_inputs(model)
        ),
        "latency": _timing.latency(
            model.predict, _model_columns(model, features), repeats=latency_repeats, seed=seed
        ),
        "size": {"bytes": model_size_bytes},
        "curves": _curves.residuals(y, pred)
        if classes is None
        else _curves.classification_curves(task, y, pred, proba, classes),
    }
    return _plain(report)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Predictions:
    """The truth and the model's answers on every row, to be measured whole or by slice."""

    task: str
    y: Array
    pred: Array
    proba: Array | None
    classes: list[Any] | None

    def metrics(self, mask: Mask | None = None) -> dict[str, float | None]:
        """The task's metrics on the rows of `mask` (all rows when None)."""
        y, pred, proba = self.y, self.pred, self.proba
        if mask is not None:
            y, pred, proba = y[mask], pred[mask], None if proba is None else proba[mask]
        if self.classes is None:
            return _metrics.regression_metrics(y, pred)
        return _metrics.classification_metrics(self.task, y, pred, proba, self.classes)

    def slice(self, mask: Mask) -> dict[str, Any]:
        """{"rows", "metrics"}; metrics is None for an empty slice."""
        rows = int(mask.sum())
        return {"rows": rows, "metrics": self.metrics(mask) if rows else None}


def _check_frame(data: pd.DataFrame, target: str, sensitive: Sequence[str]) -> None:
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise InvalidInput(f"evaluation needs a pandas DataFrame, got {type(data).__name__}")
    if target not in data.columns:
        raise InvalidInput(f"target column '{target}' is not in the data")
    if isinstance(sensitive, str):
        raise InvalidInput("sensitive must be a list of column names, not one string")
    for column in sensitive:
        if column not in data.columns:
            raise InvalidInput(f"sensitive column '{column}' is not in the data")
    if len(data) == 0:
        raise InvalidInput("the evaluation data has no rows")
    missing = int(data[target].isna().sum())
    if missing:
        raise InvalidInput(f"target '{target}' has {missing} missing values")


def _task(task: str | None, target: pd.Series[Any], model: Predictor) -> str:
    """The given task, checked, or the one the target and the model imply."""
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)
    if task is not None:
        if task not in TASKS:
            raise InvalidInput(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
        if task == "regression" and not numeric:
            raise InvalidInput(
                f"regression needs a numeric target, '{target.name}' is {target.dtype}"
            )
        return task
    classes = model.classes
    if numeric and classes is None:
        return "regression"
    many = target.nunique() > MAX_CLASSES_FOR_INTEGERS
    if numeric and pd.api.types.is_float_dtype(target) and many:
        return "regression"
    count = len(classes) if classes is not None else int(target.nunique())
    return "binary" if count <= 2 else "multiclass"


def _classes(model: Predictor, y: Array, task: str) -> list[Any]:
    """The model's classes, or the sorted labels seen in `y` for a model without them."""
    import numpy as np

    if model.classes is not None:
        classes = list(model.classes)
    else:
        try:
            classes = list(np.unique(y))
        except TypeError:  # labels of mixed types: order them by their text
            classes = sorted(set(y.tolist()), key=str)
    if task == "binary" and len(classes) > 2:
        raise InvalidInput(f"task 'binary' needs 2 classes, found {len(classes)}: {classes[:5]}")
    return classes


def _predictions(model: Predictor, features: pd.DataFrame, task: str) -> Array:
    import numpy as np

    pred = np.asarray(model.predict(features))
    if pred.ndim == 2 and pred.shape[1] == 1:
        pred = pred.ravel()
    if pred.shape != (len(features),):
        raise InvalidInput(
            f"the model returned predictions of shape {pred.shape} for {len(features)} rows"
        )
    if task == "regression" and not np.issubdtype(pred.dtype, np.number):
        raise InvalidInput(f"regression needs numeric predictions, the model returned {pred.dtype}")
    return pred


def _probabilities(model: Predictor, features: pd.DataFrame, classes: list[Any]) -> Array | None:
    import numpy as np

    if not model.has_proba:
        return None
    proba = np.asarray(model.predict_proba(features), dtype=float)
    if proba.shape != (len(features), len(classes)):
        raise InvalidInput(
            f"the model returned probabilities of shape {proba.shape}; expected "
            f"({len(features)}, {len(classes)}), one column per class"
        )
    return proba


def _slice_masks(data: pd.DataFrame, specs: Sequence[str]) -> dict[str, Mask]:
    """Slice name -> row mask: "col=value" / "col in [a, b)" for columns, else the condition."""
    if isinstance(specs, str):
        raise InvalidInput("slices must be a list of column names or conditions, not one string")
    masks: dict[str, Mask] = {}
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise InvalidInput(f"a slice must be a column name or a condition, got {spec!r}")
        if spec in data.columns:
            for label, mask in _slices.column_groups(data, spec):
                joiner = " in " if label.startswith("[") else "="
                name = f"{spec} is missing" if label == "missing" else f"{spec}{joiner}{label}"
                masks[name] = mask
        else:
            masks[spec.strip()] = _slices.slice_mask(data, spec)
    return masks


def _extreme(task: str, slices: Mapping[str, Any], pick: Any) -> dict[str, float | None]:
    """Per metric, the min (or max) over the slices that define it; {} without slices."""
    if not slices:
        return {}
    out: dict[str, float | None] = {}
    for name in _metrics.metric_names(task):
        values = [s["metrics"][name] for s in slices.values() if s["metrics"] is not None]
        known = [v for v in values if v is not None]
        out[name] = pick(known) if known else None
    return out


def _plain(value: Any) -> Any:
    """`value` with numpy scalars as Python ones, non-finite floats as None, keys as text."""
    import numpy as np

    if isinstance(value, Mapping):
        return {_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _key(key: Any) -> str:
    import numpy as np

    return str(key.item() if isinstance(key, np.generic) else key)


def _inputs(model: Predictor) -> list[str] | None:
    """The model's input columns, if it names them (a registered model's signature)."""
    names = getattr(model, "input_names", None)
    return [str(name) for name in names] if names else None


def _model_columns(model: Predictor, features: pd.DataFrame) -> pd.DataFrame:
    """The features the model takes (`input_names`, if it says), selected once, so that
    timing measures predict and not the selection of columns from a wider frame."""
    names = list(getattr(model, "input_names", None) or [])
    if names and all(name in features.columns for name in names):
        return features[names]
    return features
