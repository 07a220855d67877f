"""The ONNX flavor: `model.onnx`, run with onnxruntime on the CPU.

Inputs go in by the graph's input names. A graph with one input gets the signature's
columns as one 2-D array, cast to the input's element type; a graph with one input
per column gets each column as an (n, 1) array. The first output is the prediction;
the second, when present, the probabilities (a ZipMap's list of dicts becomes an
(n, n_classes) array in `classes` order).

A package is one file: a tensor whose data lives in another file (ONNX "external data")
is refused when the model is packaged and again when it is loaded, before onnxruntime
sees the bytes. onnxruntime resolves such a tensor's `location` against the working
directory of a model given as bytes, so a crafted model could read `loopline.toml` or
`.loopline/loopline.db` into its weights and hand them back in its predictions.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, MissingExtra, UnsafeModel
from loopline.packaging._flavors import MODEL_FILES, Saved, pin, require, standard_outputs
from loopline.packaging._signature import ColumnSpec, label_type

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from loopline.packaging._manifest import ModelManifest

# onnxruntime's type names -> the numpy dtype fed for them
_NUMPY_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}
# ONNX TensorProto element types -> signature types (for prediction outputs and per-column inputs)
_SIGNATURE_TYPES = {1: "float", 11: "double", 7: "long", 6: "integer", 9: "boolean", 8: "string"}
# Written by loopline.packaging.export: the classes, and the labels the graph emits for them
# (e.g. xgboost's 0..k-1), as JSON lists in the same order.
CLASSES_PROP = "loopline.classes"
GRAPH_LABELS_PROP = "loopline.graph_labels"
THREADS_ENV = "LOOPLINE_ONNX_THREADS"
_LABEL_ATTRIBUTES = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")


def as_onnx(model: Any) -> Any:
    """`model` as an onnx.ModelProto (parsing bytes), or None if it is not one."""
    try:
        import onnx
    except ImportError as exc:
        raise MissingExtra("packaging an ONNX model", "onnx") from exc
    if isinstance(model, onnx.ModelProto):
        return model
    if not isinstance(model, bytes | bytearray):
        return None
    try:
        proto = onnx.load_model_from_string(bytes(model))
    except Exception:  # protobuf raises DecodeError or RuntimeError depending on backend
        return None
    return proto if proto.HasField("graph") and proto.ir_version > 0 else None


def save_onnx(
    folder: Path, model: Any, example: pd.DataFrame | None, metadata: dict[str, Any]
) -> Saved:
    """Write `model.onnx`; classes come from `metadata["classes"]` or the graph's labels."""
    import onnx

    proto = as_onnx(model)
    external = external_tensors(proto)
    if external:
        raise InvalidInput(
            f"cannot package an ONNX model whose tensor {external[0]!r} keeps its data in "
            "another file (external data): a package is one model.onnx",
            hint="load it with onnx.load(path), which reads the external data in, and "
            "log that model",
        )
    (folder / MODEL_FILES["onnx"]).write_bytes(proto.SerializeToString())
    props = {prop.key: prop.value for prop in proto.metadata_props}
    classes = metadata.get("classes")
    if classes is not None and not isinstance(classes, list):
        raise InvalidInput("metadata['classes'] must be a list of class labels")
    if classes is None:
        classes = _json_prop(props, CLASSES_PROP) or _graph_classes(proto)
    labels = _json_prop(props, GRAPH_LABELS_PROP)
    if classes and labels and len(labels) != len(classes):
        raise InvalidInput(
            f"the ONNX metadata lists {len(labels)} graph labels for {len(classes)} classes"
        )
    options = {"graph_labels": labels} if classes and labels and labels != classes else {}
    outputs = list(proto.graph.output)
    prediction = _SIGNATURE_TYPES.get(outputs[0].type.tensor_type.elem_type) if outputs else None
    prediction = label_type(classes) if classes else prediction
    runtime = []
    with contextlib.suppress(ImportError):  # PackageNotFoundError: no onnxruntime here
        runtime = [pin("onnxruntime")]
    return Saved(
        framework={"name": "onnx", "version": onnx.__version__},
        requirements=[pin("onnx", onnx.__version__), *runtime],
        classes=classes,
        task_hint="classification" if classes else None,
        inputs=_column_inputs(proto),
        outputs=standard_outputs(prediction, classes, len(outputs) >= 2),
        model_class="onnx.ModelProto",
        flavor_options=options,
    )


def external_tensors(proto: Any) -> list[str]:
    """The names of the tensors anywhere in `proto` whose data lives in another file.

    Every message of the model is visited, not a list of known places: initializers,
    sparse initializers, attribute tensors, the subgraphs of If, Loop and Scan nodes,
    functions and training graphs, and whatever field a later ONNX version adds.
    """
    from onnx import TensorProto

    found: list[str] = []
    pending = [proto]
    while pending:
        message = pending.pop()
        if isinstance(message, TensorProto) and (
            message.data_location == TensorProto.EXTERNAL or len(message.external_data)
        ):
            found.append(message.name or "(unnamed)")
        for descriptor, value in message.ListFields():
            if descriptor.message_type is None:
                continue  # a scalar or bytes field: nothing below it
            if hasattr(value, "ListFields"):
                pending.append(value)
            else:
                pending.extend(value)  # a repeated message field
    return sorted(found)


def _parse(data: bytes) -> Any:
    """The ModelProto of `model.onnx` bytes, to inspect before onnxruntime reads them."""
    onnx = require("onnx", "loading an ONNX model", "onnx")
    try:
        return onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf raises DecodeError or RuntimeError depending on backend
        raise InvalidInput(f"model.onnx is not an ONNX model: {exc}") from exc


