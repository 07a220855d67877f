"""Loading each flavor's verified bytes, and predicting with the result.

Every loader takes the model file's bytes (already checked against the manifest), so
what runs is exactly what was verified. Each returns a predictor: `raw` (the library
object), `has_proba`, `predict(frame)` and `predict_proba(frame)` on frames that have
already passed the signature check.
"""

from __future__ import annotations

import pickle
import zipfile
from typing import TYPE_CHECKING, Any, Protocol

from loopline.errors import InvalidInput, UnsafeModel
from loopline.packaging._flavors import LIGHTGBM_WRAPPERS, XGBOOST_WRAPPERS, require
from loopline.packaging._trust import trust_hint

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from loopline.packaging._manifest import ModelManifest


class Predictor(Protocol):
    """What LoadedModel needs from a flavor."""

    raw: Any
    has_proba: bool
    refuses_nan: bool  # predict raises ValueError on NaN by itself: no need to scan first

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]: ...

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]: ...


class EstimatorPredictor:
    """A model with scikit-learn's verbs: sklearn estimators, pyfunc objects, XGB wrappers.

    `frame_input=False` passes a numpy array instead, for models fitted without column
    names (scikit-learn warns when it gets names it was not fitted with).
    """

    def __init__(self, model: Any, *, frame_input: bool, refuses_nan: bool = False) -> None:
        self.raw = model
        self.has_proba = callable(getattr(model, "predict_proba", None))
        self.refuses_nan = refuses_nan
        self._frame_input = frame_input

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        import numpy as np

        return np.asarray(self.raw.predict(frame if self._frame_input else frame.to_numpy()))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        import numpy as np

        data = frame if self._frame_input else frame.to_numpy()
        return np.asarray(self.raw.predict_proba(data))


# scikit-learn's own internal data structures that skops 0.16 no longer trusts by
# default, although fitted estimators cannot exist without them: a tree's node arrays,
# the predictors of histogram boosting, KD/ball trees and their metric, calibrators, an
# optimizer's state, sklearn's dict subclass, and numpy dtypes (SimpleImputer keeps one).
# skops rebuilds them from stored arrays and attributes; none runs code from the file.
# Found by dumping every common estimator and asking skops what it would refuse.
SKLEARN_INTERNAL_TYPES = (
    "numpy.dtype",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",
)

# What LightGBM's and XGBoost's scikit-learn wrappers are made of, when they sit inside a
# scikit-learn pipeline (alone they use their own flavors). Found by dumping pipelines of
# every wrapper (regression, binary, multiclass, ranking, dart, categorical features,
# eval sets) and asking skops.io.get_untrusted_types; tests/integration/test_model_trust.py
# checks the list against real pipelines. The boosters rebuild from their own model format
# (LightGBM's text, XGBoost's serialized buffer), as their flavors load them; the wrappers
# are estimators whose attributes skops audits one by one (a custom objective function
# stays untrusted); OrderedDict is a plain mapping. Exact names only: skops compares names.
BOOSTING_WRAPPER_TYPES = (
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMModel",
    "lightgbm.sklearn.LGBMRanker",
    "lightgbm.sklearn.LGBMRegressor",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBModel",
    "xgboost.sklearn.XGBRFClassifier",
    "xgboost.sklearn.XGBRFRegressor",
    "xgboost.sklearn.XGBRanker",
    "xgboost.sklearn.XGBRegressor",
)
DEFAULT_TRUSTED_TYPES = (*SKLEARN_INTERNAL_TYPES, *BOOSTING_WRAPPER_TYPES)


def load_sklearn(data: bytes, manifest: ModelManifest, trusted: list[str]) -> Predictor:
    """The estimator of a `model.skops` file (see `load_estimator`), ready to predict."""
    model = load_estimator(data, trusted)
    frame_input = hasattr(model, "feature_names_in_")
    return EstimatorPredictor(model, frame_input=frame_input, refuses_nan=_refuses_nan(model))


def load_estimator(data: bytes, trusted: list[str]) -> Any:
    """skops.io.loads trusting skops' defaults, scikit-learn's internal types, the
    boosting wrappers' types (DEFAULT_TRUSTED_TYPES) and the caller's `trusted`.

    Raises UnsafeModel, listing the types to review, if the file holds any other type.
    """
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        model = skops.io.loads(data, trusted=[*DEFAULT_TRUSTED_TYPES, *trusted])
    except UntrustedTypesFoundException as exc:
        types = untrusted_types(data, trusted)
        raise UnsafeModel(
            f"model.skops contains types that are not trusted by default: {types}",
            hint=trust_hint(types),
        ) from exc
    except ImportError as exc:
        raise InvalidInput(
            f"cannot load model.skops: {exc}", hint="install the package that defines the model"
        ) from exc
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:  # not a skops archive, bad schema
        raise InvalidInput(f"model.skops is not a readable skops file: {exc}") from exc
    return model


def untrusted_types(data: bytes, trusted: list[str]) -> list[str]:
    """The types in a skops file outside the defaults and `trusted`, sorted (a second
    parse of the file: only on the path that refuses it)."""
    import skops.io

    allowed = {*DEFAULT_TRUSTED_TYPES, *trusted}
    return sorted(t for t in skops.io.get_untrusted_types(data=data) if t not in allowed)


