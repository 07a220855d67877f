"""Flavors: recognising a model's library and writing it in that library's own format.

    sklearn   model.skops  skops.io (no pickle; types audited on load)
    xgboost   model.ubj    the booster's native UBJSON format
    lightgbm  model.txt    the booster's native text format
    onnx      model.onnx   the ONNX protobuf (see _onnx.py)
    pyfunc    model.pkl    stdlib pickle: any object with a predict method (unsafe to load)

Detection looks at the class's modules before importing anything, so packaging a
scikit-learn model never imports xgboost or lightgbm.
"""

from __future__ import annotations

import importlib.metadata
import pickle
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, MissingExtra
from loopline.packaging._signature import ColumnSpec, label_type, output_specs

if TYPE_CHECKING:
    import pandas as pd

MODEL_FILES = {
    "sklearn": "model.skops",
    "xgboost": "model.ubj",
    "lightgbm": "model.txt",
    "onnx": "model.onnx",
    "pyfunc": "model.pkl",
}
XGBOOST_WRAPPERS = (
    "XGBClassifier",
    "XGBRegressor",
    "XGBRFClassifier",
    "XGBRFRegressor",
    "XGBRanker",
    "XGBModel",
    "Booster",
)
LIGHTGBM_WRAPPERS = ("LGBMClassifier", "LGBMRegressor", "LGBMRanker", "LGBMModel", "Booster")


@dataclass
class Saved:
    """What a flavor wrote, and what it learned about the model while doing so."""

    framework: dict[str, str]
    requirements: list[str]
    classes: list[Any] | None = None
    task_hint: str | None = None
    inputs: tuple[ColumnSpec, ...] = ()  # used when there is no input example
    outputs: tuple[ColumnSpec, ...] = ()
    flavor_options: dict[str, Any] = field(default_factory=dict)
    pickle: bool = False
    model_class: str | None = None  # when not the class of the object given (ONNX bytes)


def detect_flavor(model: Any) -> str:
    """The flavor that packages `model`: sklearn, xgboost, lightgbm, onnx or pyfunc.

    Raises InvalidInput for an object that none of them can package (no `predict`).
    """
    modules = [cls.__module__ for cls in type(model).__mro__]
    if any(name.startswith("xgboost.") for name in modules):
        import xgboost

        if isinstance(model, xgboost.XGBModel | xgboost.Booster):
            return "xgboost"
    if any(name.startswith("lightgbm.") for name in modules):
        import lightgbm

        if isinstance(model, lightgbm.LGBMModel | lightgbm.Booster):
            return "lightgbm"
    if isinstance(model, bytes | bytearray) or any(name.startswith("onnx.") for name in modules):
        from loopline.packaging._onnx import as_onnx

        if as_onnx(model) is not None:
            return "onnx"
    if "sklearn" in sys.modules:  # not imported yet: the model cannot be a scikit-learn one
        from sklearn.base import BaseEstimator

        if isinstance(model, BaseEstimator):
            return "sklearn"
    if callable(getattr(model, "predict", None)):
        return "pyfunc"
    raise InvalidInput(f"cannot package {type(model).__name__}: it has no predict method")


def standard_outputs(
    prediction: str | None, classes: list[Any] | None, has_proba: bool
) -> tuple[ColumnSpec, ...]:
    """`prediction` (when its type is known) and, for classifiers, `probabilities`."""
    outputs = [] if prediction is None else [ColumnSpec("prediction", prediction)]
    if has_proba and classes:
        outputs.append(ColumnSpec("probabilities", "double", shape=(-1, len(classes))))
    return tuple(outputs)


def json_classes(classes: Any) -> list[Any] | None:
    """Class labels as plain JSON scalars (numpy scalars unwrapped), or None if not 1-D."""
    import numpy as np

    if classes is None:
        return None
    array = np.asarray(classes)
    if array.ndim != 1:
        return None  # multi-output classifiers: one label set per output
    return [label.item() if isinstance(label, np.generic) else label for label in array]


def pin(distribution: str, version: str | None = None) -> str:
    """`name==version` for an installed distribution (its version looked up if not given)."""
    return f"{distribution}=={version or importlib.metadata.version(distribution)}"


