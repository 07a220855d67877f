"""The prediction routes answered in front of the FastAPI app, with the same bytes.

A one-row prediction spent ~150 µs of Python in the framework before this: Starlette's
error middleware, three of ours (V2 errors, body timeout, request id), FastAPI's
exception and exit-stack layers, the router's regex walk and the route's wrapper, each
an `await` and a closure around `send`. `FastPath` sits in front of that stack: a POST
to one of the prediction paths (`PROTOCOLS` in `app`: /v1/.../predict, /invocations,
/v1/.../invocations, the V2 infer routes) is matched by its segments and handed to
`Service.predict` directly, and what the middleware did is done here in one function,
in the same order:

    request id      the trace id of `traceparent`, or a new one (`app.request_id`),
                    in the scope's state and the `X-Request-Id` header, last but two
    body deadline   `TimedBody`: 408 when the body is late; `Connection: close` when it
                    was not read to the end (`_body_timeout`)
    V2 errors       a JSON error under /v2 in the protocol's shape (`_v2_errors.reshaped`)
    a bug           answered by the app's 500 handler (as Starlette's error middleware
                    does: outside the others, no request id), then raised to the server

Anything else (another method or path, a path with a root_path, a lifespan or websocket
scope) goes to the FastAPI app unchanged, so a path this matcher does not know is still
answered exactly as before. tests/integration/test_serving_fast_path.py sends the same
requests, errors included, to an app with and without this path and compares the bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from loopline.serving.online._body_timeout import TimedBody, closing, has_body
from loopline.serving.online._v2_errors import is_v2_path, reshaped

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    from loopline.serving.online._csv import Decode
    from loopline.serving.online._service import Parse, Render, Service

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Protocol = tuple[str, "Parse", "Render", "Decode"]
OnError = Callable[["Request", Exception], Awaitable["Response"]]
RequestId = Callable[[list[tuple[bytes, bytes]]], str]


class FastPath:
    """An ASGI app that answers prediction POSTs itself and passes the rest to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        service: Service,
        protocols: dict[str, Protocol],
        *,
        body_seconds: float,
        request_id: RequestId,
        on_error: OnError,
    ) -> None:
        from starlette.requests import Request

        self.app = app
        self._service = service
        self._seconds = body_seconds
        self._request_id = request_id
        self._on_error = on_error
        self._request = Request
        # by segment count: (template segments, protocol, is a /v2 path)
        self._routes: dict[int, list[tuple[list[str], Protocol, bool]]] = {}
        for template, protocol in protocols.items():
            segments = template.split("/")
            self._routes.setdefault(len(segments), []).append(
                (segments, protocol, is_v2_path(template))
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            found = self._match(scope["path"])
            if found is not None:
                await self._predict(scope, receive, send, *found)
                return
        await self.app(scope, receive, send)

    def _match(self, path: str) -> tuple[dict[str, str], Protocol, bool] | None:
        """The path parameters and protocol of a prediction path, as Starlette's router
        matches it (a `{param}` is one non-empty segment), else None."""
        segments = path.split("/")
        for template, protocol, v2 in self._routes.get(len(segments), ()):
            params: dict[str, str] = {}
            for expected, actual in zip(template, segments, strict=True):
                if expected[:1] == "{":
                    if not actual:
                        break
                    params[expected[1:-1]] = actual
                elif expected != actual:
                    break
            else:
                return params, protocol, v2
        return None

    async def _predict(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        params: dict[str, str],
        protocol: Protocol,
        v2: bool,
    ) -> None:
        headers = scope["headers"]
        rid = self._request_id(headers)
        scope.setdefault("state", {})["request_id"] = rid
        scope["path_params"] = params
        body = TimedBody(receive, self._seconds) if has_body(headers) else None
        request = self._request(scope, receive if body is None else body.receive)
        try:
            response = await self._service.predict(request, params.get("name"), *protocol)
        except Exception as exc:  # a bug: Starlette's error middleware's answer, then raise
            answer = await self._on_error(self._request(scope), exc)
            await send(_start(answer.status_code, answer.raw_headers))
            await send(_body(answer.body))
            raise
        finally:
            if body is not None:
                body.stop()
        raw = response.raw_headers
        raw.append((b"x-request-id", rid.encode()))
        if body is not None and not body.read:
            raw = closing(raw)
        content = response.body
        status = response.status_code
        if v2 and status >= 400:
            raw, content = reshaped(status, raw, bytes(content))
        await send(_start(status, raw))
        await send(_body(content))


def _start(status: int, headers: list[tuple[bytes, bytes]]) -> Message:
    return {"type": "http.response.start", "status": status, "headers": headers}


def _body(content: bytes | memoryview) -> Message:
    return {"type": "http.response.body", "body": content}


def install(app: FastAPI, fast_path: Callable[[ASGIApp], ASGIApp]) -> None:
    """Put `fast_path(stack)` in front of the middleware stack of an `app_class()` app."""
    app.fast_path = fast_path  # type: ignore[attr-defined]


@functools.cache
def app_class() -> type[FastAPI]:
    """FastAPI with a `fast_path` in front of its middleware stack (see `install`)."""
    from fastapi import FastAPI

    class PredictionApp(FastAPI):
        """The prediction service's app: `fast_path(stack)` answers the prediction routes."""

        fast_path: Callable[[ASGIApp], ASGIApp] | None = None

        def build_middleware_stack(self) -> ASGIApp:
            stack: ASGIApp = super().build_middleware_stack()
            return stack if self.fast_path is None else self.fast_path(stack)

    return PredictionApp
