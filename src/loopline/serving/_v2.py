"""The Open Inference Protocol (KServe V2) over REST: request tensors in, tensors out.

Inputs are accepted in two layouts:

* one tensor per column, named as the column, shape [n] or [n, 1]:
  {"name": "age", "shape": [2], "datatype": "INT64", "data": [41, 37]}
* one 2-D tensor of every column in signature order (numeric signatures):
  {"name": "input", "shape": [2, 30], "datatype": "FP64", "data": [...60 values...]}

`data` may be flat (row-major, as the protocol describes) or nested to match `shape`.
Values are checked against the signature like any other request (the datatype must
suit the column; the JSON values must be of the column's type).

Outputs: "predict" (shape [n]) and, for classifiers, "predict_proba" (shape [n, k],
FP64, flattened row-major); a request's "outputs" may select among them.
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidField, InvalidInput
from loopline.serving._inputs import NUMBERS, Block, InputSchema, describe, from_columns
from loopline.serving._redact import clip

if TYPE_CHECKING:
    import numpy as np

    from loopline.serving._endpoints import Answer
    from loopline.serving.runtime import Prediction, ServedModel

DATATYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "datetime": "BYTES",
}
NUMERIC_DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    | {"FP16", "FP32", "FP64"}
)
MATRIX_INPUT = "input"
PREDICT, PREDICT_PROBA = "predict", "predict_proba"
_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_TENSOR_KEYS = frozenset({"name", "shape", "datatype", "data", "parameters"})


def v2_request(body: Any, model: ServedModel) -> tuple[Block, str | None, list[str]]:
    """The rows, the client's request id (if any) and the output names to return."""
    schema = model.schema
    if type(body) is not dict:
        raise InvalidInput(f"an inference request must be a JSON object, got {describe(body)}")
    extra = sorted(set(body) - _REQUEST_KEYS)
    if extra:
        raise InvalidInput(f"unexpected key {clip(extra[0])!r} in the inference request")
    request_id = body.get("id")
    if request_id is not None and type(request_id) is not str:
        raise InvalidField("the request 'id' must be a string", field="id")
    outputs = _requested_outputs(body.get("outputs"), model)
    tensors = body.get("inputs")
    if type(tensors) is not list or not tensors:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    parsed = [_tensor(tensor, index) for index, tensor in enumerate(tensors)]
    if len(parsed) == 1 and _is_matrix(parsed[0], schema):
        return _matrix_block(parsed[0], schema), request_id, outputs
    return _column_block(parsed, schema), request_id, outputs


def parse_v2(body: Any, model: ServedModel) -> tuple[Block, tuple[str | None, list[str]]]:
    """`Service.predict`'s parse step: the rows, and (client id, outputs) for rendering."""
    block, client_id, outputs = v2_request(body, model)
    return block, (client_id, outputs)


def render_v2(answer: Answer) -> dict[str, Any]:
    """The inference response: model name and version, id, output tensors."""
    client_id, outputs = answer.context
    return {
        "model_name": answer.deployment,
        "model_version": answer.model.version_ref,
        "id": client_id if client_id is not None else answer.request_id,
        "outputs": v2_outputs(answer.prediction, outputs),
    }


def _requested_outputs(value: Any, model: ServedModel) -> list[str]:
    available = [PREDICT, PREDICT_PROBA] if model.has_proba else [PREDICT]
    if value is None:
        return available
    if type(value) is not list or not all(
        type(o) is dict and type(o.get("name")) is str for o in value
    ):
        raise InvalidField("'outputs' must be a list of {\"name\": ...} objects", field="outputs")
    names = [o["name"] for o in value]
    unknown = [name for name in names if name not in available]
    if unknown:
        raise InvalidField(
            f"unknown output {clip(unknown[0])!r}; this model has {', '.join(available)}",
            field="outputs",
        )
    return names


class _Tensor:
    __slots__ = ("data", "datatype", "name", "shape")

    def __init__(self, name: str, shape: list[int], datatype: str, data: list[Any]) -> None:
        self.name, self.shape, self.datatype, self.data = name, shape, datatype, data


