"""The three ways a served model turns a checked Block into predictions.

* `OnnxRunner`: an onnxruntime InferenceSession fed straight from the block: one float32
  matrix for a graph with one input (loopline's export convention for numeric
  signatures), else one (n, 1) array per column. One `run` gives labels and
  probabilities. About 10 µs for a row of a logistic regression or a 100-tree forest.
* `SklearnRunner`: a scikit-learn estimator fed the block's float64 matrix. A model
  fitted on a DataFrame checks the column names at every pipeline step, which costs
  ~0.7 ms a call on a one-row DataFrame (the checks dominate: ~1 ms in all, against
  ~0.27 ms for the same call on a numpy array). The JSON layer has already matched
  every field to its column, so the runner predicts with a private copy of the model
  that forgets the names it was fitted with, its columns put in fit order; classifiers
  whose `predict` is the arg-max of `predict_proba` get their labels from the same call.
  Both shortcuts are checked against the model itself at load time, on probe rows, and
  dropped if anything differs or warns.
* `FrameRunner`: anything else (strings, datetimes, xgboost, lightgbm, pyfunc) goes
  through `LoadedModel` on a DataFrame built once per micro-batch.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from loopline.predictions import Block
from loopline.serving._inputs import NUMBERS, InputSchema, rows_block

if TYPE_CHECKING:
    import numpy as np

    from loopline.packaging import LoadedModel

log = logging.getLogger(__name__)

Outputs = tuple["np.ndarray[Any, Any]", "np.ndarray[Any, Any] | None"]

# Final estimators whose predict() is classes_[argmax(predict_proba())], ties included.
_ARGMAX_CLASSIFIERS = frozenset(
    {
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.ExtraTreeClassifier",
    }
)
_ONNX_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


class Runner(Protocol):
    """What a ServedModel needs from a runtime."""

    has_proba: bool
    path: str  # how requests reach the model, for logs and metadata

    def run(self, block: Block) -> Outputs: ...


class OnnxRunner:
    """onnxruntime on the checked values, without a DataFrame."""

    def __init__(
        self,
        session: Any,
        schema: InputSchema,
        classes: Sequence[Any] | None,
        graph_labels: Sequence[Any] | None,
    ) -> None:
        import numpy as np

        self._session = session
        graph_inputs = session.get_inputs()
        self._inputs = [(i.name, _ONNX_DTYPES.get(i.type, "float32")) for i in graph_inputs]
        self._outputs = [o.name for o in session.get_outputs()][:2]
        self._single = len(self._inputs) == 1 and schema.numeric
        self._positions = {name: i for i, name in enumerate(schema.names)}
        missing = [n for n, _ in self._inputs if not self._single and n not in self._positions]
        if missing:
            raise ValueError(f"the ONNX graph takes inputs {missing} that are not in the signature")
        self.has_proba = len(self._outputs) >= 2
        self._classes = list(classes) if classes is not None else None
        self._relabel = None
        if graph_labels is not None and classes is not None and list(graph_labels) != classes:
            self._relabel = dict(zip(graph_labels, classes, strict=True))
        self._class_array = None if classes is None else np.asarray(classes)
        self.path = (
            "onnxruntime: one float32 matrix from the JSON values"
            if self._single
            else "onnxruntime: one array per column from the JSON values"
        )

    def run(self, block: Block) -> Outputs:
        import numpy as np

        if self._single:
            name, dtype = self._inputs[0]
            assert block.matrix is not None
            feeds = {name: block.matrix.astype(dtype)}
        else:
            columns = block.columns()
            feeds = {
                name: _column_array(columns[self._positions[name]], dtype)
                for name, dtype in self._inputs
            }
        outputs = self._session.run(self._outputs, feeds)
        labels = np.asarray(outputs[0])
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if self._relabel is not None:
            labels = np.asarray([self._relabel[label] for label in labels.tolist()])
        proba = None
        if self.has_proba:
            raw = outputs[1]
            if isinstance(raw, list):  # a ZipMap: one {label: probability} dict per row
                keys = self._classes if self._classes is not None else sorted(raw[0])
                proba = np.array([[row[key] for key in keys] for row in raw], dtype=np.float64)
            else:
                proba = np.asarray(raw)
        return labels, proba


def _column_array(values: Sequence[Any], dtype: str) -> np.ndarray[Any, Any]:
    import numpy as np

    if dtype == "object":
        return np.array([None if v is None else str(v) for v in values], dtype=object).reshape(
            -1, 1
        )
    return np.array(values, dtype=np.float64).astype(dtype).reshape(-1, 1)


class SklearnRunner:
    """A scikit-learn estimator on the block's float64 matrix (see the module docstring)."""

    def __init__(
        self,
        estimator: Any,
        order: np.ndarray[Any, Any] | None,
        labels_from_proba: np.ndarray[Any, Any] | None,
    ) -> None:
        self._estimator = estimator
        self._order = order
        self._labels = labels_from_proba
        self.has_proba = callable(getattr(estimator, "predict_proba", None))
        self.path = "scikit-learn: numpy matrix from the JSON values" + (
            ", labels from predict_proba" if labels_from_proba is not None else ""
        )

    def run(self, block: Block) -> Outputs:
        import numpy as np

        matrix = block.matrix
        assert matrix is not None
        data = matrix if self._order is None else matrix[:, self._order]
        if not self.has_proba:
            return np.asarray(self._estimator.predict(data)), None
        proba = np.asarray(self._estimator.predict_proba(data))
        if self._labels is not None:
            return self._labels[np.argmax(proba, axis=1)], proba
        return np.asarray(self._estimator.predict(data)), proba


