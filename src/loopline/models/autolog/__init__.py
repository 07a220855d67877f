"""`ll.autolog()`: log scikit-learn, XGBoost and LightGBM fits without logging calls.

    import loopline as ll
    ll.autolog()
    LogisticRegression(max_iter=500).fit(X, y)   # a run with params, metrics, model, data

As MLflow's autolog does, each library's `fit` (and the native `train` functions) is
replaced by a wrapper that logs into the active run, or into a run it opens and ends
(_session.py says what is logged and when nothing is). `ll.autolog(disable=True)` puts
the original functions back. Only libraries that are installed are patched, and each is
imported when `autolog` is called, never by `import loopline`.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import threading
from collections.abc import Iterable
from typing import Any

from loopline.errors import InvalidInput, MissingExtra
from loopline.models.autolog import _boosting, _sklearn
from loopline.models.autolog._session import Finish, Prepare, Settings, autologged, configure
from loopline.store import check_experiment_name, check_model_name

__all__ = ["FLAVORS", "autolog", "patched_flavors"]

log = logging.getLogger(__name__)

# flavor -> (module that must be importable, the extra that installs it)
FLAVORS = {
    "sklearn": ("sklearn", "demo"),
    "xgboost": ("xgboost", "xgboost"),
    "lightgbm": ("lightgbm", "lightgbm"),
}

# flavor -> [(owner, attribute, original)]: what to put back on disable
_patches: dict[str, list[tuple[Any, str, Any]]] = {}
_lock = threading.Lock()


def autolog(
    *,
    log_models: bool = True,
    log_input_examples: bool = True,
    log_datasets: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    silent: bool = False,
    max_tuning_runs: int | None = 5,
    flavors: Iterable[str] | None = None,
    experiment: str = "default",
    registered_model_name: str | None = None,
) -> None:
    """Log every scikit-learn, XGBoost and LightGBM fit from now on.

    A fit logs its params, training metrics (`training_accuracy_score`, ...), eval
    metrics per iteration (`validation_0-logloss`), the training data as a run input
    (`log_datasets`), and the fitted model registered under `registered_model_name`
    (default: the class name, e.g. "LogisticRegression") with its first rows as the
    input example (`log_models`, `log_input_examples`). Outside a run it opens one in
    `experiment` and ends it after the fit; with `exclusive=True` it never logs into a
    run you started. A search (GridSearchCV, ...) logs its best params and one child run
    for each of its `max_tuning_runs` best candidates (None: all). `silent=True` turns
    autologging's warnings into debug lines. Calling again changes the options;
    `disable=True` restores the libraries' own functions.

    `flavors` limits it to some of "sklearn", "xgboost", "lightgbm"; by default every one
    that is installed. Raises InvalidInput for a bad option or an unknown flavor, and
    MissingExtra for a flavor named explicitly whose library is not installed.

    Example:
        ll.autolog(flavors=["sklearn"], max_tuning_runs=3)
    """
    for name, value in (
        ("log_models", log_models),
        ("log_input_examples", log_input_examples),
        ("log_datasets", log_datasets),
        ("disable", disable),
        ("exclusive", exclusive),
        ("silent", silent),
    ):
        if not isinstance(value, bool):
            raise InvalidInput(f"autolog's {name} must be True or False, got {value!r}")
    chosen = _chosen_flavors(flavors)
    if disable:
        with _lock:
            for flavor in chosen:
                _unpatch(flavor)
            if not _patches:
                configure(None)
        return
    settings = Settings(
        log_models=log_models,
        log_input_examples=log_input_examples,
        log_datasets=log_datasets,
        exclusive=exclusive,
        silent=silent,
        max_tuning_runs=_tuning_runs(max_tuning_runs),
        experiment=check_experiment_name(experiment),
        registered_model_name=(
            None if registered_model_name is None else check_model_name(registered_model_name)
        ),
    )
    with _lock:
        for flavor in chosen:
            if flavor not in _patches:
                _patches[flavor] = _patch(flavor)
        configure(settings)


def patched_flavors() -> list[str]:
    """The flavors autologging is on for."""
    with _lock:
        return sorted(_patches)


def _chosen_flavors(flavors: Iterable[str] | None) -> list[str]:
    if flavors is None:
        return [f for f, (module, _) in FLAVORS.items() if importlib.util.find_spec(module)]
    if isinstance(flavors, str) or not isinstance(flavors, Iterable):
        raise InvalidInput(f"autolog's flavors must be a list such as ['sklearn'], got {flavors!r}")
    chosen = list(flavors)
    for flavor in chosen:
        if flavor not in FLAVORS:
            raise InvalidInput(
                f"autolog has no flavor {flavor!r}", hint=f"known flavors: {', '.join(FLAVORS)}"
            )
        module, extra = FLAVORS[flavor]
        if importlib.util.find_spec(module) is None:
            raise MissingExtra(f"autologging {flavor}", extra)
    return chosen


def _tuning_runs(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(
            f"autolog's max_tuning_runs must be an integer >= 0 or None, got {value!r}"
        )
    return value


# -- patching -------------------------------------------------------------------------------


def _patch(flavor: str) -> list[tuple[Any, str, Any]]:
    """Replace the flavor's fit/train functions; returns what to restore."""
    done: list[tuple[Any, str, Any]] = []
    if flavor == "sklearn":
        for cls in _sklearn.targets():
            _replace(done, cls, "fit", _sklearn.prepare, _sklearn.finish)
        return done
    wrapper_module, base = ("xgboost.sklearn", "XGBModel")
    if flavor == "lightgbm":
        wrapper_module, base = ("lightgbm.sklearn", "LGBMModel")
    for cls in _boosting.wrapper_targets(wrapper_module, base):
        _replace(done, cls, "fit", _boosting.prepare_wrapper(flavor), _boosting.finish_wrapper)
    library = importlib.import_module(flavor)
    native = importlib.import_module(
        "xgboost.training" if flavor == "xgboost" else "lightgbm.engine"
    )
    original = native.train
    prepare = (
        _boosting.prepare_xgboost_train(original)
        if flavor == "xgboost"
        else _boosting.prepare_lightgbm_train(original)
    )
    for owner in (library, native):
        _replace(done, owner, "train", prepare, _boosting.finish_train)
    return done


def _replace(
    done: list[tuple[Any, str, Any]], owner: Any, name: str, prepare: Prepare, finish: Finish
) -> None:
    original = vars(owner)[name]
    if getattr(original, "__loopline_autolog__", False):
        return  # already ours (a flavor patched twice would log twice)

    @functools.wraps(original)
    def patched(*args: Any, **kwargs: Any) -> Any:
        return autologged(original, prepare, finish, args, kwargs)

    patched.__loopline_autolog__ = True  # type: ignore[attr-defined]
    setattr(owner, name, patched)
    done.append((owner, name, original))


def _unpatch(flavor: str) -> None:
    for owner, name, original in reversed(_patches.pop(flavor, [])):
        setattr(owner, name, original)
