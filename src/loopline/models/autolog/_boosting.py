"""Autologging XGBoost and LightGBM: params, per-iteration eval metrics, the booster.

Patched: `fit` of the scikit-learn wrappers (xgboost.sklearn's XGB* classes,
lightgbm.sklearn's LGBM* classes) and the native `xgboost.train` / `lightgbm.train`.
Each eval set's results become metric steps named as the library names them,
`<data>-<metric>` (`validation_0-logloss`, `valid_0-binary_logloss`): the wrappers'
`evals_result()` / `evals_result_`; for `train`, an `evals_result` dict (xgboost) or a
`record_evaluation` callback (lightgbm) added to the call when the caller gave none.
The wrappers also log the scikit-learn training metrics (`training_accuracy_score`, ...).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from loopline.models.autolog._session import Fit, Settings, first_rows, log_series
from loopline.tracking import ActiveRun

log = logging.getLogger(__name__)

# The native train() arguments logged as params beside `params` itself.
TRAIN_PARAMS = ("num_boost_round", "early_stopping_rounds", "maximize")


def wrapper_targets(module_name: str, base_name: str) -> list[type]:
    """The sklearn-API classes of `module_name` (subclasses of `base_name`) defining fit."""
    import importlib

    module = importlib.import_module(module_name)
    base = getattr(module, base_name)
    return [
        cls
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, base) and "fit" in vars(cls)
    ]


def prepare_wrapper(flavor: str) -> Callable[[tuple[Any, ...], dict[str, Any]], Fit]:
    """`prepare` for XGB*/LGBM* `fit(X, y, ..., eval_set=[(X, y), ...])`."""

    def prepare(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Fit:
        estimator = args[0]
        bound = inspect.signature(type(estimator).fit).bind(*args, **kwargs).arguments
        X, y = bound.get("X"), bound.get("y")
        names = bound.get("eval_names") or []
        eval_sets = []
        for i, pair in enumerate(_eval_pairs(bound)):
            default = f"validation_{i}" if flavor == "xgboost" else f"valid_{i}"
            name = names[i] if i < len(names) else default
            eval_sets.append((str(name), *_pair(pair)))
        return Fit(
            flavor=flavor,
            params=dict(estimator.get_params(deep=True)),
            X=X,
            y=y,
            example=first_rows(X),
            eval_sets=eval_sets,
            args=args,
            kwargs=kwargs,
        )

    return prepare


def _eval_pairs(bound: dict[str, Any]) -> list[Any]:
    """`eval_set=[(X, y), ...]`, or LightGBM's newer `eval_X=`/`eval_y=` (one or tuples)."""
    if bound.get("eval_set"):
        return list(bound["eval_set"])
    features, target = bound.get("eval_X"), bound.get("eval_y")
    if features is None:
        return []
    if isinstance(features, tuple) and isinstance(target, tuple):
        return list(zip(features, target, strict=False))
    return [(features, target)]


def _pair(pair: Any) -> tuple[Any, Any]:
    if isinstance(pair, tuple | list) and len(pair) == 2:
        return pair[0], pair[1]
    return None, None


def finish_wrapper(run: ActiveRun, fit: Fit, result: Any, settings: Settings) -> Any:
    """Eval results as steps, the best iteration, and the training metrics."""
    estimator = fit.args[0]
    results = _evals_result(estimator)
    if results:
        log_series(run, results)
    best = _best_iteration(estimator)
    if best is not None:
        run.log_metric("best_iteration", float(best))
    if fit.X is not None and fit.y is not None:
        from loopline.models.autolog._sklearn import training_metrics

        metrics = training_metrics(estimator, fit.X, fit.y, fit.kwargs.get("sample_weight"))
        if metrics:
            run.log_metrics(metrics)
    return estimator


def _evals_result(estimator: Any) -> dict[str, Any]:
    try:
        found = (
            estimator.evals_result() if callable(getattr(estimator, "evals_result", None)) else None
        )
    except Exception:  # xgboost raises when the fit had no eval set
        found = None
    if found is None:
        found = getattr(estimator, "evals_result_", None)
    return dict(found or {})


def _best_iteration(estimator: Any) -> int | None:
    try:
        best = estimator.best_iteration  # xgboost raises without early stopping
    except Exception:
        best = getattr(estimator, "best_iteration_", None)
    return best if isinstance(best, int) and best > 0 else None


# -- native train() --------------------------------------------------------------------------


def prepare_xgboost_train(original: Callable[..., Any]) -> Callable[..., Fit]:
    """`xgboost.train(params, dtrain, num_boost_round, *, evals, evals_result, ...)`."""
    signature = inspect.signature(original)

    def prepare(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Fit:
        bound = signature.bind(*args, **kwargs)
        recorded = bound.arguments.get("evals_result")
        if recorded is None:
            recorded = {}
            bound.arguments["evals_result"] = recorded
        return Fit(
            flavor="xgboost",
            params=_train_params(bound),
            args=bound.args,
            kwargs=bound.kwargs,
            recorded=recorded,
        )

    return prepare


def prepare_lightgbm_train(original: Callable[..., Any]) -> Callable[..., Fit]:
    """`lightgbm.train(params, train_set, num_boost_round, valid_sets, ..., callbacks)`."""
    import lightgbm

    signature = inspect.signature(original)

    def prepare(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Fit:
        bound = signature.bind(*args, **kwargs)
        recorded: dict[str, Any] = {}
        callbacks = list(bound.arguments.get("callbacks") or [])
        bound.arguments["callbacks"] = [*callbacks, lightgbm.record_evaluation(recorded)]
        train_set = bound.arguments.get("train_set")
        X, y = _dataset_rows(train_set)
        names = list(bound.arguments.get("valid_names") or [])
        eval_sets = []
        for i, valid in enumerate(bound.arguments.get("valid_sets") or []):
            if valid is not train_set:
                name = names[i] if i < len(names) else f"valid_{i}"
                eval_sets.append((str(name), *_dataset_rows(valid)))
        return Fit(
            flavor="lightgbm",
            params=_train_params(bound),
            X=X,
            y=y,
            example=first_rows(X),
            eval_sets=eval_sets,
            args=bound.args,
            kwargs=bound.kwargs,
            recorded=recorded,
        )

    return prepare


def _train_params(bound: inspect.BoundArguments) -> dict[str, object]:
    params = dict(bound.arguments.get("params") or {})
    for name in TRAIN_PARAMS:
        parameter = bound.signature.parameters.get(name)
        value = None if parameter is None else bound.arguments.get(name, parameter.default)
        if value is not None:
            params.setdefault(name, value)
    return params


def _dataset_rows(dataset: Any) -> tuple[Any, Any]:
    """A lightgbm Dataset's raw rows and labels, while it still holds them."""
    return getattr(dataset, "data", None), getattr(dataset, "label", None)


def finish_train(run: ActiveRun, fit: Fit, result: Any, settings: Settings) -> Any:
    """The recorded eval results as steps; returns the booster."""
    if fit.recorded:
        log_series(run, fit.recorded)
    best = _best_iteration(result)
    if best is not None:
        run.log_metric("best_iteration", float(best))
    return result
