"""Errors on the Open Inference Protocol's routes in the protocol's shape.

The protocol's error is `{"error": "message"}`: Triton's client reads
`body["error"]` as the message of its InferenceServerException, KServe's puts it in its
HTTPStatusError; our own shape, `{"error": {"type", "message", ...}}`, broke both. So on
every path under /v2 an error body is answered as

    {"error": "message", "type": "InvalidField", "hint": ..., "field": ...[, "row": ...]}

the message where the protocol puts it, loopline's details beside it. It is done here,
on the way out, so that every error gets it whoever raised it: the prediction path,
a route handler, Starlette's 404 and 405, the body timeout's 408, and (see
`app._unexpected_error`) a 500. Only error responses are buffered; others pass through.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from loopline.serving.online._json import dumps

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def is_v2_path(path: str) -> bool:
    """Whether a request path is one of the Open Inference Protocol's."""
    return path == "/v2" or path.startswith("/v2/")


def protocol_error(body: Any) -> Any:
    """`{"error": {"message", ...}}` as `{"error": "message", ...}` (anything else as is)."""
    if type(body) is not dict or type(body.get("error")) is not dict:
        return body
    detail = dict(body["error"])
    message = detail.pop("message", None)
    if type(message) is not str:
        return body
    return {"error": message, **detail}


class V2ErrorMiddleware:
    """Rewrites JSON error bodies on /v2 paths to the protocol's shape."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_v2_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        held: Message | None = None  # an error's response start, until its body is in
        parts: list[bytes] = []

        async def send_protocol_error(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and _is_json_error(message):
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            parts.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = _rewritten(b"".join(parts))
            if not body:  # a HEAD request's answer: nothing to reshape
                await send(held)
                await send(message)
                return
            headers = [(k, v) for k, v in held.get("headers", ()) if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**held, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, send_protocol_error)


def _is_json_error(start: Message) -> bool:
    if start["status"] < 400:
        return False
    for key, value in start.get("headers", ()):
        if key == b"content-type":
            return bool(value.split(b";", 1)[0].strip() == b"application/json")
    return False


def _rewritten(body: bytes) -> bytes:
    try:
        value = json.loads(body)
    except ValueError:  # not ours to judge: passed on as it is
        return body
    return dumps(protocol_error(value))


def reshaped(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """A whole response on a /v2 path as V2ErrorMiddleware sends it: a JSON error in the
    protocol's shape with its Content-Length last; anything else as it is."""
    if not _is_json_error({"status": status, "headers": headers}):
        return headers, body
    body = _rewritten(body)
    if not body:
        return headers, body
    headers = [(k, v) for k, v in headers if k != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    return headers, body
