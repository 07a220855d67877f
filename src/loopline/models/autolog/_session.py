"""What every autologged fit does, whatever the library: the run, params, data, model.

A patched `fit` (or `train`) calls `autologged`, which:
1. lets the call through untouched when autologging is off, when another autologged fit
   is in progress anywhere in the process (a Pipeline's steps, a search's candidates and
   refit, a forest's trees in joblib threads: only the outer call logs), or when
   `exclusive=True` and a run the user started is active;
2. opens a run when none is active, and ends it after: FINISHED, or FAILED (KILLED on
   Ctrl-C) with the error when the fit raises, the exception re-raised unchanged;
3. logs params and the training data before the fit, metrics and the model after.

Autologging never breaks a fit: every logging step runs under `_guard`, which turns any
error into a warning (a debug line when `silent=True`) and lets the fit go on.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopline.store import check_key
from loopline.tracking import ActiveRun, active_run, start_run

if TYPE_CHECKING:
    from loopline.registry import ModelVersion

log = logging.getLogger(__name__)

EXAMPLE_ROWS = 5
MAX_PARAM_TEXT = 8000  # the store's limit on a param value; longer reprs are cut
AUTOLOG_TAG = "loopline.autolog"


@dataclass(frozen=True)
class Settings:
    """The options of the last `ll.autolog()` call."""

    log_models: bool = True
    log_input_examples: bool = True
    log_datasets: bool = True
    exclusive: bool = False
    silent: bool = False
    max_tuning_runs: int | None = 5
    experiment: str = "default"
    registered_model_name: str | None = None


@dataclass
class Fit:
    """One call of a patched fit, as a flavor module describes it before the call runs."""

    flavor: str
    params: dict[str, object] = field(default_factory=dict)
    X: Any = None
    y: Any = None
    example: Any = None  # first rows, taken before the fit (lightgbm frees its data)
    eval_sets: list[tuple[str, Any, Any]] = field(default_factory=list)  # name, X, y
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    recorded: dict[str, Any] = field(default_factory=dict)  # filled in by the library


Prepare = Callable[[tuple[Any, ...], dict[str, Any]], Fit]
Finish = Callable[[ActiveRun, Fit, Any, Settings], Any]  # logs metrics; returns the model

_settings: Settings | None = None
_busy = threading.Lock()  # held by the one autologged fit in progress


def configure(settings: Settings | None) -> None:
    """Turn autologging on with `settings`, or off with None."""
    global _settings
    _settings = settings


def current() -> Settings | None:
    return _settings


def autologged(
    original: Callable[..., Any],
    prepare: Prepare,
    finish: Finish,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Call `original(*args, **kwargs)` and log it (module docstring)."""
    settings = _settings
    if settings is None or not _busy.acquire(blocking=False):
        return original(*args, **kwargs)
    try:
        user_run = active_run()
        if user_run is not None and settings.exclusive:
            return original(*args, **kwargs)
        fit: Fit | None = _guard(settings, "describing the fit", prepare, args, kwargs)
        if fit is None:
            return original(*args, **kwargs)
        args, kwargs = fit.args, fit.kwargs
        opened = None if user_run is not None else _open_run(settings, fit)
        run = user_run or opened
        if run is None:
            return original(*args, **kwargs)
        with _ending(opened, settings):
            _guard(settings, "logging params", log_params, run, fit.params)
            if settings.log_datasets:
                _guard(settings, "logging the datasets", log_datasets, run, fit)
            result = original(*args, **kwargs)
            model = _guard(settings, "logging metrics", finish, run, fit, result, settings)
            if settings.log_models and model is not None:
                _guard(settings, "logging the model", log_fitted_model, run, fit, model, settings)
        return result
    finally:
        _busy.release()


def _open_run(settings: Settings, fit: Fit) -> ActiveRun | None:
    tags = {AUTOLOG_TAG: fit.flavor}
    run: ActiveRun | None = _guard(
        settings, "starting a run", lambda: start_run(settings.experiment, tags=tags)
    )
    return run


@contextmanager
def _ending(opened: ActiveRun | None, settings: Settings) -> Iterator[None]:
    """End the run autologging opened: FAILED (or KILLED) if the fit raised, with the
    fit's exception re-raised unchanged; a store that fails to end it only warns."""
    if opened is None:
        yield
        return
    try:
        yield
    except BaseException as exc:
        _guard(settings, "ending the run", opened.__exit__, type(exc), exc, exc.__traceback__)
        raise
    _guard(settings, "ending the run", opened.__exit__, None, None, None)


