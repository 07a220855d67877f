"""The ONNX conventions of loopline: converting to them (skl2onnx, onnxmltools) and
reading a classifier's outputs back.

Inputs, which the package loader relies on:

* every column numeric (double, float, long, integer, boolean): ONE graph input named
  ``"input"``, float32, shape ``[None, n_columns]``, columns in signature order;
* some string column (a sklearn pipeline that encodes it): one input per column, named
  exactly as the column, shape ``[None, 1]``, string for strings and float32 otherwise.

Classifiers: no ZipMap, so the outputs are a label tensor and an (n, n_classes)
probability tensor; ``metadata_props`` holds ``"loopline.classes"`` (the caller's labels)
and ``"loopline.graph_labels"`` (what the graph emits for each, e.g. xgboost's 0..k-1).

Third-party converters raise anything from ``RuntimeError`` to ``NameError``; they are
turned into :class:`~loopline.errors.InvalidInput` with the converter's first line.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, MissingExtra

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from loopline.packaging.export import OnnxColumn

NUMERIC_TYPES = frozenset({"double", "float", "long", "integer", "boolean"})
COLUMN_TYPES = NUMERIC_TYPES | {"string"}
SINGLE_INPUT = "input"
CLASSES_KEY = "loopline.classes"
GRAPH_LABELS_KEY = "loopline.graph_labels"
FLAVORS = ("sklearn", "xgboost", "lightgbm")

# Warnings the converters raise about their own dependencies; nothing a user can act on.
_CONVERTER_WARNINGS: tuple[type[Warning], ...] = (
    DeprecationWarning,
    PendingDeprecationWarning,
    FutureWarning,
)


def require_onnx(*modules: str) -> None:
    """Raise MissingExtra unless every named module can be imported."""
    for name in modules or ("onnx", "skl2onnx", "onnxruntime", "onnxmltools"):
        if importlib.util.find_spec(name) is None:
            raise MissingExtra("exporting to ONNX", "onnx")


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, at most 300 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def validate_columns(columns: Sequence[OnnxColumn]) -> None:
    """Reject an empty signature, duplicate names and unknown column types."""
    if not columns:
        raise InvalidInput("cannot export to ONNX without input columns")
    seen: set[str] = set()
    for column in columns:
        if column.type not in COLUMN_TYPES:
            raise InvalidInput(
                f"column '{column.name}' has type '{column.type}'; "
                f"ONNX export supports {', '.join(sorted(COLUMN_TYPES))}"
            )
        if column.name in seen:
            raise InvalidInput(f"column '{column.name}' appears twice in the signature")
        seen.add(column.name)


def is_single_input(columns: Sequence[OnnxColumn]) -> bool:
    """True when every column is numeric, i.e. the graph takes one float32 matrix."""
    return all(column.type in NUMERIC_TYPES for column in columns)


def initial_types(columns: Sequence[OnnxColumn], flavor: str) -> list[tuple[str, Any]]:
    """The converters' `initial_types` for the input convention described above."""
    if flavor == "sklearn":
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    else:  # onnxmltools checks types against its own classes
        from onnxmltools.convert.common.data_types import FloatTensorType, StringTensorType

    if is_single_input(columns):
        return [(SINGLE_INPUT, FloatTensorType([None, len(columns)]))]
    return [
        (c.name, StringTensorType([None, 1]) if c.type == "string" else FloatTensorType([None, 1]))
        for c in columns
    ]


def final_estimator(model: Any) -> Any:
    """The last step of a (possibly nested) Pipeline, or the model itself."""
    while hasattr(model, "steps"):
        model = model.steps[-1][1]
    return model


def graph_labels(model: Any) -> list[Any] | None:
    """The class labels the converted graph emits, in probability-column order."""
    estimator = final_estimator(model)
    labels = getattr(estimator, "classes_", None)
    if labels is None:
        n_classes = getattr(estimator, "n_classes_", None)
        return None if n_classes is None else list(range(int(n_classes)))
    return [to_json_value(v) for v in labels]


def to_json_value(value: Any) -> Any:
    """A numpy scalar as the matching Python scalar; anything else unchanged."""
    return value.item() if hasattr(value, "item") else value


