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

Every field the protocol allows is accepted: `id` (echoed in the response),
`parameters` on the request, inputs and outputs (ones this server has no use for are
ignored; an output's `classification` or `shared_memory_region`, extensions it does not
implement, are refused), and `model_name` (KServe's client sends it) and `model_version`,
which must be the route's (else 400). Keys the protocol does not define are ignored: it
does not forbid them. `/v2/models/{name}/versions/{version}/...` routes answer for the
served version (its number, "1", or its reference, "churn/1"), else 404. Binary tensors:
see `_v2_binary`; errors on /v2 routes take the protocol's shape: see `_v2_errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

from loopline.errors import (
    InvalidField,
    InvalidInput,
    MalformedRequest,
    NotFound,
    UnsupportedMediaType,
)
from loopline.predictions import Block
from loopline.serving._inputs import NUMBERS, InputSchema, describe, from_columns
from loopline.serving._redact import clip
from loopline.serving.online import _v2_binary as binary
from loopline.serving.online._json import check_content_type, dumps, parse_json
from loopline.serving.online._responses import RawBody

if TYPE_CHECKING:
    import numpy as np
    from starlette.requests import Request

    from loopline.serving.online._csv import BodyReader
    from loopline.serving.online._endpoints import Answer
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
# Output parameters of extensions this server does not implement: refused, not ignored,
# since the client would misread the answer.
_UNSUPPORTED_OUTPUT_PARAMETERS = ("classification", "shared_memory_region")


@dataclass(frozen=True)
class V2Body:
    """An inference request as read from HTTP: the route's model name, the JSON request,
    the binary tensor data after it (None without the extension), the route's version."""

    route: str | None
    request: Any
    binary: memoryview | None = None
    version: str | None = None


@dataclass(frozen=True)
class V2Context:
    """What rendering needs of the request: the client's id and the outputs, in order,
    with whether each is answered in binary."""

    client_id: str | None
    outputs: list[str]
    binary: list[bool]


def decode_v2(request: Request) -> BodyReader:
    """The V2 route's body reader: JSON (a missing Content-Type is read as JSON, as Triton
    and KServe do), or a JSON header and binary tensors with Inference-Header-Content-Length."""
    headers = request.headers
    route, version = request.path_params.get("name"), request.path_params.get("version")
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType(
            f"Content-Encoding {clip(encoding)!r} is not supported",
            hint="send the request body uncompressed",
        )
    content_type = headers.get("content-type")
    length = headers.get(binary.HEADER)
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if length is None:
        if content_type is not None:
            check_content_type(content_type)
        return lambda raw, depth, model: V2Body(
            route, parse_json(raw, max_depth=depth), version=version
        )
    if media not in ("", binary.OCTET_STREAM):
        check_content_type(content_type)
    size = binary.header_length(length)

    def read(raw: bytes, depth: int, model: ServedModel) -> V2Body:
        header, data = binary.split_body(raw, size)
        return V2Body(route, parse_json(header, max_depth=depth), data, version)

    return read


def v2_request(body: V2Body, model: ServedModel) -> tuple[Block, V2Context]:
    """The rows, and what the response needs (client id, outputs, which in binary)."""
    schema = model.schema
    check_version(body.version, model, body.route)
    request = body.request
    if type(request) is not dict:
        raise InvalidInput(f"an inference request must be a JSON object, got {describe(request)}")
    request_id = request.get("id")
    if request_id is not None and type(request_id) is not str:
        raise InvalidField("the request 'id' must be a string", field="id")
    _check_names(request, body.route, model)
    parameters = _parameters(request, "the request")
    binary_output = parameters.get("binary_data_output", False)
    if type(binary_output) is not bool:
        raise InvalidField("'binary_data_output' must be true or false", field="parameters")
    outputs, as_binary = _requested_outputs(request.get("outputs"), model, binary_output)
    tensors = request.get("inputs")
    if type(tensors) is not list or not tensors:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    data = None if body.binary is None else binary.BinaryData(body.binary)
    parsed = [_tensor(tensor, index, data) for index, tensor in enumerate(tensors)]
    if data is not None:
        data.finish()
    context = V2Context(request_id, outputs, as_binary)
    if len(parsed) == 1 and _is_matrix(parsed[0], schema):
        return _matrix_block(parsed[0], schema), context
    return _column_block(parsed, schema), context


def parse_v2(body: Any, model: ServedModel) -> tuple[Block, V2Context]:
    """`Service.predict`'s parse step: the rows, and the context for rendering."""
    if not isinstance(body, V2Body):  # read by another route's reader: JSON only
        body = V2Body(None, body)
    return v2_request(body, model)


def render_v2(answer: Answer) -> dict[str, Any] | RawBody:
    """The inference response: model name and version, id, output tensors; with binary
    outputs, the JSON header then their bytes."""
    import numpy as np

    context: V2Context = answer.context
    tensors = v2_outputs(answer.prediction, context.outputs)
    chunks: list[bytes] = []
    for tensor, as_binary in zip(tensors, context.binary, strict=True):
        if as_binary:
            chunk = binary.encode(np.asarray(tensor.pop("data")), tensor["datatype"])
            tensor["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
    response = {
        "model_name": answer.deployment,
        "model_version": answer.model.version_ref,
        "id": context.client_id if context.client_id is not None else answer.request_id,
        "outputs": tensors,
    }
    if not chunks:
        return response
    header = dumps(response)
    return RawBody(
        b"".join([header, *chunks]),
        binary.OCTET_STREAM,
        {"Inference-Header-Content-Length": str(len(header))},
    )


def check_version(version: str | None, model: ServedModel, name: str | None) -> None:
    """NotFound unless `version` (of a /versions/{version} route; None: any) is the one
    served: its number ("1") or its reference ("churn/1")."""
    if version is not None and version not in _versions(model):
        raise NotFound(
            f"deployment '{clip(name)}' serves {model.version_ref}, not version "
            f"{clip(repr(version))}",
            hint=f"send to /v2/models/{clip(name)}/infer, or name version {_versions(model)[-1]}",
        )


def _versions(model: ServedModel) -> tuple[str, str]:
    return model.version_ref, model.version_ref.rsplit("/", 1)[-1]


def _check_names(request: dict[str, Any], route: str | None, model: ServedModel) -> None:
    """`model_name` and `model_version`, where a client sends them, must be the route's."""
    name, version = request.get("model_name"), request.get("model_version")
    if name is not None and (type(name) is not str or (route is not None and name != route)):
        raise MalformedRequest(
            f"the request names model {clip(repr(name))}, but was sent to "
            f"/v2/models/{clip(route)}/infer",
            field="model_name",
        )
    if version is not None and (type(version) is not str or version not in _versions(model)):
        raise MalformedRequest(
            f"the request names model version {clip(repr(version))}, but this deployment "
            f"serves {model.version_ref}",
            field="model_version",
        )


def _parameters(holder: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = holder.get("parameters")
    if parameters is None:
        return {}
    if type(parameters) is not dict:
        raise InvalidField(
            f"the 'parameters' of {what} must be an object, got {describe(parameters)}",
            field="parameters",
        )
    return parameters


def _requested_outputs(
    value: Any, model: ServedModel, binary_output: bool
) -> tuple[list[str], list[bool]]:
    available = [PREDICT, PREDICT_PROBA] if model.has_proba else [PREDICT]
    if value is None:
        return available, [binary_output] * len(available)
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
    flags = []
    for output in value:
        parameters = _parameters(output, f"output '{output['name']}'")
        for key in _UNSUPPORTED_OUTPUT_PARAMETERS:
            if key in parameters:
                raise InvalidField(
                    f"output '{output['name']}' asks for {key!r}, which this server does not "
                    "support",
                    field="outputs",
                    hint="drop the parameter; the server's extensions are listed at GET /v2",
                )
        flag = parameters.get("binary_data", binary_output)
        if type(flag) is not bool:
            raise InvalidField(
                f"output '{output['name']}': 'binary_data' must be true or false", field="outputs"
            )
        flags.append(flag)
    return names, flags


class _Tensor:
    __slots__ = ("data", "datatype", "name", "shape")

    def __init__(self, name: str, shape: list[int], datatype: str, data: list[Any]) -> None:
        self.name, self.shape, self.datatype, self.data = name, shape, datatype, data


def _tensor(tensor: Any, index: int, data: binary.BinaryData | None) -> _Tensor:
    """One input tensor, its values from `data` when it is sent in binary."""
    if type(tensor) is not dict:
        raise InvalidInput(f"input tensor {index} must be an object, got {describe(tensor)}")
    name = tensor.get("name")
    if type(name) is not str or not name:
        raise InvalidInput(f"input tensor {index} needs a 'name' (a string)")
    size = _parameters(tensor, f"input tensor '{clip(name)}'").get("binary_data_size")
    required = ("shape", "datatype") if size is not None else ("shape", "datatype", "data")
    missing = [key for key in required if key not in tensor]
    if missing:
        raise InvalidField(f"input tensor '{clip(name)}' has no {missing[0]!r}", field=name)
    shape, datatype = tensor["shape"], tensor["datatype"]
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
    if size is not None:
        return _Tensor(name, shape, datatype, _binary_values(tensor, size, data))
    values = tensor["data"]
    if type(values) is not list:
        raise InvalidField(f"input tensor '{clip(name)}' needs 'data' as an array", field=name)
    return _Tensor(name, shape, datatype, _flatten(values, shape, name))


def _binary_values(tensor: dict[str, Any], size: Any, data: binary.BinaryData | None) -> list[Any]:
    name, shape = tensor["name"], tensor["shape"]
    if data is None:
        raise MalformedRequest(
            f"input tensor '{clip(name)}' has binary_data_size, but the request has no "
            "Inference-Header-Content-Length header",
            field=name,
            hint="send the JSON header's length in bytes in that header, then the binary data",
        )
    if type(size) is not int or size < 0:
        raise MalformedRequest(
            f"input tensor '{clip(name)}' has binary_data_size {clip(repr(size))}; expected a "
            "non-negative integer",
            field=name,
        )
    if "data" in tensor:
        raise MalformedRequest(
            f"input tensor '{clip(name)}' has both 'data' and binary_data_size", field=name
        )
    chunk = data.take(name, size)
    # at most one value per byte (BYTES: four): a larger shape cannot match the data
    count = _size(shape, size)
    return binary.decode(chunk, tensor["datatype"], count, name)


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
