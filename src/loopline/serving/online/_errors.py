"""HTTP error rendering: the one mapping of errors to HTTP responses.

An error body is `{"error": {"type", "message", "hint", "field"[, "row"]}}`; what it
quotes of the client's request is cut short, and server paths are taken out
(`_redact.public_text`) and logged instead. (V2 routes reshape it: see _v2_errors.)"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidField, LooplineError, NotReady
from loopline.serving._redact import public_text
from loopline.serving.online._responses import json_response

if TYPE_CHECKING:
    from starlette.responses import Response

log = logging.getLogger(__name__)

MAX_MESSAGE, MAX_FIELD = 1000, 200


def error_body(exc: LooplineError) -> dict[str, Any]:
    """{"error": {"type", "message", "hint", "field"[, "row"]}} for any LooplineError.

    Message and field are cut short: they may quote what the client sent. Server paths
    and store locations are taken out (`public_text`) and logged.
    """
    field = getattr(exc, "field", None)
    message = public_text(exc.message)
    hint = None if exc.hint is None else public_text(exc.hint)
    if message != exc.message or hint != exc.hint:
        level = logging.WARNING if exc.http_status >= 500 else logging.DEBUG
        log.log(level, "answered %s without its server paths: %s", type(exc).__name__, exc)
    detail: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": _cut(message, MAX_MESSAGE),
        "hint": hint,
        "field": None if field is None else public_text(_cut(str(field), MAX_FIELD)),
    }
    if isinstance(exc, InvalidField) and exc.row is not None:
        detail["row"] = exc.row
    return {"error": detail}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_response(exc: LooplineError) -> Response:
    """The one mapping of LooplineError to HTTP: its `http_status` and `error_body`."""
    headers = {"Retry-After": "1"} if isinstance(exc, NotReady) else None
    if exc.http_status == 413:
        headers = {"Connection": "close"}  # the unread rest of the body is not wanted
    return json_response(error_body(exc), exc.http_status, headers)
