"""Responses: JSON rendered by orjson, and the raw bodies of the V2 binary extension.
Errors are rendered by _errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopline.serving.online._json import dumps

if TYPE_CHECKING:
    from starlette.responses import Response


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response rendered by orjson."""
    from starlette.responses import Response

    return Response(dumps(content), status_code, headers, media_type="application/json")


@dataclass(frozen=True)
class RawBody:
    """A rendered response body that is not JSON (the V2 binary tensor extension)."""

    content: bytes
    media_type: str
    headers: Mapping[str, str]


def body_response(body: dict[str, Any] | RawBody, headers: Mapping[str, str]) -> Response:
    """A 200 response for a rendered prediction: JSON, or raw bytes with their headers."""
    if isinstance(body, RawBody):
        from starlette.responses import Response

        return Response(body.content, 200, {**headers, **body.headers}, body.media_type)
    return json_response(body, headers=headers)
