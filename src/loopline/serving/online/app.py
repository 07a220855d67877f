"""The prediction service as a FastAPI app: loopline's JSON endpoint, the Open Inference
Protocol (KServe V2), MLflow's `/invocations`, health, and Prometheus metrics.

    POST /v1/deployments/{name}/predict     {"inputs": [{...}]} or {"columns", "data"}
    POST /v1/deployments/{name}/feedback    {"request_id", "label"[, "row"]}, or a list of them
    POST /v2/models/{name}/infer            Open Inference Protocol tensors
    GET  /v2/models/{name}  .../ready       model metadata (which runtime serves it), readiness
    GET  /v2  /v2/health/live  /v2/health/ready
    POST /invocations                       MLflow scoring payloads, JSON or CSV (the default
                                            deployment: `default=`, "default" or the only one)
    POST /v1/deployments/{name}/invocations the same, for a named deployment
    GET  /ping  /health  /version           as `mlflow models serve` answers them
    GET  /health/live  /health/ready  /metrics

A row's fields that are not inputs of the model are dropped, as `model.predict` drops
extra columns, and named in the `X-Dropped-Fields` response header (percent-encoded,
comma-separated); with `strict_inputs=True` they are refused (422).

Every error is `{"error": {"type", "message", "hint", "field"}}` with the error's HTTP
status (under /v2, the protocol's `{"error": "message", "type", ...}`: `_v2_errors`), and
never names a server path (see `_redact`); `X-Request-Id` carries the
caller's W3C trace id (or a new id) on every response, `X-Model-Version` the registered
version that answered. A request body must arrive within `body_timeout_seconds` (408
otherwise, see `_body_timeout`); a 500 closes its connection (`Connection: close`), so a
client never reuses a connection in an unknown state.

The prediction routes are answered in front of the FastAPI stack (`_fast_path`: the same
bytes, without its per-request layers); everything else goes through it.
"""

# No `from __future__ import annotations` here: FastAPI reads the route functions'
# annotations at run time, and fastapi's Request is imported where the routes are made.

import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from enum import Enum
from typing import TYPE_CHECKING, Any

from loopline.errors import LooplineError
from loopline.serving.online._body_timeout import (
    DEFAULT_BODY_TIMEOUT,
    BodyTimeoutMiddleware,
    check_body_timeout,
)
from loopline.serving.online._csv import Decode, decode_json, decode_mlflow
from loopline.serving.online._errors import error_response
from loopline.serving.online._json import MAX_DEPTH, json_response_class
from loopline.serving.online._payloads import parse_mlflow, parse_v1, render_mlflow, render_v1
from loopline.serving.online._responses import json_response
from loopline.serving.online._service import Parse, Render, Service
from loopline.serving.online._sink import Sink
from loopline.serving.online._v2 import check_version, decode_v2, parse_v2, render_v2
from loopline.serving.online._v2_errors import V2ErrorMiddleware, is_v2_path, protocol_error
from loopline.serving.online._v2_metadata import v2_metadata

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from loopline.serving.online._endpoints import Models

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

