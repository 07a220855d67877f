"""The platform server's request guards, as plain ASGI middleware (streaming bodies pass).

From the outside in:
- `SecurityHeaders`: `X-Content-Type-Options: nosniff`, `Cache-Control: no-store` (an
  API answer, made with someone's credentials, is never kept by a cache; a route that
  sets its own Cache-Control keeps it), `X-Frame-Options: DENY`, `Referrer-Policy`.
- `HostGuard`: the Host header must name this server (the bound host, localhost,
  127.0.0.1, ::1 and `--allowed-host` values), or 400: a DNS-rebinding page in a browser
  reaches a loopback server under the attacker's host name, and is refused here.
- CORS (Starlette's), only with `--cors-origin`; no credentials mode (tokens are headers).
- `PathGuard`: a request path holding a traversal spelling is refused (400) before any
  route sees it: `..` or `.` segments (also `..;`), empty segments (`//`), backslashes,
  control characters (NUL), percent-encoded dots, slashes, backslashes, controls or `%`
  itself (double encoding), bytes that are not strict UTF-8 (overlong forms such as
  `%c0%ae`), and a segment that is a URI scheme (`file:`). Names are then checked whole
  by each route (store._names, pathnames); this is the early, uniform refusal.
- `BodyLimit`: a body over the limit is refused with 413 (by its Content-Length at once,
  else when the streamed bytes pass the limit). Except one blob's upload
  (`PUT /api/v1/blobs/<digest>`): a model file can be gigabytes, and that route streams
  it to a temp file, never to memory (server/api/blobs.py; batches stay limited).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from loopline.errors import LooplineError, MalformedRequest, PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# %2e . %2f / %5c \ %25 % and every encoded control character (NUL included)
_ENCODED = re.compile(rb"%(?:2[eEfF]|5[cC]|25|[01][0-9a-fA-F]|7[fF])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufffd]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


async def _refuse(error: LooplineError, scope: Scope, receive: Receive, send: Send) -> None:
    from loopline.serving.online._errors import error_response

    await error_response(error)(scope, receive, send)


def path_problem(raw_path: bytes, path: str) -> str | None:
    """Why a request path is refused (see the module docstring), or None."""
    if _ENCODED.search(raw_path):
        return "it percent-encodes a dot, slash, backslash, '%' or control character"
    try:
        unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        return "it is not valid UTF-8 once decoded (an overlong or broken sequence)"
    if "\\" in path:
        return "it holds a backslash"
    if _CONTROL.search(path):
        return "it holds a control character"
    if not path.startswith("/") or "//" in path:
        return "it holds an empty segment ('//')"
    for segment in path.split("/")[1:]:
        if segment.split(";", 1)[0] in (".", ".."):
            return "it holds a '.' or '..' segment"
        if _SCHEME.fullmatch(segment):
            return f"a segment reads as a URI scheme ({segment[:20]!r})"
    return None


class PathGuard:
    """Refuses traversal spellings in the request path (400) before routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = str(scope.get("path", ""))
            raw = scope.get("raw_path") or path.encode("utf-8", "surrogateescape")
            problem = path_problem(bytes(raw).partition(b"?")[0], path)
            if problem is not None:
                error = MalformedRequest(f"the request path is refused: {problem}")
                await _refuse(error, scope, receive, send)
                return
        await self.app(scope, receive, send)


def host_name(header: str) -> str:
    """The host of a Host header, without the port and brackets, lower-cased."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    if header.count(":") == 1:
        header = header.partition(":")[0]
    return header.rstrip(".")


class HostGuard:
    """Answers 400 to a request whose Host header names another server (DNS rebinding)."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(host_name(name) for name in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and "*" not in self.allowed:
            headers = dict(scope.get("headers") or ())
            named = headers.get(b"host", b"").decode("latin-1")
            if host_name(named) not in self.allowed:
                error = MalformedRequest(
                    f"host {named[:100]!r} is not served here",
                    hint="start the server with --allowed-host NAME for each name it answers to",
                )
                await _refuse(error, scope, receive, send)
                return
        await self.app(scope, receive, send)


STREAMED_TO_DISK = re.compile(r"/api/v1/blobs/[0-9a-f]{64}")
"""PUT paths whose body the route streams to disk, exempt from `BodyLimit`."""


class BodyLimit:
    """413 for a request body over `max_bytes` (not a blob's streamed PUT)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            scope["method"] == "PUT" and STREAMED_TO_DISK.fullmatch(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        too_large = PayloadTooLarge(
            f"the request body is over this server's limit of {self.max_bytes} bytes",
            hint="the server's --max-body-mb sets it",
        )
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(too_large, scope, receive, send)
            return
        state = {"seen": 0, "over": False, "started": False}

        async def limited() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > self.max_bytes:
                    state["over"] = True
                    raise too_large
            return message

        async def answer(message: Message) -> None:
            if state["over"]:  # the app answered the aborted read its own way: 413 instead
                if message["type"] == "http.response.start" and not state["started"]:
                    state["started"] = True
                    await _refuse(too_large, scope, receive, send)
                return
            state["started"] = state["started"] or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, answer)
        except PayloadTooLarge:
            if state["started"]:
                raise
            await _refuse(too_large, scope, receive, send)


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every answer (a header the route set is kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or ())
                present = {bytes(name).lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