def convert(model: Any, flavor: str, columns: Sequence[OnnxColumn], opset: Any) -> Any:
    """Convert with the flavor's converter; return an `onnx.ModelProto`."""
    if flavor != "sklearn" and not is_single_input(columns):
        strings = [c.name for c in columns if c.type == "string"]
        raise InvalidInput(
            f"cannot export a {flavor} model with string columns ({', '.join(strings)}) "
            "to ONNX: encode them inside a sklearn Pipeline instead"
        )
    try:
        with warnings.catch_warnings():
            for category in _CONVERTER_WARNINGS:
                warnings.simplefilter("ignore", category)
            if flavor == "sklearn":
                onnx_model = _convert_sklearn(model, columns, opset)
            elif flavor == "xgboost":
                onnx_model = _convert_xgboost(model, columns, opset)
            else:
                onnx_model = _convert_lightgbm(model, columns, opset)
    except (InvalidInput, MissingExtra):
        raise
    except Exception as exc:
        raise InvalidInput(
            f"cannot export {flavor} model {type(model).__name__} to ONNX: {one_line(exc)}"
        ) from exc
    dedupe_opsets(onnx_model)
    free_batch_dim(onnx_model)
    restore_input_names(onnx_model, columns)
    return onnx_model


def _convert_sklearn(model: Any, columns: Sequence[OnnxColumn], opset: Any) -> Any:
    from skl2onnx import convert_sklearn
    from sklearn.base import is_classifier

    if is_single_input(columns):
        model = _select_by_position(model, [c.name for c in columns])
    # Passing zipmap to a regressor is an error; on a Pipeline it reaches the last step.
    options = {id(model): {"zipmap": False}} if is_classifier(model) else None
    return convert_sklearn(
        model, initial_types=initial_types(columns, "sklearn"), options=options, target_opset=opset
    )


def _convert_xgboost(model: Any, columns: Sequence[OnnxColumn], opset: Any) -> Any:
    from onnxmltools.convert import convert_xgboost

    # The converter reads split features from the booster dump and only understands the
    # names f0, f1, ...; a model fitted on a DataFrame dumps the column names instead.
    model = copy.deepcopy(model)
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    booster.feature_names = None
    booster.feature_types = None
    # xgboost's converter has no ZipMap: it emits a label tensor and a probability tensor.
    return convert_xgboost(
        model, initial_types=initial_types(columns, "xgboost"), target_opset=opset
    )


def _convert_lightgbm(model: Any, columns: Sequence[OnnxColumn], opset: Any) -> Any:
    from onnxmltools.convert import convert_lightgbm

    # zipmap=False: a plain probability tensor for classifiers; regressors ignore it.
    return convert_lightgbm(
        model, initial_types=initial_types(columns, "lightgbm"), target_opset=opset, zipmap=False
    )


def _select_by_position(model: Any, names: list[str]) -> Any:
    """A copy of `model` whose entry ColumnTransformers select columns by position.

    With one matrix input, skl2onnx cannot resolve column *names* (it looks for graph
    inputs of that name), so names and boolean masks are rewritten to indices.
    """
    entries = list(_entry_column_transformers(model))
    if not entries:
        return model
    model = copy.deepcopy(model)
    for transformer in _entry_column_transformers(model):
        transformer.transformers_ = [
            (name, step, _positions(selected, names, name))
            for name, step, selected in transformer.transformers_
        ]
    return model


