"""Autologging scikit-learn: params, training metrics, searches' best params and children.

Patched: `fit` of every estimator `sklearn.utils.all_estimators()` lists (Pipeline,
ColumnTransformer, GridSearchCV and RandomizedSearchCV included), on the scikit-learn
class that defines it. The training metrics are MLflow's names: `training_score` (the estimator's
own `score`), and for a classifier `training_accuracy_score`, `training_precision_score`,
`training_recall_score`, `training_f1_score` (weighted averages), `training_log_loss`
and `training_roc_auc` (with `predict_proba`); for a regressor
`training_mean_squared_error`, `training_root_mean_squared_error`,
`training_mean_absolute_error` and `training_r2_score`.

A search (GridSearchCV, RandomizedSearchCV) also logs `best_<param>` params, the
`best_cv_score` metric, `cv_results.csv`, and one child run per candidate for the
`max_tuning_runs` best-ranked candidates (all of them when None); the model it logs is
its `best_estimator_`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from loopline.models.autolog._session import Fit, Settings, first_rows, log_params
from loopline.tracking import ActiveRun, start_run

log = logging.getLogger(__name__)

FLAVOR = "sklearn"


def targets() -> list[type]:
    """The classes whose `fit` is patched: for each estimator, the class its `fit` comes
    from (GridSearchCV's is BaseSearchCV's, which all_estimators does not list)."""
    from sklearn.utils import all_estimators

    owners: dict[type, None] = {}
    for _, cls in all_estimators():
        owner = next((c for c in cls.__mro__ if "fit" in vars(c)), None)
        if owner is not None and owner.__module__.startswith("sklearn."):
            owners[owner] = None
    return list(owners)


def prepare(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Fit:
    """`estimator.fit(X, y=None, **fit_params)`: params and training data, before the fit."""
    estimator, X, y = _fit_arguments(args, kwargs)
    return Fit(
        flavor=FLAVOR,
        params=dict(estimator.get_params(deep=True)),
        X=X,
        y=y,
        example=first_rows(X),
        args=args,
        kwargs=kwargs,
    )


def _fit_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
    estimator = args[0]
    X = args[1] if len(args) > 1 else kwargs.get("X")
    y = args[2] if len(args) > 2 else kwargs.get("y", kwargs.get("Y"))
    return estimator, X, y


def finish(run: ActiveRun, fit: Fit, result: Any, settings: Settings) -> Any:
    """Training metrics (and a search's results) after the fit; returns the estimator."""
    estimator = fit.args[0]
    weights = fit.kwargs.get("sample_weight")
    if fit.X is not None:
        metrics = training_metrics(estimator, fit.X, fit.y, weights)
        if metrics:
            run.log_metrics(metrics)
    if not hasattr(estimator, "cv_results_"):
        return estimator
    try:
        log_search(run, estimator, settings)
    except Exception as exc:  # the model is still worth logging
        level = logging.DEBUG if settings.silent else logging.WARNING
        log.log(level, "autolog: logging the search's results failed: %s", exc)
    # The model a search stands for is its refitted best estimator (None with refit=False);
    # the search object itself also holds its splitter and scorer, types nobody reviewed.
    return getattr(estimator, "best_estimator_", None)


# -- training metrics ----------------------------------------------------------------------


def training_metrics(estimator: Any, X: Any, y: Any, weights: Any = None) -> dict[str, float]:
    """MLflow's training metrics for `estimator` on its training data (module docstring).

    A metric that does not apply (no labels, a clusterer, a refit=False search, a
    multi-output target) is left out rather than failing the others.
    """
    from sklearn.base import is_classifier, is_regressor

    metrics: dict[str, float] = {}
    if y is not None:
        _measure(metrics, "training_score", lambda: estimator.score(X, y, sample_weight=weights))
    if y is None or not hasattr(estimator, "predict"):
        return metrics
    predicted = _try(lambda: estimator.predict(X))
    if predicted is None:
        return metrics
    if is_classifier(estimator):
        metrics.update(_classifier_metrics(estimator, X, y, predicted, weights))
    elif is_regressor(estimator):
        metrics.update(_regressor_metrics(y, predicted, weights))
    return metrics


def _classifier_metrics(
    estimator: Any, X: Any, y: Any, predicted: Any, weights: Any
) -> dict[str, float]:
    from sklearn import metrics as m

    out: dict[str, float] = {}
    w = {"sample_weight": weights}
    avg = {"average": "weighted", "zero_division": 0}
    _measure(out, "training_accuracy_score", lambda: m.accuracy_score(y, predicted, **w))
    _measure(out, "training_precision_score", lambda: m.precision_score(y, predicted, **avg, **w))
    _measure(out, "training_recall_score", lambda: m.recall_score(y, predicted, **avg, **w))
    _measure(out, "training_f1_score", lambda: m.f1_score(y, predicted, **avg, **w))
    if not hasattr(estimator, "predict_proba"):
        return out
    proba = _try(lambda: estimator.predict_proba(X))
    if proba is None:
        return out
    labels = getattr(estimator, "classes_", None)
    _measure(out, "training_log_loss", lambda: m.log_loss(y, proba, labels=labels, **w))
    if getattr(proba, "ndim", 0) == 2 and proba.shape[1] == 2:
        _measure(out, "training_roc_auc", lambda: m.roc_auc_score(y, proba[:, 1], **w))
    else:
        _measure(
            out,
            "training_roc_auc",
            lambda: m.roc_auc_score(
                y, proba, multi_class="ovr", average="weighted", labels=labels, **w
            ),
        )
    return out


def _regressor_metrics(y: Any, predicted: Any, weights: Any) -> dict[str, float]:
    from sklearn import metrics as m

    out: dict[str, float] = {}
    w = {"sample_weight": weights}
    _measure(out, "training_mean_squared_error", lambda: m.mean_squared_error(y, predicted, **w))
    if "training_mean_squared_error" in out:
        out["training_root_mean_squared_error"] = math.sqrt(out["training_mean_squared_error"])
    _measure(out, "training_mean_absolute_error", lambda: m.mean_absolute_error(y, predicted, **w))
    _measure(out, "training_r2_score", lambda: m.r2_score(y, predicted, **w))
    return out


def _measure(out: dict[str, float], key: str, compute: Callable[[], Any]) -> None:
    value = _try(compute)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return
    if math.isfinite(number):
        out[key] = number


def _try(compute: Callable[[], Any]) -> Any:
    try:
        return compute()
    except Exception as exc:
        log.debug("autolog: a training metric does not apply: %s", exc)
        return None


# -- searches ------------------------------------------------------------------------------


def log_search(run: ActiveRun, search: Any, settings: Settings) -> None:
    """A fitted search's best params and score, its results table and child runs."""
    best = getattr(search, "best_params_", None)
    if isinstance(best, dict):
        log_params(run, {f"best_{key}": value for key, value in best.items()})
    score = getattr(search, "best_score_", None)
    if score is not None and math.isfinite(float(score)):
        run.log_metric("best_cv_score", float(score))
    results = search.cv_results_
    import pandas as pd

    run.log_text(pd.DataFrame(results).to_csv(index=False), "cv_results.csv")
    for rank, index in enumerate(_best_candidates(results, settings.max_tuning_runs)):
        _log_candidate(run, results, index, rank)


def _best_candidates(results: dict[str, Any], limit: int | None) -> list[int]:
    """Candidate indexes by rank (the first `rank_test_*` column), best first."""
    count = len(results["params"])
    ranks = next((results[k] for k in sorted(results) if k.startswith("rank_test_")), None)
    order = sorted(range(count), key=lambda i: (int(ranks[i]), i) if ranks is not None else i)
    return order if limit is None else order[:limit]


def _log_candidate(parent: ActiveRun, results: dict[str, Any], index: int, rank: int) -> None:
    """One child run: the candidate's params and its mean/std test and train scores."""
    metrics = {}
    for key, values in results.items():
        if key.startswith(("mean_", "std_", "rank_")) and not key.endswith("_time"):
            number = float(values[index])
            if math.isfinite(number):
                metrics[key] = number
    with start_run(parent.experiment, name=f"{parent.name}-{rank + 1}", parent=parent) as child:
        log_params(child, results["params"][index])
        if metrics:
            child.log_metrics(metrics)