# W3C trace context: version-traceid-parentid-flags, lowercase hex.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_PARENT = "0" * 32, "0" * 16


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The trace id of a valid `traceparent` header, else a new random id (32 hex)."""
    for key, value in headers:
        if key == b"traceparent":
            match = _TRACEPARENT.fullmatch(value.decode("latin-1").strip())
            if (
                match is not None
                and match[1] != "ff"
                and match[2] != _ZERO_TRACE
                and match[3] != _ZERO_PARENT
                and (match[1] != "00" or match[5] is None)
            ):
                return match[2]
            break
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Gives every request an id (scope state `request_id`) and its response `X-Request-Id`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope["headers"])
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(
    models: "Models",
    *,
    max_body_bytes: int = 1_048_576,
    max_batch_size: int = 64,
    max_batch_wait_ms: float = 2.0,
    max_depth: int = MAX_DEPTH,
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT,
    sink: Sink | None = None,
    strict_inputs: bool = False,
    default: str | None = None,
    fast_path: bool = True,
    freeze_heap: bool = False,
) -> "FastAPI":
    """The prediction app for `models`: {deployment name: ServedModel}, or a callable that
    returns them (called at startup in a thread, so /health/live answers while loading).

    Models are warmed up at startup; /health/ready answers 200 once all are ready.
    `sink(record)` receives a PredictionRecord per answered request, off the response
    path. `max_batch_size=1` disables micro-batching. A request body that has not
    arrived `body_timeout_seconds` after its headers is answered 408 and its connection
    closed. `strict_inputs` refuses (422) a row's fields that are not inputs instead of
    dropping them; `default` names the deployment `/invocations` answers for.
    `fast_path=False` sends prediction requests through the whole FastAPI stack too
    (the same answers, slower: see `_fast_path`; the reference its tests compare).
    `freeze_heap=True` freezes the loaded heap for the garbage collector after each load
    (`_service.freeze_heap`; for a process that only serves). Raises
    InvalidInput for a limit out of range, an empty mapping or an unknown `default`.
    """
    from fastapi import FastAPI
    from starlette.exceptions import HTTPException

    from loopline._version import __version__
    from loopline.serving.online._fast_path import FastPath, app_class, install
    from loopline.serving.online._telemetry import telemetry_options

    body_seconds = check_body_timeout(body_timeout_seconds)
    service = Service(
        models,
        max_body_bytes=max_body_bytes,
        max_batch_size=max_batch_size,
        max_batch_wait_ms=max_batch_wait_ms,
        max_depth=max_depth,
        sink=sink,
        strict_inputs=strict_inputs,
        default=default,
        freeze_heap=freeze_heap,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = app_class()(
        title="loopline prediction service",
        version=__version__,
        lifespan=lifespan,
        default_response_class=json_response_class(),
        **telemetry_options(FastAPI),  # per-request OpenTelemetry checks (see _telemetry)
    )
    app.state.service = service
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(BodyTimeoutMiddleware, seconds=body_seconds)
    app.add_middleware(V2ErrorMiddleware)  # outside the others: it sees their errors too
    app.add_exception_handler(LooplineError, _loopline_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    routes = _prediction_routes(service)
    # Prediction requests reach these plain Starlette routes, placed first; the FastAPI
    # declarations below document the same paths in OpenAPI. FastAPI's per-request
    # dependency solving costs ~70 µs, a quarter of the server's CPU time per request.
    app.router.routes[0:0] = routes
    _document_prediction_routes(app, {route.path: route.endpoint for route in routes})
    _add_feedback_route(app, service)
    _add_status_routes(app, service)
    _add_mlflow_status_routes(app, service)
    if fast_path:  # prediction requests answered in front of the stack (see _fast_path)
        install(
            app,
            lambda stack: FastPath(
                stack,
                service,
                PROTOCOLS,
                body_seconds=body_seconds,
                request_id=request_id,
                on_error=_unexpected_error,
            ),
        )
    return app


# path -> endpoint label (in metrics and the prediction log), parse, render, decode
PROTOCOLS: dict[str, tuple[str, Parse, Render, Decode]] = {
    "/v1/deployments/{name}/predict": ("v1", parse_v1, render_v1, decode_json),
    "/v2/models/{name}/infer": ("v2", parse_v2, render_v2, decode_v2),
    "/v2/models/{name}/versions/{version}/infer": ("v2", parse_v2, render_v2, decode_v2),
    "/invocations": ("invocations", parse_mlflow, render_mlflow, decode_mlflow),
    "/v1/deployments/{name}/invocations": (
        "invocations",
        parse_mlflow,
        render_mlflow,
        decode_mlflow,
    ),
}


def _prediction_routes(service: Service) -> "list[Route]":
    from starlette.routing import Route

    def endpoint(label: str, parse: Parse, render: Render, decode: Decode) -> Callable[..., Any]:
        async def predict(request: "Request") -> "Response":
            name = request.path_params.get("name")
            return await service.predict(request, name, label, parse, render, decode)

        return predict

    return [
        Route(path, endpoint(*protocol), methods=["POST"]) for path, protocol in PROTOCOLS.items()
    ]


def _document_prediction_routes(app: "FastAPI", handlers: dict[str, Callable[..., Any]]) -> None:
    """FastAPI declarations of the prediction routes, for /docs and /openapi.json."""
    from fastapi import Request
    from fastapi.responses import Response

    from loopline.serving.online import _schemas as schemas

    errors = schemas.error_responses()
    v1, v2, mlflow, named_mlflow = (
        handlers[path]
        for path in (
            "/v1/deployments/{name}/predict",
            "/v2/models/{name}/infer",
            "/invocations",
            "/v1/deployments/{name}/invocations",
        )
    )

    @app.post(
        "/v1/deployments/{name}/predict",
        summary="Predict with loopline's JSON API",
        response_model=schemas.PredictResponse,
        responses=errors,
        openapi_extra=schemas.request_body(schemas.PredictRequest),
        tags=["predict"],
    )
    async def predict(name: str, request: Request) -> Response:
        response: Response = await v1(request)
        return response

    @app.post(
        "/v2/models/{name}/infer",
        summary="Predict with the Open Inference Protocol (KServe V2)",
        response_model=schemas.InferResponse,
        responses=schemas.protocol_error_responses(),
        openapi_extra=schemas.request_body(schemas.InferRequest),
        tags=["open inference protocol"],
    )
    async def infer(name: str, request: Request) -> Response:
        response: Response = await v2(request)
        return response

    @app.post(
        "/v2/models/{name}/versions/{version}/infer",
        summary="Predict with the Open Inference Protocol, naming the served version",
        response_model=schemas.InferResponse,
        responses=schemas.protocol_error_responses(),
        openapi_extra=schemas.request_body(schemas.InferRequest),
        tags=["open inference protocol"],
    )
    async def infer_version(name: str, version: str, request: Request) -> Response:
        response: Response = await v2(request)
        return response

    @app.post(
        "/invocations",
        summary="Predict with MLflow's scoring payloads (as `mlflow models serve`)",
        response_model=schemas.InvocationsResponse,
        responses=errors,
        openapi_extra=schemas.request_body(schemas.InvocationsRequest),
        tags=["mlflow"],
    )
    async def invocations(request: Request) -> Response:
        response: Response = await mlflow(request)
        return response

    @app.post(
        "/v1/deployments/{name}/invocations",
        summary="Predict with MLflow's scoring payloads, for a named deployment",
        response_model=schemas.InvocationsResponse,
        responses=errors,
        openapi_extra=schemas.request_body(schemas.InvocationsRequest),
        tags=["mlflow"],
    )
    async def deployment_invocations(name: str, request: Request) -> Response:
        response: Response = await named_mlflow(request)
        return response


def _add_feedback_route(app: "FastAPI", service: Service) -> None:
    """Ground-truth labels for logged requests, stored for performance monitoring."""
    from fastapi import Request
    from fastapi.responses import Response

    from loopline.serving.online import _schemas as schemas

    @app.post(
        "/v1/deployments/{name}/feedback",
        summary="Record ground truth for logged predictions",
        response_model=schemas.FeedbackResponse,
        responses=schemas.error_responses(),
        openapi_extra=schemas.request_body(
            schemas.Feedback | list[schemas.Feedback] | schemas.FeedbackBatch
        ),
        tags=["predict"],
    )
    async def feedback(name: str, request: Request) -> Response:
        return await service.feedback(request, name)


def _add_status_routes(app: "FastAPI", service: Service) -> None:
    """Model metadata and readiness (V2), health, and Prometheus metrics."""
    from fastapi.responses import Response

    from loopline._version import __version__
    from loopline.serving.online import _schemas as schemas
    from loopline.serving.online._metrics import CONTENT_TYPE

    v2: list[str | Enum] = ["open inference protocol"]
    v2_errors = schemas.protocol_error_responses()

    metadata = schemas.ModelMetadata

    @app.get(
        "/v2/models/{name}/versions/{version}",
        response_model=metadata,
        responses=v2_errors,
        tags=v2,
    )
    @app.get("/v2/models/{name}", response_model=metadata, responses=v2_errors, tags=v2)
    async def model_metadata(name: str, version: str | None = None) -> Response:
        model = service.deployment(name).primary.model
        check_version(version, model, name)
        return json_response(v2_metadata(name, model))

    @app.get("/v2/models/{name}/versions/{version}/ready", responses=v2_errors, tags=v2)
    @app.get("/v2/models/{name}/ready", responses=v2_errors, tags=v2)
    async def model_ready(name: str, version: str | None = None) -> Response:
        check_version(version, service.deployment(name).primary.model, name)
        ready = service.deployment(name).ready
        return json_response({"name": name, "ready": ready}, 200 if ready else 503)

    @app.get("/v2", tags=v2)
    async def server_metadata() -> Response:
        return json_response(
            {"name": "loopline", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    @app.get("/v2/health/live", tags=v2)
    async def v2_live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready", tags=v2)
    async def v2_ready() -> Response:
        ready = service.ready
        return json_response({"ready": ready}, 200 if ready else 503)

    @app.get("/health/live", tags=["health"])
    async def live() -> Response:
        return json_response({"status": "live"})

    @app.get("/health/ready", tags=["health"])
    async def ready() -> Response:
        status = service.status()
        return json_response(status, 200 if status["ready"] else 503)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)


def _add_mlflow_status_routes(app: "FastAPI", service: Service) -> None:
    """`mlflow models serve`'s health and version routes, answered as it answers them:
    /ping and /health a newline with 200 once every model is ready (before, a 503 JSON
    error), /version the version as plain text."""
    from fastapi.responses import PlainTextResponse, Response

    from loopline._version import __version__
    from loopline.errors import NotReady

    tags: list[str | Enum] = ["mlflow"]

    def answer() -> Response:
        if service.ready:
            return Response("\n", media_type="application/json")
        return error_response(
            NotReady("the models are still loading", hint="GET /health/ready says which")
        )

    @app.get("/ping", tags=tags, response_class=Response)
    async def ping() -> Response:
        return answer()

    @app.get("/health", tags=tags, response_class=Response)
    async def health() -> Response:
        return answer()

    @app.get("/version", tags=tags, response_class=PlainTextResponse)
    async def version() -> Response:
        return PlainTextResponse(__version__)


async def _loopline_error(request: "Request", exc: Exception) -> "Response":
    assert isinstance(exc, LooplineError)
    return error_response(exc)


async def _http_error(request: "Request", exc: Exception) -> "Response":
    """Starlette's own 404 (no such route) and 405 (wrong method), as JSON errors."""
    from starlette.exceptions import HTTPException

    assert isinstance(exc, HTTPException)
    kind = "NotFound" if exc.status_code == 404 else "InvalidInput"
    detail = {"type": kind, "message": str(exc.detail), "hint": None, "field": None}
    return json_response({"error": detail}, exc.status_code, exc.headers)


async def _unexpected_error(request: "Request", exc: Exception) -> "Response":
    """A bug, not the client's fault: logged with its trace, answered as a JSON 500."""
    log.error("unexpected %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
    message = f"internal error ({type(exc).__name__}); the server log has the details"
    detail = {"type": "LooplineError", "message": message, "hint": None, "field": None}
    body: dict[str, Any] = {"error": detail}
    if is_v2_path(request.url.path):  # outside V2ErrorMiddleware: shaped here
        body = protocol_error(body)
    # The request's state is unknown (and uvicorn closes the socket after an exception):
    # say so, so that the client opens a new connection instead of losing its next request.
    return json_response(body, 500, {"Connection": "close"})