def _tensor(tensor: Any, index: int) -> _Tensor:
    if type(tensor) is not dict:
        raise InvalidInput(f"input tensor {index} must be an object, got {describe(tensor)}")
    name = tensor.get("name")
    if type(name) is not str or not name:
        raise InvalidInput(f"input tensor {index} needs a 'name' (a string)")
    extra = sorted(set(tensor) - _TENSOR_KEYS)
    missing = sorted(_TENSOR_KEYS - {"parameters"} - set(tensor))
    if extra or missing:
        what = f"unexpected key {clip(extra[0])!r}" if extra else f"no {missing[0]!r}"
        raise InvalidField(f"input tensor '{clip(name)}' has {what}", field=name)
    shape, datatype, data = tensor["shape"], tensor["datatype"], tensor["data"]
    if type(shape) is not list or not shape or not all(type(n) is int and n >= 0 for n in shape):
        raise InvalidField(
            f"input tensor '{clip(name)}' needs a 'shape' of non-negative integers", field=name
        )
    if type(datatype) is not str or datatype not in NUMERIC_DATATYPES | {"BYTES"}:
        raise InvalidField(
            f"input tensor '{clip(name)}' has unknown datatype {clip(repr(datatype))}",
            field=name,
            hint="use BOOL, INT8..INT64, UINT8..UINT64, FP16, FP32, FP64 or BYTES",
        )
    if type(data) is not list:
        raise InvalidField(f"input tensor '{clip(name)}' needs 'data' as an array", field=name)
    return _Tensor(name, shape, datatype, _flatten(data, shape, name))


def _flatten(data: list[Any], shape: list[int], name: str) -> list[Any]:
    """Row-major values of flat or nested `data`, checked against `shape`."""
    values = data
    for dim in shape[1:]:
        if not values or type(values[0]) is not list:
            break
        if any(type(item) is not list or len(item) != dim for item in values):
            raise InvalidField(
                f"the nested data of tensor '{clip(name)}' does not match its shape {clip(shape)}",
                field=name,
            )
        values = list(chain.from_iterable(values))
    size = _size(shape, len(values))
    if size != len(values):
        expected = "more values than it holds" if size is None else f"{size} values"
        raise InvalidField(
            f"tensor '{clip(name)}' has shape {clip(shape)} ({expected}) but holds "
            f"{len(values)} values",
            field=name,
        )
    return values


def _size(shape: list[int], limit: int) -> int | None:
    """The number of values `shape` holds, or None once past `limit`: a shape of huge
    dimensions must not cost a product of thousands of digits (nor fail to print it)."""
    if 0 in shape:
        return 0
    size = 1
    for dim in shape:
        size *= dim
        if size > limit:
            return None
    return size


def _is_matrix(tensor: _Tensor, schema: InputSchema) -> bool:
    width = len(schema.names)
    if len(tensor.shape) != 2 or tensor.shape[1] != width:
        return False
    return tensor.name not in schema.name_set or width > 1


def _matrix_block(tensor: _Tensor, schema: InputSchema) -> Block:
    if not schema.numeric:
        raise InvalidField(
            f"tensor '{clip(tensor.name)}' gives every column in one tensor, but this model has "
            "string inputs: send one tensor per column",
            field=tensor.name,
        )
    _check_datatype(tensor, "double")
    rows, width = tensor.shape
    if rows == 0:
        raise InvalidInput(f"tensor '{clip(tensor.name)}' holds no rows; send at least one")
    data = tensor.data
    columns = [data[j::width] for j in range(width)]
    return from_columns(columns, schema)