def _entry_column_transformers(model: Any) -> list[Any]:
    """ColumnTransformers that see the model's raw input columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if isinstance(model, ColumnTransformer):
        return [model]
    if isinstance(model, Pipeline):
        first = next((s for _, s in model.steps if s not in (None, "passthrough")), None)
        return [] if first is None else _entry_column_transformers(first)
    if isinstance(model, FeatureUnion):
        return [ct for _, step in model.transformer_list for ct in _entry_column_transformers(step)]
    return []


def _positions(selected: Any, names: list[str], step: str) -> Any:
    """Column names or a boolean mask as positions in `names`; positions unchanged."""
    if isinstance(selected, str):
        selected = [selected]
    if isinstance(selected, slice) or not hasattr(selected, "__iter__"):
        return selected
    items = list(selected)
    if items and all(isinstance(v, bool) or type(v).__name__ == "bool_" for v in items):
        return [i for i, keep in enumerate(items) if keep]
    positions = []
    for item in items:
        if isinstance(item, str):
            if item not in names:
                raise InvalidInput(
                    f"step '{step}' selects column '{item}', which is not in the signature"
                )
            positions.append(names.index(item))
        else:
            positions.append(int(item))
    return positions


def restore_input_names(onnx_model: Any, columns: Sequence[OnnxColumn]) -> None:
    """Rename per-column graph inputs back to the exact column names.

    skl2onnx turns "sepal length (cm)" into "sepal_length__cm_"; the convention promises
    the column's own name, which onnxruntime accepts.
    """
    graph = onnx_model.graph
    if is_single_input(columns) or len(graph.input) != len(columns):
        return
    renames = {
        g.name: c.name for g, c in zip(graph.input, columns, strict=True) if g.name != c.name
    }
    if not renames:
        return
    taken = {name for node in graph.node for name in node.output}
    taken |= {init.name for init in graph.initializer}
    clashes = sorted(set(renames.values()) & (taken - set(renames)))
    if clashes:
        raise InvalidInput(
            f"column '{clashes[0]}' has the name of a tensor inside the ONNX graph; "
            "rename the column"
        )
    for graph_input in graph.input:
        graph_input.name = renames.get(graph_input.name, graph_input.name)
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renames.get(name, name)
    for graph_output in graph.output:
        graph_output.name = renames.get(graph_output.name, graph_output.name)


def free_batch_dim(onnx_model: Any) -> None:
    """Make every output's first dimension dynamic, as the inputs' is.

    onnxmltools declares lightgbm's label output as shape [1]; onnxruntime then logs a
    shape warning on every call with more than one row.
    """
    for graph_output in onnx_model.graph.output:
        tensor_type = graph_output.type.tensor_type
        if tensor_type.HasField("shape") and len(tensor_type.shape.dim) > 0:
            tensor_type.shape.dim[0].Clear()


def dedupe_opsets(onnx_model: Any) -> None:
    """Keep one opset import per domain (the highest); some converters repeat "".

    onnxruntime loads either way, but its quantizer refuses a model with two.
    """
    versions: dict[str, int] = {}
    for opset in onnx_model.opset_import:
        domain = "" if opset.domain == "ai.onnx" else opset.domain
        versions[domain] = max(versions.get(domain, 0), opset.version)
    if len(versions) == len(onnx_model.opset_import):
        return
    del onnx_model.opset_import[:]
    for domain, version in versions.items():
        entry = onnx_model.opset_import.add()
        entry.domain, entry.version = domain, version


def set_metadata(onnx_model: Any, classes: list[Any] | None, labels: list[Any] | None) -> None:
    """Record the classes (and the labels the graph emits for them) in metadata_props."""
    props = {p.key: p.value for p in onnx_model.metadata_props}
    if classes is not None:
        props[CLASSES_KEY] = json.dumps(classes)
        props[GRAPH_LABELS_KEY] = json.dumps(labels if labels is not None else classes)
    del onnx_model.metadata_props[:]
    for key, value in props.items():
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, value


def decode_classifier(
    raw_labels: Any, raw_proba: Any, meta: dict[str, str], classes: Sequence[Any] | None
) -> tuple[NDArray[Any], NDArray[Any]]:
    """A classifier graph's outputs as (original labels, (n, n_classes) probabilities).

    Labels map through the graph labels recorded by :func:`set_metadata`; a graph
    without them is assumed to emit either the classes themselves or their indices.
    """
    import numpy as np

    wanted = list(classes) if classes is not None else _json_list(meta, CLASSES_KEY)
    graph = _json_list(meta, GRAPH_LABELS_KEY)
    labels = np.asarray(raw_labels).ravel()
    if graph is None and wanted is not None:
        graph = _guess_graph_labels(labels, wanted)
    proba = _proba_array(raw_proba, graph)
    if wanted is None or graph is None:
        return labels, proba
    position = {label_key(label): i for i, label in enumerate(graph)}
    try:
        index = [position[label_key(v)] for v in labels]
    except KeyError as exc:
        raise InvalidInput(f"the ONNX model emitted label {exc} outside its classes") from exc
    return np.asarray(wanted)[np.asarray(index, dtype=np.intp)], proba


def _json_list(meta: dict[str, str], key: str) -> list[Any] | None:
    return json.loads(meta[key]) if key in meta else None


def label_key(value: Any) -> str | float:
    """Labels compared across types: strings as text, numbers and booleans as floats."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _guess_graph_labels(raw_labels: NDArray[Any], wanted: list[Any]) -> list[Any]:
    """Without metadata: the graph emits the classes themselves, or their indices."""
    keys = {label_key(c) for c in wanted}
    if all(label_key(v) in keys for v in raw_labels):
        return wanted
    return list(range(len(wanted)))


def _proba_array(raw: Any, graph: list[Any] | None) -> NDArray[Any]:
    """The probability output as (n, n_classes), also from a ZipMap list of dicts."""
    import numpy as np

    if isinstance(raw, list) and raw and isinstance(raw[0], dict):
        order = graph if graph is not None else sorted(raw[0])
        return np.asarray(
            [[row[_zipmap_key(row, label)] for label in order] for row in raw],
            dtype=np.float64,
        )
    return np.asarray(raw, dtype=np.float64)


def _zipmap_key(row: dict[Any, float], label: Any) -> Any:
    wanted = label_key(label)
    return next(key for key in row if label_key(key) == wanted)