# scikit-learn transformers documented to keep NaN in place in transform.
_KEEP_NAN = frozenset(
    {"StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "PowerTransformer"}
)


def _refuses_nan(model: Any) -> bool:
    """Whether a scikit-learn model's predict raises ValueError on NaN by itself.

    Then LoadedModel skips its own scan, a second pass over the data (5 % of a
    10,000-row LogisticRegression predict). True only for scikit-learn's own estimators
    tagged allow_nan=False that hold no sub-estimator: scikit-learn's common tests make
    those raise, while a Pipeline's or ColumnTransformer's tag describes only its first
    step. The dummy estimators ignore X, so they are left out.
    """
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline
    from sklearn.utils import get_tags

    if type(model) is Pipeline:
        # NaN reaches the last step unchanged through scalers, which keep missing values
        # as they are in transform; the pipeline then refuses it as its last step does.
        *before, (_, last) = model.steps
        return all(_keeps_nan(step) for _, step in before) and _refuses_nan(last)
    module = type(model).__module__
    if not module.startswith("sklearn.") or module.startswith("sklearn.dummy"):
        return False
    try:
        params = list(_flatten(model.get_params(deep=False).values()))
        return not get_tags(model).input_tags.allow_nan and not any(
            isinstance(value, BaseEstimator) for value in params
        )
    except (AttributeError, TypeError, ValueError):  # unusual tags or params: scan ourselves
        return False


def _keeps_nan(step: Any) -> bool:
    kind = type(step)
    return kind.__module__.startswith("sklearn.preprocessing") and kind.__name__ in _KEEP_NAN


def _flatten(values: Any) -> Any:
    """Every value inside nested lists, tuples and dicts (Pipeline steps, transformers, ...)."""
    for value in values:
        if isinstance(value, list | tuple):
            yield from _flatten(value)
        elif isinstance(value, dict):
            yield from _flatten(value.values())
        else:
            yield value


def load_pyfunc(data: bytes, manifest: ModelManifest, trusted: list[str]) -> Predictor:
    """Unpickle `model.pkl` (the caller has opted in with allow_pickle=True)."""
    try:
        model = pickle.loads(data)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(
            f"cannot unpickle model.pkl: {exc}",
            hint="import or install the code that defines the model's class",
        ) from exc
    if not callable(getattr(model, "predict", None)):
        raise InvalidInput(f"model.pkl holds a {type(model).__name__}, which has no predict")
    return EstimatorPredictor(model, frame_input=True)  # arbitrary code: always scan


def load_xgboost(data: bytes, manifest: ModelManifest, trusted: list[str]) -> Predictor:
    """Rebuild the recorded wrapper (XGBClassifier, ..., Booster) from `model.ubj`."""
    xgboost = require("xgboost", "loading an xgboost model", "xgboost")
    wrapper = _recorded_wrapper(manifest, XGBOOST_WRAPPERS)
    model = getattr(xgboost, wrapper)()
    model.load_model(bytearray(data))
    if wrapper == "Booster":
        return XGBoostBoosterPredictor(model)
    frame_input = model.get_booster().feature_names is not None
    return EstimatorPredictor(model, frame_input=frame_input)


class XGBoostBoosterPredictor:
    """A bare xgboost Booster: predict on a DMatrix; no predict_proba."""

    has_proba = False
    refuses_nan = False  # NaN means "missing" to xgboost

    def __init__(self, booster: Any) -> None:
        self.raw = booster
        self._frame_input = booster.feature_names is not None

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        import numpy as np
        import xgboost

        data = frame if self._frame_input else frame.to_numpy()
        return np.asarray(self.raw.predict(xgboost.DMatrix(data)))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        raise InvalidInput("an xgboost Booster has no predict_proba; use predict")


def load_lightgbm(data: bytes, manifest: ModelManifest, trusted: list[str]) -> Predictor:
    """A lightgbm Booster from `model.txt`; classifiers map back to their class labels."""
    lightgbm = require("lightgbm", "loading a lightgbm model", "lightgbm")
    wrapper = _recorded_wrapper(manifest, LIGHTGBM_WRAPPERS)
    booster = lightgbm.Booster(model_str=data.decode("utf-8"))
    classes = manifest.classes if wrapper == "LGBMClassifier" else None
    return LightGBMPredictor(booster, classes)


class LightGBMPredictor:
    """Booster.predict, with LGBMClassifier's label mapping when classes are known."""

    refuses_nan = False  # NaN means "missing" to lightgbm

    def __init__(self, booster: Any, classes: list[Any] | None) -> None:
        import numpy as np

        self.raw = booster
        self.has_proba = classes is not None
        self._classes = None if classes is None else np.asarray(classes)

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        import numpy as np

        if self._classes is None:
            return np.asarray(self.raw.predict(frame))
        # What LGBMClassifier.predict does: the label of the most probable class.
        labels: np.ndarray[Any, Any] = self._classes[np.argmax(self.predict_proba(frame), axis=1)]
        return labels

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        import numpy as np

        if self._classes is None:
            raise InvalidInput("this lightgbm model is not a classifier; it has no predict_proba")
        result = np.asarray(self.raw.predict(frame))
        return np.vstack((1.0 - result, result)).T if result.ndim == 1 else result


def _recorded_wrapper(manifest: ModelManifest, allowed: tuple[str, ...]) -> str:
    """The wrapper class named in the manifest, only from a fixed list (never imported by name)."""
    wrapper = manifest.flavor_options.get("wrapper")
    if wrapper not in allowed:
        raise InvalidInput(
            f"the manifest's flavor_options.wrapper {wrapper!r} is not one of {list(allowed)}"
        )
    return str(wrapper)
