"""Answers of the platform API: store records as JSON (the remote client's `_codec`, so
the client reads back the dataclasses it would get from a local store)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopline.serving.online._responses import json_response
from loopline.store.remote._codec import decode, encode

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response


def answer(value: Any, status_code: int = 200) -> Response:
    """`value` (a record, a list of them, a dict, None) as a JSON response."""
    return json_response(encode(value), status_code)


async def body_as(request: Request, hint: Any) -> Any:
    """The request's JSON body read as `hint` (a record type or a typing form); a body
    that is not JSON or does not fit is a 400 naming the first problem."""
    import json

    from loopline.errors import MalformedRequest

    raw = await request.body()
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        raise MalformedRequest("the request body is not valid JSON") from None
    return decode(hint, data)
