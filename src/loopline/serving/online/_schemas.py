"""Pydantic models of the service's bodies, for the OpenAPI document only.

Requests are parsed by `_json` and checked by `_inputs` (strict, fast, with errors that
name the field); these models describe the same shapes so that `/docs` and
`/openapi.json` are accurate.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    type: str = Field(description="The error class, e.g. InvalidField or PayloadTooLarge.")
    message: str
    hint: str | None = None
    field: str | None = Field(None, description="The offending field or tensor, if one is.")
    row: int | None = Field(None, description="The offending row (0-based), if one is.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class ProtocolError(BaseModel):
    """An error on a /v2 route: the Open Inference Protocol's shape, our details beside."""

    error: str = Field(description="The message (where Triton's and KServe's clients read it).")
    type: str
    hint: str | None = None
    field: str | None = None
    row: int | None = None


class PredictRequest(BaseModel):
    """Rows as objects (`inputs`), or columnar (`columns` + `data`)."""

    inputs: list[dict[str, Any]] | None = Field(None, examples=[[{"age": 41, "income": 5200.0}]])
    columns: list[str] | None = None
    data: list[list[Any]] | None = None


class PredictResponse(BaseModel):
    predictions: list[Any]
    probabilities: list[list[float]] | None = Field(
        None, description="Class probabilities in `classes` order (classifiers)."
    )
    model_version: str = Field(description="The registered version that answered.")
    request_id: str


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str = Field(description="BOOL, INT8..INT64, UINT8..UINT64, FP16..FP64, BYTES")
    data: list[Any] | None = Field(
        None,
        description="Row-major values, flat or nested to match shape; absent when the "
        "tensor is sent in binary (parameters.binary_data_size, with the "
        "Inference-Header-Content-Length header).",
    )
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """Open Inference Protocol request: one tensor per column, or one [n, k] tensor."""

    id: str | None = Field(None, description="Echoed in the response.")
    model_name: str | None = Field(None, description="If given, the route's model name.")
    model_version: str | None = Field(None, description="If given, the served version.")
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data_output: true answers every output in binary."
    )
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str
    outputs: list[Tensor]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any]


class InvocationsRequest(BaseModel):
    """MLflow scoring payload: exactly one of the four input formats."""

    dataframe_split: dict[str, Any] | None = None
    dataframe_records: list[dict[str, Any]] | None = None
    instances: list[Any] | dict[str, Any] | None = None
    inputs: list[Any] | dict[str, Any] | None = None
    params: dict[str, Any] | None = None


class InvocationsResponse(BaseModel):
    predictions: list[Any]


def error_responses() -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses` documenting the JSON error body of every 4xx/5xx we send."""
    return {code: {"model": ErrorBody} for code in (400, 404, 413, 415, 422, 503)}


def protocol_error_responses() -> dict[int | str, dict[str, Any]]:
    """The same, for the Open Inference Protocol's routes (its error shape)."""
    return {code: {"model": ProtocolError} for code in (400, 404, 413, 415, 422, 503)}


def request_body(model: Any) -> dict[str, Any]:
    """FastAPI `openapi_extra` declaring `model` (a pydantic model or a type such as a
    union of them) as the JSON request body."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(model).json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(schema)}},
        }
    }


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its `$defs` references replaced by the definitions."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(dict(definitions[ref.removeprefix("#/$defs/")]))
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


class Feedback(BaseModel):
    """The ground truth for one logged request (and row, for a multi-row request)."""

    request_id: str = Field(description="The request's id (its X-Request-Id header).")
    label: Any = Field(description="A number, string or boolean.", examples=[1])
    row: int = Field(0, ge=0, description="The row within the request (0-based).")


class FeedbackBatch(BaseModel):
    feedback: list[Feedback]


class FeedbackResponse(BaseModel):
    recorded: int = Field(description="How many labels were stored.")