def _json_prop(props: dict[str, str], key: str) -> list[Any] | None:
    """A JSON list stored in the graph's metadata_props (loopline's ONNX export writes them)."""
    try:
        value = json.loads(props[key]) if key in props else None
    except ValueError as exc:
        raise InvalidInput(f"the ONNX metadata {key!r} is not JSON: {exc}") from exc
    return value if isinstance(value, list) else None


def _graph_classes(proto: Any) -> list[Any] | None:
    """The class labels a ZipMap or classifier node declares, if any."""
    import onnx

    for node in proto.graph.node:
        for attribute in node.attribute:
            if attribute.name in _LABEL_ATTRIBUTES:
                labels = onnx.helper.get_attribute_value(attribute)
                return [x.decode() if isinstance(x, bytes) else int(x) for x in labels]
    return None


def _column_inputs(proto: Any) -> tuple[ColumnSpec, ...]:
    """One spec per graph input when the graph takes one input per column, else none."""
    inputs = list(proto.graph.input)
    if len(inputs) < 2:
        return ()
    types = [_SIGNATURE_TYPES.get(i.type.tensor_type.elem_type) for i in inputs]
    if any(kind is None for kind in types):
        return ()
    return tuple(ColumnSpec(i.name, str(kind)) for i, kind in zip(inputs, types, strict=True))


def load_onnx(data: bytes, manifest: ModelManifest, trusted: list[str]) -> OnnxPredictor:
    """An onnxruntime session on the CPU for the verified `model.onnx` bytes.

    Raises UnsafeModel if any tensor of the graph points to external data (see above).
    """
    ort = require("onnxruntime", "loading an ONNX model", "onnx")
    external = external_tensors(_parse(data))
    if external:
        raise UnsafeModel(
            f"model.onnx refers to external data for tensor {external[0]!r}: loading it "
            "would read a file outside the package",
            hint="a loopline ONNX package is one self-contained model.onnx; log the model again",
        )
    try:
        session = ort.InferenceSession(
            data, _session_options(ort), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own pybind11 exception types
        raise InvalidInput(f"onnxruntime cannot load model.onnx: {exc}") from exc
    labels = manifest.flavor_options.get("graph_labels")
    if labels is not None and not (
        isinstance(labels, list) and manifest.classes and len(labels) == len(manifest.classes)
    ):
        raise InvalidInput("the manifest's flavor_options.graph_labels do not match its classes")
    return OnnxPredictor(session, manifest.signature.input_names, manifest.classes, labels)


def _session_options(ort: Any) -> Any:
    """onnxruntime's defaults, or with LOOPLINE_ONNX_THREADS set (the prediction service
    sets it to cores / workers) that many intra-op threads that do not spin: by default
    every worker's session runs a thread per core that spins between calls, so 2 workers
    on 2 cores fight over them (a 100-row forest predict: ~290 µs of CPU, ~100 µs with one
    thread)."""
    options = ort.SessionOptions()
    threads = os.environ.get(THREADS_ENV, "").strip()
    if threads.isdigit() and int(threads) > 0:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxPredictor:
    """Feeds signature-checked frames to an onnxruntime InferenceSession."""

    refuses_nan = False

    def __init__(
        self,
        session: Any,
        names: list[str],
        classes: list[Any] | None,
        graph_labels: list[Any] | None = None,
    ) -> None:
        self.raw = session
        graph_inputs = session.get_inputs()
        self._inputs = [(i.name, _NUMPY_TYPES.get(i.type, "float32")) for i in graph_inputs]
        self._outputs = [o.name for o in session.get_outputs()]
        # The keys of the graph's labels and probabilities, and the class each stands for.
        self._keys = graph_labels if graph_labels is not None else classes
        self._relabel = (
            None if graph_labels is None else dict(zip(graph_labels, classes or [], strict=True))
        )
        self.has_proba = len(self._outputs) >= 2
        self._single = len(self._inputs) == 1
        missing = [name for name, _ in self._inputs if names and name not in names]
        if not self._single and missing:
            raise InvalidInput(
                f"the ONNX graph takes inputs {[n for n, _ in self._inputs]}, which match "
                f"neither one matrix nor the signature's columns {names}"
            )

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        import numpy as np

        (result,) = self._run(self._outputs[:1], frame)
        array = np.asarray(result)
        array = array[:, 0] if array.ndim == 2 and array.shape[1] == 1 else array
        if self._relabel is None:
            return array
        try:
            return np.asarray([self._relabel[label] for label in array.tolist()])
        except KeyError as exc:
            raise InvalidInput(
                f"the ONNX model emitted label {exc}, not one of its classes"
            ) from exc

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        import numpy as np

        (result,) = self._run(self._outputs[1:2], frame)
        if isinstance(result, list) and result and isinstance(result[0], dict):
            keys = self._keys if self._keys is not None else list(result[0])
            return np.array([[row[key] for key in keys] for row in result], dtype=float)
        return np.asarray(result)

    def _run(self, outputs: list[str], frame: pd.DataFrame) -> list[Any]:
        if self._single:
            name, dtype = self._inputs[0]
            feed = {name: frame.to_numpy(dtype=dtype)}
        else:
            try:
                feed = {
                    name: frame[name].to_numpy(dtype=dtype).reshape(-1, 1)
                    for name, dtype in self._inputs
                }
            except KeyError as exc:
                raise InvalidInput(f"the ONNX model needs input column {exc}") from exc
        try:
            result: list[Any] = self.raw.run(outputs, feed)
        except Exception as exc:  # onnxruntime's InvalidArgument, Fail, ... derive from Exception
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InvalidInput(f"the ONNX model rejected the input: {message}") from exc
        return result
