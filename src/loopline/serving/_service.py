"""The prediction service behind the HTTP routes: deployments, loading, readiness, and the
one path every prediction request takes.

    request -> deployment -> Deployment.route() picks the target (model version)
            -> JSON checked -> micro-batched predict -> response -> metrics, sink

`Deployment.route` is where canary, shadow and A/B strategies will choose among several
model versions; the chosen version, its outputs and the latency reach the sink in a
`PredictionRecord`, which is where the prediction log will plug in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline.errors import (
    InvalidField,
    InvalidInput,
    LooplineError,
    MalformedRequest,
    NotFound,
    NotReady,
)
from loopline.serving._batching import MicroBatcher
from loopline.serving._json import check_content_type, dumps, parse_json, read_body
from loopline.serving._metrics import ServingMetrics
from loopline.serving._sink import PredictionRecord, Sink, SinkWorker

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from loopline.serving._inputs import Block
    from loopline.serving.runtime import Prediction, ServedModel

log = logging.getLogger(__name__)

Models = Mapping[str, "ServedModel"] | Callable[[], Mapping[str, "ServedModel"]]
# parse(body, model) -> (rows, anything render needs); render(answer) -> response body
Parse = Callable[[Any, "ServedModel"], tuple["Block", Any]]
Render = Callable[["Answer"], dict[str, Any]]
DEFAULT_DEPLOYMENT = "default"
DEPLOYMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
MAX_MESSAGE, MAX_FIELD = 1000, 200
# Models whose one-row predict takes less run on the event loop (see _batching).
INLINE_BELOW_MS = 0.2


@dataclass(frozen=True)
class Target:
    """One model version a deployment can send requests to, with its batcher."""

    model: ServedModel
    batcher: MicroBatcher


@dataclass(frozen=True)
class Answer:
    """A prediction ready to render: for whom, by which version, and what it said."""

    deployment: str
    model: ServedModel
    prediction: Prediction
    request_id: str
    context: Any


class Deployment:
    """A named endpoint and the model version behind it.

    Today a deployment serves one version. Strategies (canary weights, shadow, A/B by
    key) will hold several targets and choose in `route`.
    """

    def __init__(self, name: str, target: Target) -> None:
        self.name = name
        self.targets = (target,)

    def route(self, request_id: str) -> Target:
        """The target that answers this request."""
        return self.targets[0]

    @property
    def ready(self) -> bool:
        return all(target.model.ready for target in self.targets)


class Service:
    """Deployments, their loading and readiness, and the prediction request path."""

    def __init__(
        self,
        models: Models,
        *,
        max_body_bytes: int,
        max_batch_size: int,
        max_batch_wait_ms: float,
        max_depth: int,
        sink: Sink | None,
    ) -> None:
        from starlette.requests import ClientDisconnect

        _check_limits(max_body_bytes, max_batch_size, max_batch_wait_ms, max_depth)
        if isinstance(models, Mapping):
            if not models:
                raise InvalidInput("nothing to serve: give at least one model")
            for name in models:
                check_deployment_name(name)
        self.metrics = ServingMetrics()
        self.deployments: dict[str, Deployment] = {}
        self.failure: str | None = None
        self._models = models
        self._limits = (max_body_bytes, max_depth)
        self._batching = (max_batch_size, max_batch_wait_ms)
        self._executor: ThreadPoolExecutor | None = None
        self._loading: asyncio.Task[None] | None = None
        self._sink = (
            None if sink is None else SinkWorker(sink, on_drop=self.metrics.sink_dropped.inc)
        )
        self._expected = set(models) if isinstance(models, Mapping) else None
        self._loaded = False  # every model loaded (the names are known)
        self._disconnected = ClientDisconnect

    @property
    def ready(self) -> bool:
        """Every model is loaded and warmed up."""
        return self._loaded and all(d.ready for d in self.deployments.values())

    async def start(self) -> None:
        """Start loading and warming up in the background (the server answers meanwhile)."""
        if self._sink is not None:
            self._sink.start()
        self._loading = asyncio.get_running_loop().create_task(self._load())

    async def stop(self) -> None:
        """Stop the sink (handing over what is queued) and the worker threads."""
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        if self._sink is not None:
            await asyncio.to_thread(self._sink.stop)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _load(self) -> None:
        try:
            models = self._models
            if not isinstance(models, Mapping):
                models = await asyncio.to_thread(models)
            workers = max(1, min(4, len(models)))
            self._executor = ThreadPoolExecutor(workers, thread_name_prefix="loopline-predict")
            for name, model in models.items():
                check_deployment_name(name)
                if not model.ready:
                    await asyncio.to_thread(model.warm_up)
                inline = model.predict_ms is not None and model.predict_ms < INLINE_BELOW_MS
                self.deployments[name] = Deployment(name, self._target(name, model, inline))
                self.metrics.model_ready(name, model)
                log.info(
                    "deployment '%s' ready in process %d: %s via %s (%s; predict %s)",
                    name,
                    os.getpid(),
                    model.version_ref,
                    model.runtime,
                    model.path,
                    "on the event loop" if inline else "in a worker thread",
                )
            self._loaded = True
        except LooplineError as exc:
            self.failure = exc.message
            log.error("loading the models failed: %s", exc)
        except Exception as exc:  # keep serving /health so that the failure is visible
            self.failure = f"{type(exc).__name__}: {exc}"
            log.exception("loading the models failed")

    def _target(self, name: str, model: ServedModel, inline: bool) -> Target:
        assert self._executor is not None
        size, wait = self._batching
        batcher = MicroBatcher(
            model.predict_rows,
            self._executor,
            max_batch_size=size,
            max_wait_ms=wait,
            on_batch=lambda requests, rows: self.metrics.batch(name, requests, rows),
            inline=inline,
        )
        return Target(model, batcher)

    def deployment(self, name: str | None) -> Deployment:
        """The named deployment (None: "default", or the only one); NotFound / NotReady."""
        known = self._expected if self._expected is not None else set(self.deployments)
        if name is None:
            if DEFAULT_DEPLOYMENT in known or len(known) != 1:
                name = DEFAULT_DEPLOYMENT
            else:
                (name,) = known
        found = self.deployments.get(name)
        if found is not None:
            return found
        if self.failure is not None:
            raise NotReady(f"the models failed to load: {self.failure}")
        if name in known or not self._loaded:
            raise NotReady(
                f"deployment '{name}' is still loading", hint="retry when /health/ready answers 200"
            )
        raise NotFound(
            f"no deployment named '{name}'",
            hint=f"this server serves {', '.join(sorted(known))}" if known else None,
        )

    def status(self) -> dict[str, Any]:
        """Readiness, per deployment, for the health endpoints."""
        return {
            "ready": self.ready,
            "deployments": {
                name: {
                    "model_version": d.targets[0].model.version_ref,
                    "runtime": d.targets[0].model.runtime,
                    "ready": d.ready,
                }
                for name, d in self.deployments.items()
            },
            **({"error": self.failure} if self.failure else {}),
        }

    async def predict(
        self, request: Request, name: str | None, endpoint: str, parse: Parse, render: Render
    ) -> Response:
        """Answer one prediction request; every error becomes its JSON error response."""
        started = time.perf_counter()
        arrived = datetime.now(UTC)
        request_id: str = request.scope["state"]["request_id"]
        deployment_name, version = "", ""
        try:
            deployment = self.deployment(name)
            deployment_name = deployment.name
            target = deployment.route(request_id)
            version = target.model.version_ref
            check_content_type(request.headers.get("content-type"))
            max_bytes, max_depth = self._limits
            raw = await read_body(
                request.stream(), request.headers.get("content-length"), max_bytes
            )
            block, context = parse(parse_json(raw, max_depth=max_depth), target.model)
            prediction = await target.batcher.submit(block)
        except self._disconnected:
            exc = MalformedRequest("the client disconnected before sending the whole body")
            return error_response(exc)
        except LooplineError as exc:
            self.metrics.error(deployment_name, type(exc).__name__)
            response = error_response(exc)
            self.metrics.request(deployment_name, version, endpoint, response.status_code, 0.0)
            return response
        answer = Answer(deployment_name, target.model, prediction, request_id, context)
        response = json_response(render(answer), headers={"X-Model-Version": version})
        seconds = time.perf_counter() - started
        self.metrics.request(deployment_name, version, endpoint, 200, seconds)
        if self._sink is not None:
            self._sink.submit(
                PredictionRecord(
                    request_id=request_id,
                    time=arrived,
                    deployment=deployment_name,
                    model_version=version,
                    runtime_version=target.model.runtime_version_ref,
                    endpoint=endpoint,
                    predictions=prediction.predictions,
                    probabilities=prediction.probabilities,
                    latency_ms=seconds * 1000.0,
                    block=block,
                )
            )
        return response


def _check_limits(max_body_bytes: int, max_batch_size: int, wait_ms: float, depth: int) -> None:
    if max_body_bytes < 1:
        raise InvalidInput(f"max_body_bytes must be at least 1, got {max_body_bytes}")
    if max_batch_size < 1:
        raise InvalidInput(f"max_batch_size must be at least 1, got {max_batch_size}")
    if not 0 <= wait_ms < float("inf"):
        raise InvalidInput(f"max_batch_wait_ms must be a number >= 0, got {wait_ms}")
    if depth < 1:
        raise InvalidInput(f"max_depth must be at least 1, got {depth}")


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response rendered by orjson."""
    from starlette.responses import Response

    return Response(dumps(content), status_code, headers, media_type="application/json")