class FrameRunner:
    """LoadedModel on a DataFrame built once per block: every flavor, every column type."""

    def __init__(self, loaded: LoadedModel, schema: InputSchema) -> None:
        self._loaded = loaded
        self._names = list(schema.names)
        self._from_matrix = all(spec.type in ("double", "float") for spec in schema.specs)
        self.has_proba = loaded.has_proba
        self.path = f"{loaded.flavor}: DataFrame per batch through LoadedModel"

    def run(self, block: Block) -> Outputs:
        import pandas as pd

        if self._from_matrix and block.matrix is not None:
            frame = pd.DataFrame(block.matrix, columns=self._names, copy=False)
        else:
            frame = pd.DataFrame(dict(zip(self._names, block.columns(), strict=True)))
        labels = self._loaded.predict(frame)
        return labels, self._loaded.predict_proba(frame) if self.has_proba else None


def sklearn_runner(loaded: LoadedModel, schema: InputSchema) -> SklearnRunner | None:
    """The numpy fast path for a scikit-learn model, if it predicts exactly like the
    model itself on probe rows without a warning; else None (use a FrameRunner)."""
    import numpy as np

    raw = loaded.raw
    if loaded.flavor != "sklearn" or not schema.only_numbers:
        return None
    fitted_names = getattr(raw, "feature_names_in_", None)
    order = None
    estimator = raw
    if fitted_names is not None:
        names = [str(name) for name in fitted_names]
        if sorted(names) != sorted(schema.names):
            return None
        positions = [schema.names.index(name) for name in names]
        order = None if positions == list(range(len(names))) else np.array(positions)
        estimator = copy.deepcopy(raw)
        _forget_feature_names(estimator)
    labels = _argmax_labels(raw)
    runner = SklearnRunner(estimator, order, labels)
    try:
        probe = rows_block(probe_rows(schema, 3), schema, "probe")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fast, fast_proba = runner.run(probe)
            slow, slow_proba = FrameRunner(loaded, schema).run(probe)
    except Exception as exc:  # the shortcut does not fit this model: use the DataFrame path
        log.debug("numpy path refused for %s: %s", type(raw).__name__, exc)
        return None
    # Labels must agree exactly; probabilities to rounding (memory layout changes the last bit).
    same = np.array_equal(fast, slow) and (
        (fast_proba is None and slow_proba is None)
        or (
            fast_proba is not None
            and slow_proba is not None
            and np.allclose(fast_proba, slow_proba, rtol=1e-9, atol=1e-12)
        )
    )
    if caught or not same:
        log.debug("numpy path refused for %s (warnings: %s)", type(raw).__name__, caught)
        return None
    return runner


def _argmax_labels(model: Any) -> np.ndarray[Any, Any] | None:
    import numpy as np

    final = model
    while hasattr(final, "steps"):
        final = final.steps[-1][1]
    kind = f"{type(final).__module__}.{type(final).__qualname__}"
    classes = getattr(final, "classes_", None)
    if kind not in _ARGMAX_CLASSIFIERS or classes is None or np.ndim(classes) != 1:
        return None
    return np.asarray(classes)


def _forget_feature_names(estimator: Any) -> None:
    """Drop `feature_names_in_` from an estimator and every estimator inside it."""
    from sklearn.base import BaseEstimator

    seen: set[int] = set()
    stack: list[Any] = [estimator]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, BaseEstimator):
            vars(item).pop("feature_names_in_", None)
            stack.extend(vars(item).values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())


def probe_rows(schema: InputSchema, count: int) -> list[dict[str, Any]]:
    """Synthetic rows for warm-up and checks: zeros, ones, then seeded normal values."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for index in range(count):
        row: dict[str, Any] = {}
        for spec in schema.specs:
            number = float(index if index < 2 else rng.normal())
            if spec.type in NUMBERS:
                row[spec.name] = round(number) if spec.type in ("long", "integer") else number
            elif spec.type == "boolean":
                row[spec.name] = bool(index % 2)
            elif spec.type == "datetime":
                row[spec.name] = "2000-01-01T00:00:00"
            else:
                row[spec.name] = ""
        rows.append(row)
    return rows