def _guard(settings: Settings, doing: str, step: Callable[..., Any], *args: Any) -> Any:
    """`step(*args)`, or None with a warning if it raised: autolog never breaks a fit."""
    try:
        with warnings.catch_warnings():
            # metrics on training data warn (ill-defined precision, ...): not the user's fit
            warnings.simplefilter("ignore")
            return step(*args)
    except Exception as exc:
        level = logging.DEBUG if settings.silent else logging.WARNING
        log.log(
            level, "autolog: %s failed, the fit goes on: %s: %s", doing, type(exc).__name__, exc
        )
        return None


# -- params --------------------------------------------------------------------------------


def log_params(run: ActiveRun, params: Mapping[str, object]) -> None:
    """Log params as text; keys the store refuses and values too long are left out."""
    kept: dict[str, str] = {}
    for key, value in flatten(params).items():
        try:
            check_key("param", key)
        except Exception:
            log.debug("autolog: param %r has a name the store refuses; skipped", key[:250])
            continue
        kept[key] = param_text(value)
    if kept:
        run.log_params(kept)


def flatten(params: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Nested dicts as `outer.inner` keys (xgboost/lightgbm params may nest)."""
    flat: dict[str, object] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def param_text(value: object) -> str:
    """A param value as the store keeps it: text, one line, cut at the store's limit."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, float):
        text = repr(value)
    elif callable(value) and hasattr(value, "__name__"):
        text = str(value.__name__)  # a metric or scoring function: its name, not its address
    else:
        text = " ".join(str(value).split())  # an estimator's repr spans lines
    return text[:MAX_PARAM_TEXT]


# -- data ----------------------------------------------------------------------------------


def log_datasets(run: ActiveRun, fit: Fit) -> None:
    """The training data (and each eval set) as run inputs: digest, schema, profile."""
    frame = as_frame(fit.X, fit.y)
    if frame is None:
        log.debug("autolog: training data of type %s is not logged", type(fit.X).__name__)
    else:
        run.log_input(frame, context="training", name="train")
    for name, features, target in fit.eval_sets:
        frame = as_frame(features, target)
        if frame is not None:
            run.log_input(frame, context="validation", name=name)


def as_frame(X: Any, y: Any = None) -> Any:
    """`X` (a DataFrame or 2-D array, columns f0..fN-1) with `y` as a column, or None
    for what cannot be profiled as a table (sparse matrices, lists, DMatrix, ...)."""
    import numpy as np
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        frame = X.copy(deep=False)
        frame.columns = [str(name) for name in frame.columns]
    elif isinstance(X, np.ndarray) and X.ndim == 2:
        frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    else:
        return None
    target = _target_column(y, len(frame))
    if target is not None:
        name = str(getattr(y, "name", None) or "target")
        if name not in frame.columns:
            frame[name] = target
    return frame.reset_index(drop=True)


def _target_column(y: Any, rows: int) -> Any:
    import numpy as np

    if y is None:
        return None
    values = np.asarray(y)
    if values.ndim != 1 or len(values) != rows or values.dtype == object:
        return None
    return values


def first_rows(X: Any) -> Any:
    """The input example: the first rows of a DataFrame or a 2-D array, else None."""
    import numpy as np
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        if not all(isinstance(name, str) for name in X.columns):
            return X.iloc[:EXAMPLE_ROWS].to_numpy()
        return X.iloc[:EXAMPLE_ROWS].copy()
    if isinstance(X, np.ndarray) and X.ndim == 2:
        return X[:EXAMPLE_ROWS].copy()
    return None


# -- the model -----------------------------------------------------------------------------


def log_fitted_model(
    run: ActiveRun, fit: Fit, model: Any, settings: Settings
) -> ModelVersion | None:
    """Register the fitted model from `run`, with the input example if it packages."""
    from loopline.errors import LooplineError
    from loopline.models.logging import log_model

    name = settings.registered_model_name or type(model).__name__
    example = fit.example if settings.log_input_examples else None
    if example is not None:
        try:
            return log_model(model, name, input_example=example, run_id=run.id)
        except LooplineError as exc:
            log.debug("autolog: the input example does not package (%s); logging without", exc)
    return log_model(model, name, run_id=run.id)


def log_series(run: ActiveRun, results: Mapping[str, Mapping[str, Any]]) -> None:
    """Per-iteration eval results `{data: {metric: [v0, v1, ...]}}` as `data-metric` steps."""
    import math

    for data_name, metrics in results.items():
        for metric, values in metrics.items():
            key = f"{data_name}-{metric}"
            for step, value in enumerate(values):
                number = float(value)
                if math.isfinite(number):
                    run.log_metric(key, number, step=step)