def _column_block(tensors: list[_Tensor], schema: InputSchema) -> Block:
    by_name: dict[str, _Tensor] = {}
    for tensor in tensors:
        if tensor.name in by_name:
            raise InvalidField(f"tensor '{clip(tensor.name)}' is given twice", field=tensor.name)
        if tensor.name not in schema.name_set:
            raise InvalidField(
                f"input tensor '{clip(tensor.name)}' is not an input of this model",
                field=tensor.name,
                hint=f"send one tensor per column ({', '.join(schema.names[:8])}, ...) or "
                f"one [n, {len(schema.names)}] tensor named '{MATRIX_INPUT}'",
            )
        by_name[tensor.name] = tensor
    for spec in schema.specs:
        if spec.name not in by_name:
            raise InvalidField(
                f"input tensor '{spec.name}' ({spec.type}) is missing", field=spec.name
            )
    lengths = set()
    for spec in schema.specs:
        tensor = by_name[spec.name]
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise InvalidField(
                f"tensor '{spec.name}' must have shape [n] or [n, 1], got {clip(tensor.shape)}",
                field=spec.name,
            )
        _check_datatype(tensor, spec.type)
        lengths.add(tensor.shape[0])
    if len(lengths) != 1:
        raise InvalidInput(f"the input tensors hold different numbers of rows: {sorted(lengths)}")
    if 0 in lengths:
        raise InvalidInput("the input tensors hold no rows; send at least one")
    return from_columns([by_name[name].data for name in schema.names], schema)


def _check_datatype(tensor: _Tensor, column_type: str) -> None:
    wanted = NUMERIC_DATATYPES if column_type in NUMBERS or column_type == "boolean" else {"BYTES"}
    if tensor.datatype not in wanted:
        raise InvalidField(
            f"tensor '{clip(tensor.name)}' has datatype {tensor.datatype}, which does not suit a "
            f"{column_type} column (use {DATATYPES[column_type]})",
            field=tensor.name,
        )


def v2_outputs(prediction: Prediction, names: list[str]) -> list[dict[str, Any]]:
    """The response's output tensors, in the order the client asked for them."""
    import numpy as np

    labels = prediction.predictions
    tensors: dict[str, dict[str, Any]] = {
        PREDICT: {
            "name": PREDICT,
            "shape": [len(labels)],
            "datatype": array_datatype(labels),
            "data": _plain(labels),
        }
    }
    proba = prediction.probabilities
    if proba is not None:
        tensors[PREDICT_PROBA] = {
            "name": PREDICT_PROBA,
            "shape": list(proba.shape),
            "datatype": "FP64",
            "data": np.asarray(proba, dtype=np.float64).ravel(),
        }
    return [tensors[name] for name in names]


def array_datatype(values: np.ndarray[Any, Any]) -> str:
    """The V2 datatype of a prediction array (labels as INT64, BOOL, FP64 or BYTES)."""
    kind = values.dtype.kind
    return {"b": "BOOL", "i": "INT64", "u": "INT64", "f": "FP64"}.get(kind, "BYTES")


def _plain(values: np.ndarray[Any, Any]) -> Any:
    import numpy as np

    kind = values.dtype.kind
    if kind == "f":
        return np.asarray(values, dtype=np.float64)
    if kind in "iu":
        return np.asarray(values, dtype=np.int64)
    return values.tolist()


def label_datatype(classes: list[Any] | None) -> str:
    """The V2 datatype of the labels a classifier returns (FP64 for a regressor)."""
    if classes is None:
        return "FP64"
    if all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "INT64"
    if all(isinstance(c, int | float) and not isinstance(c, bool) for c in classes):
        return "FP64"
    return "BYTES"


def v2_metadata(name: str, model: ServedModel) -> dict[str, Any]:
    """The model metadata response, saying which runtime serves it in `parameters`."""
    outputs = [{"name": PREDICT, "datatype": label_datatype(model.classes), "shape": [-1]}]
    if model.has_proba:
        width = len(model.classes) if model.classes else -1
        outputs.append({"name": PREDICT_PROBA, "datatype": "FP64", "shape": [-1, width]})
    parameters: dict[str, Any] = {
        "model_version": model.version_ref,
        "runtime": model.runtime,
        "runtime_version": model.runtime_version_ref,
        "path": model.path,
    }
    if model.schema.numeric:
        parameters["matrix_input"] = {
            "name": MATRIX_INPUT,
            "datatype": "FP64",
            "shape": [-1, len(model.input_names)],
        }
    return {
        "name": name,
        "versions": [model.version_ref],
        "platform": "onnxruntime_onnx" if model.runtime == "onnxruntime" else model.runtime,
        "inputs": [
            {"name": spec.name, "datatype": DATATYPES[spec.type], "shape": [-1]}
            for spec in model.inputs
        ],
        "outputs": outputs,
        "parameters": parameters,
    }