def save_sklearn(folder: Path, model: Any, example: pd.DataFrame | None) -> Saved:
    """Write `model.skops` with skops.io."""
    import sklearn
    import skops.io
    from sklearn.base import is_classifier, is_regressor

    try:
        skops.io.dump(model, folder / MODEL_FILES["sklearn"])
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(
            f"skops cannot save {type(model).__name__}: {exc}",
            hint="package it with flavor='pyfunc' (pickle) instead",
        ) from exc
    classes = json_classes(getattr(model, "classes_", None)) if is_classifier(model) else None
    task = "classification" if is_classifier(model) else None
    task = "regression" if is_regressor(model) else task
    names = getattr(model, "feature_names_in_", None)
    # Without an example we know the names the model was fitted with but not their types.
    inputs = () if names is None else tuple(ColumnSpec(str(n), "double", True) for n in names)
    has_proba = hasattr(model, "predict_proba")
    prediction = label_type(classes) if classes else "double" if task == "regression" else None
    outputs = standard_outputs(prediction, classes, has_proba)
    if prediction is None and example is not None and hasattr(model, "predict"):
        data = example if names is not None else example.to_numpy()
        outputs = _example_outputs(model, data)
    return Saved(
        framework={"name": "scikit-learn", "version": sklearn.__version__},
        requirements=[pin("scikit-learn", sklearn.__version__), pin("skops")],
        classes=classes,
        task_hint=task,
        inputs=inputs,
        outputs=outputs,
    )


def save_xgboost(folder: Path, model: Any, example: pd.DataFrame | None) -> Saved:
    """Write the native `model.ubj`; record the wrapper class to rebuild on load."""
    import xgboost

    wrapper = _wrapper(model, "xgboost", XGBOOST_WRAPPERS)
    model.save_model(str(folder / MODEL_FILES["xgboost"]))
    classifier = "Classifier" in wrapper
    classes = json_classes(getattr(model, "classes_", None)) if classifier else None
    task = "classification" if classifier else "regression" if "Regressor" in wrapper else None
    prediction = label_type(classes) if classes else "float"
    return Saved(
        framework={"name": "xgboost", "version": xgboost.__version__},
        requirements=[pin("xgboost", xgboost.__version__)],
        classes=classes,
        task_hint=task,
        outputs=standard_outputs(prediction, classes, classifier),
        flavor_options={"wrapper": wrapper},
    )


def save_lightgbm(folder: Path, model: Any, example: pd.DataFrame | None) -> Saved:
    """Write the booster's native `model.txt`; record classes so labels come back."""
    import lightgbm

    wrapper = _wrapper(model, "lightgbm", LIGHTGBM_WRAPPERS)
    booster = model if wrapper == "Booster" else model.booster_
    booster.save_model(str(folder / MODEL_FILES["lightgbm"]))
    classifier = wrapper == "LGBMClassifier"
    classes = json_classes(model.classes_) if classifier else None
    task = "classification" if classifier else "regression" if wrapper == "LGBMRegressor" else None
    return Saved(
        framework={"name": "lightgbm", "version": lightgbm.__version__},
        requirements=[pin("lightgbm", lightgbm.__version__)],
        classes=classes,
        task_hint=task,
        outputs=standard_outputs(label_type(classes) if classes else "double", classes, classifier),
        flavor_options={"wrapper": wrapper},
    )


def save_pyfunc(folder: Path, model: Any, example: pd.DataFrame | None) -> Saved:
    """Write `model.pkl` with stdlib pickle; loading it needs `allow_pickle=True`."""
    try:
        data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise InvalidInput(
            f"cannot pickle {type(model).__name__}: {exc}",
            hint="define the class at module level, not inside a function",
        ) from exc
    (folder / MODEL_FILES["pyfunc"]).write_bytes(data)
    classes = json_classes(getattr(model, "classes_", None))
    has_proba = callable(getattr(model, "predict_proba", None))
    outputs = standard_outputs(label_type(classes) if classes else None, classes, has_proba)
    if not classes and example is not None:
        outputs = _example_outputs(model, example)
    distribution = _distribution_of(type(model).__module__)
    return Saved(
        framework={"name": "python", "version": platform.python_version()},
        requirements=[] if distribution is None else [pin(distribution)],
        classes=classes,
        task_hint="classification" if classes else None,
        outputs=outputs,
        pickle=True,
    )


def _wrapper(model: Any, library: str, names: tuple[str, ...]) -> str:
    """The first class of `library` in the model's MRO that loading knows how to rebuild."""
    for cls in type(model).__mro__:
        if cls.__module__.startswith(f"{library}.") and cls.__name__ in names:
            return cls.__name__
    raise InvalidInput(f"cannot package {type(model).__name__} with the {library} flavor")


def _example_outputs(model: Any, data: Any) -> tuple[ColumnSpec, ...]:
    """The output signature of the model's prediction on the input example."""
    try:
        prediction = model.predict(data)
    except Exception as exc:
        raise InvalidInput(
            f"{type(model).__name__}.predict failed on the input example: {exc}"
        ) from exc
    return output_specs(prediction)


def _distribution_of(module: str) -> str | None:
    """The installed distribution that provides a module, if any (not for scripts/tests)."""
    top = module.partition(".")[0]
    if top in sys.stdlib_module_names or top in ("__main__", "builtins"):
        return None
    found = importlib.metadata.packages_distributions().get(top)
    return found[0] if found else None


def require(module: str, feature: str, extra: str) -> Any:
    """Import an optional library, or raise MissingExtra naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(feature, extra) from exc
