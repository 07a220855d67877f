"""MLflow's REST protocol: its error bodies, its JSON for numbers, its page tokens.

An error is `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}` with the
status MLflow gives that code (mlflow/exceptions.py), which is what the `mlflow` client
reads; the body also carries loopline's own `{"error": {"type", "message", "hint"}}`.
Doubles follow protobuf's JSON mapping ("NaN", "Infinity", "-Infinity" as strings) and
int64 fields are plain numbers, as MLflow's `message_to_json` writes them. A page token
is base64 of `{"offset": N}`, as in MLflow's SearchUtils.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BeforeValidator, Field
from starlette.requests import Request
from starlette.responses import Response

from loopline.errors import Conflict, InvalidInput, LooplineError, NotFound
from loopline.server._permissions import Forbidden, Unauthorized

# What MLflow calls each kind of error, and the HTTP status it sends with it.
_CODES: list[tuple[type[LooplineError], str, int]] = [
    (NotFound, "RESOURCE_DOES_NOT_EXIST", 404),
    (InvalidInput, "INVALID_PARAMETER_VALUE", 400),
    (Conflict, "INVALID_PARAMETER_VALUE", 400),  # MLflow: changing a logged param's value
    (Unauthorized, "UNAUTHENTICATED", 401),
    (Forbidden, "PERMISSION_DENIED", 403),
]


class AlreadyExists(Conflict):
    """MLflow's RESOURCE_ALREADY_EXISTS (status 400): an experiment name taken."""


def error_response(exc: LooplineError) -> Response:
    """The MLflow error body for a loopline error."""
    code, status = "INTERNAL_ERROR", 500
    if isinstance(exc, AlreadyExists):
        code, status = "RESOURCE_ALREADY_EXISTS", 400
    else:
        for kind, name, http_status in _CODES:
            if isinstance(exc, kind):
                code, status = name, http_status
                break
        else:
            if exc.http_status == 503:
                code, status = "TEMPORARILY_UNAVAILABLE", 503
    body = {"error_code": code, "message": str(exc), "error": exc.to_dict()}
    return Response(json.dumps(body), status_code=status, media_type="application/json")


class MlflowRoute(APIRoute):
    """A route whose errors (a refused body, a missing role, a core error) answer in
    MLflow's error shape instead of the app's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except LooplineError as exc:
                return error_response(exc)
            except RequestValidationError as exc:
                return error_response(InvalidInput(_first_problem(exc.errors())))

        return answer


def _first_problem(errors: Any) -> str:
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        if error.get("type") == "json_invalid":
            return "the request body is not valid JSON"
        return f"invalid value for parameter '{where}': {error.get('msg', 'invalid')}"
    return "the request is not valid"


def ok(body: dict[str, Any] | None = None) -> Response:
    """A 200 answer with `body` as MLflow writes it (empty fields left out)."""
    return Response(
        json.dumps(_pruned(body or {}), separators=(",", ":")), media_type="application/json"
    )


def _pruned(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _pruned(item) for key, item in value.items() if item is not None and item != []
        }
    if isinstance(value, list):
        return [_pruned(item) for item in value]
    return value


def double(value: float) -> float | str:
    """A double in protobuf's JSON mapping: NaN and the infinities are strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


# -- request field types: protobuf's JSON parsing -----------------------------------------
# pydantic's lax numbers read as protobuf's JSON mapping does ("5" for an int64, "NaN",
# "Infinity" and "-Infinity" for a double) except that they take booleans: refuse those.


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


Int64 = Annotated[int, BeforeValidator(_not_bool), Field(ge=-(2**63), le=2**63 - 1)]
Double = Annotated[float, BeforeValidator(_not_bool)]


# -- page tokens ----------------------------------------------------------------------


def page_token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def page_offset(token: str | None) -> int:
    """The offset a page token holds (0 for none); INVALID_PARAMETER_VALUE otherwise."""
    if not token:
        return 0
    try:
        parsed = json.loads(base64.b64decode(token, validate=True))
    except (binascii.Error, ValueError):
        raise InvalidInput(f"invalid page token {token[:40]!r}") from None
    offset = parsed.get("offset") if isinstance(parsed, dict) else None
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInput(f"invalid page token {token[:40]!r}: no offset")
    return offset


def page(items: list[Any], token: str | None, max_results: int) -> tuple[list[Any], str | None]:
    """One page of `items` and the token of the next (None on the last page)."""
    start = page_offset(token)
    end = start + max_results
    return items[start:end], page_token(end) if end < len(items) else None
