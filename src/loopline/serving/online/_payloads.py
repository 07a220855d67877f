"""Request bodies of loopline's own endpoint and of MLflow's `/invocations`, as Blocks.

loopline (`POST /v1/deployments/{name}/predict`):

    {"inputs": [{"age": 41, "income": 5200.0}, ...]}            rows
    {"columns": ["age", "income"], "data": [[41, 5200.0], ...]}  columnar

MLflow (`POST /invocations`, as `mlflow models serve` accepts them):

    {"dataframe_split": {"columns": [...], "data": [[...]], "index": [...]}}
    {"dataframe_records": [{...}, ...]}
    {"instances": [{...}, ...]}   or  [[...], ...] in signature order, or {column: [...]}
    {"inputs": ...}               the same forms as "instances"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput
from loopline.predictions import Block
from loopline.serving._inputs import (
    InputSchema,
    columns_block,
    describe,
    positional_block,
    rows_block,
    table_block,
)
from loopline.serving._redact import clip

if TYPE_CHECKING:
    from loopline.serving.online._endpoints import Answer
    from loopline.serving.runtime import ServedModel

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_V1_HINT = 'send {"inputs": [{field: value, ...}, ...]} or {"columns": [...], "data": [[...]]}'
_MLFLOW_HINT = "send one of " + ", ".join(MLFLOW_FORMATS) + ", as `mlflow models serve` takes"


def v1_block(body: Any, schema: InputSchema) -> Block:
    """The rows of a loopline predict request."""
    if type(body) is not dict:
        raise InvalidInput(f"the body must be a JSON object, got {describe(body)}", hint=_V1_HINT)
    if "inputs" in body:
        _only(body, {"inputs"}, _V1_HINT)
        return rows_block(body["inputs"], schema, "inputs")
    if "columns" in body or "data" in body:
        _only(body, {"columns", "data"}, _V1_HINT, required=True)
        return table_block(body["columns"], body["data"], schema, "")
    raise InvalidInput("the body has neither 'inputs' nor 'columns' and 'data'", hint=_V1_HINT)


def mlflow_block(body: Any, schema: InputSchema) -> Block:
    """The rows of an MLflow scoring request (one of the four JSON formats)."""
    if type(body) is not dict:
        raise InvalidInput(
            f"the body must be a JSON object, got {describe(body)}", hint=_MLFLOW_HINT
        )
    formats = [key for key in MLFLOW_FORMATS if key in body]
    if len(formats) != 1:
        found = ", ".join(formats) if formats else "none of them"
        raise InvalidInput(
            f"the body must hold exactly one input format, got {found}", hint=_MLFLOW_HINT
        )
    key = formats[0]
    _only(body, {key, "params"}, _MLFLOW_HINT)
    if body.get("params") not in (None, {}):
        raise InvalidInput("this model takes no inference params; drop 'params'")
    value = body[key]
    if key == "dataframe_split":
        if type(value) is not dict:
            raise InvalidInput("'dataframe_split' must be an object with 'columns' and 'data'")
        _only(value, {"columns", "data", "index"}, _MLFLOW_HINT, required=True, optional={"index"})
        if "index" in value and type(value["index"]) is not list:
            raise InvalidInput("'dataframe_split.index' must be a list")
        return table_block(value["columns"], value["data"], schema, key)
    if key == "dataframe_records":
        return rows_block(value, schema, key)
    return _instances(value, schema, key)


def _instances(value: Any, schema: InputSchema, key: str) -> Block:
    """MLflow's `instances` / `inputs`: rows as objects or arrays, or columns."""
    if type(value) is dict:
        if value and all(type(column) is list for column in value.values()):
            return columns_block(value, schema, key)
        return rows_block([value], schema, key)  # one row given as {field: value}
    if type(value) is list and value and type(value[0]) is list:
        return positional_block(value, schema, key)
    return rows_block(value, schema, key)


def _only(
    body: dict[str, Any],
    allowed: set[str],
    hint: str,
    *,
    required: bool = False,
    optional: set[str] | None = None,
) -> None:
    """InvalidInput for a key outside `allowed` (or, with `required`, a missing one)."""
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidInput(f"unexpected key {clip(extra[0])!r} in the request body", hint=hint)
    if required:
        missing = sorted(allowed - set(body) - (optional or set()))
        if missing:
            raise InvalidInput(f"the request body lacks {missing[0]!r}", hint=hint)


def parse_v1(body: Any, model: ServedModel) -> tuple[Block, None]:
    """`Service.predict`'s parse step for loopline's endpoint."""
    return v1_block(body, model.schema), None


def render_v1(answer: Answer) -> dict[str, Any]:
    """{"predictions", "probabilities" (classifiers), "model_version", "request_id"}."""
    prediction = answer.prediction
    body: dict[str, Any] = {"predictions": prediction.predictions}
    if prediction.probabilities is not None:
        body["probabilities"] = prediction.probabilities
    body["model_version"] = answer.model.version_ref
    body["request_id"] = answer.request_id
    return body


def parse_mlflow(body: Any, model: ServedModel) -> tuple[Block, None]:
    """`Service.predict`'s parse step for `/invocations`."""
    return mlflow_block(body, model.schema), None


def render_mlflow(answer: Answer) -> dict[str, Any]:
    """{"predictions": [...]}, as `mlflow models serve` answers."""
    return {"predictions": answer.prediction.predictions}