def error_body(exc: LooplineError) -> dict[str, Any]:
    """{"error": {"type", "message", "hint", "field"[, "row"]}} for any LooplineError.

    Message and field are cut short: they may quote what the client sent.
    """
    field = getattr(exc, "field", None)
    detail: dict[str, Any] = {
        **exc.to_dict(),
        "message": _cut(exc.message, MAX_MESSAGE),
        "field": None if field is None else _cut(str(field), MAX_FIELD),
    }
    if isinstance(exc, InvalidField) and exc.row is not None:
        detail["row"] = exc.row
    return {"error": detail}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_deployment_name(name: object) -> str:
    """A deployment name is one URL path segment: letters, digits, '_', '-', '.'."""
    if not isinstance(name, str) or not DEPLOYMENT_NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid deployment name {name!r}",
            hint="use 1-128 letters, digits, '_', '-' and '.', starting with a letter or digit",
        )
    return name


def error_response(exc: LooplineError) -> Response:
    """The one mapping of LooplineError to HTTP: its `http_status` and `error_body`."""
    headers = {"Retry-After": "1"} if isinstance(exc, NotReady) else None
    if exc.http_status == 413:
        headers = {"Connection": "close"}  # the unread rest of the body is not wanted
    return json_response(error_body(exc), exc.http_status, headers)
