"""The prediction service behind the HTTP routes: endpoints, loading, hot swaps,
readiness, and the one path every prediction request takes.

    request -> endpoint -> JSON checked (the endpoint's model's signature)
            -> Endpoint.route() picks the answering version (canary weight, A/B key)
            -> micro-batched predict -> response -> metrics, sink
            -> (shadow) the same rows to the shadow version, off the response path

What is served comes from a `Source`: fixed models (`loopline serve churn@champion`),
or stored deployments that the service polls for new revisions. A new revision's models
are loaded and warmed up in a thread while the old endpoint keeps answering; then the
endpoint is replaced in one assignment. Requests already routed finish on the version
they started with, so a swap drops and fails nothing.

Which endpoint and which of its versions answer a request is _routing's; how an error
becomes a response, _errors'; what a feedback body holds, _feedback's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, LooplineError, MalformedRequest, NotFound
from loopline.predictions import PredictionBatch, PredictionRecord, dropped_fields
from loopline.serving._inputs import extra_field_error
from loopline.serving._redact import clip, header_list
from loopline.serving.online._batching import MicroBatcher, OnPredicted
from loopline.serving.online._commits import Commits, settle
from loopline.serving.online._csv import Decode, decode_json
from loopline.serving.online._endpoints import (
    Answer,
    EndpointModels,
    FixedModels,
    Models,
    Source,
)
from loopline.serving.online._errors import error_response
from loopline.serving.online._feedback import feedback_items
from loopline.serving.online._json import check_content_type, parse_json, read_body
from loopline.serving.online._metrics import ServingMetrics
from loopline.serving.online._responses import body_response, json_response
from loopline.serving.online._routing import (
    Endpoint,
    Target,
    default_name,
    not_served,
    strategy_note,
)
from loopline.serving.online._sink import Sink, SinkWorker, durable_sink
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from loopline.predictions import Block
    from loopline.serving.online._responses import RawBody
    from loopline.serving.runtime import Prediction, ServedModel

log = logging.getLogger(__name__)

# parse(body, model) -> (rows, anything render needs); render(answer) -> response body
Parse = Callable[[Any, "ServedModel"], tuple["Block", Any]]
Render = Callable[["Answer"], "dict[str, Any] | RawBody"]
# Models whose one-row predict takes less run on the event loop (see _batching).
INLINE_BELOW_MS = 0.2
# Shadow predictions in flight at most; beyond, a request skips its shadow (counted as
# outcome="skipped") so that a slow shadow cannot pile up work behind the main model.
MAX_SHADOW_IN_FLIGHT = 64


class Service:
    """Endpoints, their loading, hot swaps and readiness, and the prediction request path."""

    def __init__(
        self,
        models: Models,
        *,
        max_body_bytes: int,
        max_batch_size: int,
        max_batch_wait_ms: float,
        max_depth: int,
        sink: Sink | None,
        strict_inputs: bool = False,
        default: str | None = None,
        freeze_heap: bool = False,
    ) -> None:
        from starlette.requests import ClientDisconnect

        _check_limits(max_body_bytes, max_batch_size, max_batch_wait_ms, max_depth)
        self.source: Source = models if isinstance(models, Source) else FixedModels(models)
        self.metrics = ServingMetrics()
        self.deployments: dict[str, Endpoint] = {}
        self.failure: str | None = None
        self._limits = (max_body_bytes, max_depth)
        self._batching = (max_batch_size, max_batch_wait_ms)
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._shadows = 0  # shadow predictions in flight
        # by (endpoint, id(ServedModel)): a version's batcher survives swaps
        self._targets: dict[tuple[str, int], Target] = {}
        # A durable sink is called on the request path (commit, then the response); any
        # other sink gets the answered requests from a SinkWorker's thread, after them.
        durable = durable_sink(sink)
        self._durable = None if durable is None else Commits(durable)
        self._logging = sink is not None
        self._sink = (
            None
            if sink is None or self._durable is not None
            else SinkWorker(sink, on_drop=self.metrics.sink_dropped.inc)
        )
        self._expected = self.source.names()
        # a request's fields that are not inputs: refused (422), or dropped and named
        self.strict_inputs = strict_inputs
        self.default = None if default is None else check_deployment_name(default)
        if self.default is not None and self._expected and self.default not in self._expected:
            raise InvalidInput(
                f"the default deployment '{self.default}' is not one of those served: "
                + ", ".join(sorted(self._expected))
            )
        self._loaded = False  # every endpoint loaded (the names are known)
        self._disconnected = ClientDisconnect
        self._freeze_heap = freeze_heap

    @property
    def ready(self) -> bool:
        """Every model is loaded and warmed up."""
        return self._loaded and all(d.ready for d in self.deployments.values())

    async def start(self) -> None:
        """Start loading and warming up in the background (the server answers meanwhile)."""
        if self._sink is not None:
            self._sink.start()
        self._executor = ThreadPoolExecutor(4, thread_name_prefix="loopline-predict")
        self._spawn(self._run(), name="loopline-load")

    async def stop(self) -> None:
        """Stop watching, finish shadow predictions, stop the sink (handing over what is
        queued) and the worker threads."""
        for task in list(self._tasks):
            if task.get_name() in ("loopline-load", "loopline-watch") and not task.done():
                task.cancel()
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=5.0)
        if self._sink is not None:
            await asyncio.to_thread(self._sink.stop)
        if self._durable is not None:
            await asyncio.to_thread(self._durable.close)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _spawn(self, work: Any, name: str | None = None) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        # `failure` reaches clients (503, /health/ready): it names the error's kind only,
        # since load errors name cache folders and store locations; the log has the rest.
        try:
            await self._refresh()
            self._loaded = True
        except LooplineError as exc:
            self.failure = _load_failure(exc)
            log.error("loading the models failed: %s", exc)
            return
        except Exception as exc:  # keep serving /health so that the failure is visible
            self.failure = _load_failure(exc)
            log.exception("loading the models failed")
            return
        if self.source.poll_seconds is not None:
            self._spawn(self._watch(self.source.poll_seconds), name="loopline-watch")

    async def _watch(self, seconds: float) -> None:
        """Poll the source and swap in changed endpoints; a failed load keeps the old one."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await self._refresh()
            except Exception as exc:
                level = logging.WARNING if isinstance(exc, LooplineError) else logging.ERROR
                log.log(
                    level,
                    "a deployment change could not be loaded; still serving the "
                    "previous configuration: %s",
                    exc,
                )

    async def _refresh(self) -> None:
        known = {name: endpoint.revision for name, endpoint in self.deployments.items()}
        changed = await asyncio.to_thread(self.source.load, known)
        for name, models in changed.items():
            check_deployment_name(name)
            for model in models.models:
                if not model.ready:
                    await asyncio.to_thread(model.warm_up)
            endpoint = self._endpoint(name, models)
            previous = self.deployments.get(name)
            self.deployments[name] = endpoint  # the swap: requests routed before finish
            self._published(name, endpoint, previous)
        if changed and self._freeze_heap:
            freeze_heap()

    def _published(self, name: str, endpoint: Endpoint, previous: Endpoint | None) -> None:
        served = {id(t.model) for t in endpoint.targets}
        for target in endpoint.targets:
            self.metrics.model_ready(name, target.model)
        if previous is not None:
            for target in previous.targets:
                if id(target.model) not in served:
                    self.metrics.model_gone(name, target.model)
                    self._targets.pop((name, id(target.model)), None)
        if endpoint.revision is not None:
            self.metrics.revision(name, endpoint.revision)
        primary = endpoint.primary.model
        log.info(
            "deployment '%s'%s %s in process %d: %s via %s (%s)%s",
            name,
            "" if endpoint.revision is None else f" revision {endpoint.revision}",
            "swapped in" if previous is not None else "ready",
            os.getpid(),
            primary.version_ref,
            primary.runtime,
            primary.path,
            strategy_note(endpoint),
        )

    def _endpoint(self, name: str, models: EndpointModels) -> Endpoint:
        def target(model: ServedModel | None) -> Target | None:
            return None if model is None else self._target(name, model)

        primary = self._target(name, models.primary)
        canary, shadow = target(models.canary), target(models.shadow)
        ab = tuple(self._target(name, model) for model in models.ab)
        targets = {id(t): t for t in (primary, canary, shadow, *ab) if t is not None}
        return Endpoint(
            name,
            primary,
            canary=canary,
            weight=models.weight,
            shadow=shadow,
            ab=ab,
            key=models.key,
            revision=models.revision,
            targets=tuple(targets.values()),
            strict_inputs=models.strict_inputs,
        )

    def _target(self, name: str, model: ServedModel) -> Target:
        found = self._targets.get((name, id(model)))
        if found is not None:
            return found
        assert self._executor is not None
        size, wait = self._batching
        inline = model.predict_ms is not None and model.predict_ms < INLINE_BELOW_MS
        batcher = MicroBatcher(
            model.predict_rows,
            self._executor,
            max_batch_size=size,
            max_wait_ms=wait,
            on_batch=lambda requests, rows: self.metrics.batch(name, requests, rows),
            on_predicted=self._logger(name, model) if self._logging else None,
            inline=inline,
        )
        target = self._targets[name, id(model)] = Target(model, batcher)
        return target

    def _logger(self, name: str, model: ServedModel) -> OnPredicted:
        """What a batcher calls with the tagged requests it answered: one PredictionBatch
        to the sink per predict call (tags are (request id, arrival, start, endpoint,
        what the answer awaits with a durable sink, else None))."""
        import numpy as np

        def log_batch(
            answered: list[tuple[Any, Block, Prediction]], merged: tuple[Block, Prediction] | None
        ) -> None:
            now = time.perf_counter()
            for part in [answered] if merged is not None else [[item] for item in answered]:
                tags = [tag for tag, _, _ in part]
                waiting = [tag[4] for tag in tags if tag[4] is not None]
                try:
                    block, prediction = merged if merged is not None else part[0][1:]
                    batch = PredictionBatch(
                        deployment=name,
                        model_version=model.version_ref,
                        runtime_version=model.runtime_version_ref,
                        request_ids=[tag[0] for tag in tags],
                        times=[tag[1] for tag in tags],
                        endpoints=[tag[3] for tag in tags],
                        latency_ms=(now - np.array([tag[2] for tag in tags])) * 1000.0,
                        row_counts=np.array([b.n_rows for _, b, _ in part], np.int64),
                        block=block.compact(),
                        predictions=prediction.predictions,
                        probabilities=prediction.probabilities,
                        dropped_fields=dropped_fields([b for _, b, _ in part]),
                    )
                    if self._durable is not None:
                        self._durable.commit(batch, waiting)
                    elif self._sink is not None:
                        self._sink.submit(batch)
                except Exception as exc:  # never leave an answer waiting for its commit
                    settle(waiting, exc)
                    raise

        return log_batch

    def deployment(self, name: str | None) -> Endpoint:
        """The named endpoint (None: the server's default, see `default_name`); NotFound
        or NotReady (see `not_served`)."""
        if name is None:
            known = self._expected if self._expected is not None else set(self.deployments)
            name = default_name(known, self.default)
        found = self.deployments.get(name)
        if found is not None:
            return found
        known = self._expected if self._expected is not None else set(self.deployments)
        raise not_served(name, known, self.failure, self._loaded)

    def status(self) -> dict[str, Any]:
        """Readiness, per deployment, for the health endpoints."""
        return {
            "ready": self.ready,
            "deployments": {name: d.describe() for name, d in self.deployments.items()},
            **({"error": self.failure} if self.failure else {}),
        }

    async def predict(
        self,
        request: Request,
        name: str | None,
        endpoint: str,
        parse: Parse,
        render: Render,
        decode: Decode = decode_json,
    ) -> Response:
        """Answer one prediction request; every error becomes its JSON error response.

        `decode(request)` refuses a content type the route does not read (415) and gives
        the body's reader (JSON; MLflow's routes also read CSV, V2 binary tensors).
        """
        started = time.perf_counter()
        arrived = datetime.now(UTC)
        request_id: str = request.scope["state"]["request_id"]
        deployment_name, version = "", ""
        try:
            deployment = self.deployment(name)
            deployment_name = deployment.name
            version = deployment.primary.model.version_ref
            read = decode(request)
            max_bytes, max_depth = self._limits
            raw = await read_body(
                request.stream(), request.headers.get("content-length"), max_bytes
            )
            model = deployment.primary.model
            block, context = parse(read(raw, max_depth, model), model)
            if block.dropped:
                if self.strict_inputs or deployment.strict_inputs:
                    raise extra_field_error(block, model.schema)
                log.debug("request %s: dropped fields %s", request_id, ", ".join(block.dropped))
            target = deployment.route(request_id, block, request.headers)
            version = target.model.version_ref
            # tagged requests reach the prediction log from the batcher, a batch at a time;
            # with a durable sink, the answer waits for `committed` (see _logger)
            tag, committed, record, mirror = None, None, None, False
            if self._logging and deployment.shadow is None:
                committed = None if self._durable is None else self._durable.waiter()
                tag = (request_id, arrived, started, endpoint, committed)
            prediction = await target.batcher.submit(block, tag)
            if deployment.shadow is not None:
                record = PredictionRecord(
                    request_id=request_id,
                    time=arrived,
                    deployment=deployment_name,
                    model_version=version,
                    runtime_version=target.model.runtime_version_ref,
                    endpoint=endpoint,
                    predictions=prediction.predictions,
                    probabilities=prediction.probabilities,
                    latency_ms=(time.perf_counter() - started) * 1000.0,
                    block=block,
                    dropped_fields=block.dropped,
                )
                mirror = self._shadows < MAX_SHADOW_IN_FLIGHT
                self._shadows += mirror  # the shadow's place is taken now
                if self._durable is not None:
                    shadow_version = deployment.shadow.model.version_ref if mirror else None
                    committed = self._durable.commit_record(record, shadow_version)
            if committed is not None:
                assert self._durable is not None
                try:
                    await self._durable.wait(committed)
                except LooplineError:
                    self._shadows -= mirror
                    raise
        except self._disconnected:
            exc = MalformedRequest("the client disconnected before sending the whole body")
            return error_response(exc)
        except LooplineError as exc:
            self.metrics.error(deployment_name, type(exc).__name__)
            response = error_response(exc)
            self.metrics.request(deployment_name, version, endpoint, response.status_code, 0.0)
            return response
        answer = Answer(deployment_name, target.model, prediction, request_id, context)
        headers = {"X-Model-Version": version}
        if block.dropped:
            headers["X-Dropped-Fields"] = header_list(block.dropped)
        response = body_response(render(answer), headers)
        seconds = time.perf_counter() - started
        self.metrics.request(deployment_name, version, endpoint, 200, seconds)
        shadow = deployment.shadow
        if record is None or shadow is None:
            return response  # logged by the batcher (see _logger)
        if mirror:
            self._spawn(self._shadow(shadow, record))
            return response
        self.metrics.shadow(deployment_name, shadow.model.version_ref, "skipped")
        if self._sink is not None:
            self._sink.submit(record)
        return response

    async def feedback(self, request: Request, name: str) -> Response:
        """Store ground-truth labels for requests this deployment answered."""
        from loopline.predictions import record_feedback

        try:
            known = self._expected if self._expected is not None else set(self.deployments)
            if name not in known:
                raise NotFound(f"no deployment named '{clip(name)}'")
            check_content_type(request.headers.get("content-type"))
            max_bytes, max_depth = self._limits
            raw = await read_body(
                request.stream(), request.headers.get("content-length"), max_bytes
            )
            items = feedback_items(parse_json(raw, max_depth=max_depth))
            recorded = await asyncio.to_thread(record_feedback, name, items)
        except self._disconnected:
            return error_response(MalformedRequest("the client disconnected mid-body"))
        except LooplineError as exc:
            self.metrics.error(name if name in self.deployments else "", type(exc).__name__)
            return error_response(exc)
        return json_response({"recorded": recorded})

    async def _shadow(self, shadow: Target, record: PredictionRecord) -> None:
        """Run the shadow on the request's rows and log both answers (never the client's
        concern: errors are logged and counted)."""
        version = shadow.model.version_ref
        try:
            answer = await shadow.batcher.submit(record.block)
        except Exception as exc:  # the shadow never fails the service
            kind = type(exc).__name__
            self.metrics.shadow(record.deployment, version, kind)
            message = exc.message if isinstance(exc, LooplineError) else f"{kind}: {exc}"
            record = _with_shadow(record, version, error=message)
        else:
            self.metrics.shadow(record.deployment, version, "ok")
            record = _with_shadow(
                record, version, predictions=answer.predictions, proba=answer.probabilities
            )
        finally:
            self._shadows -= 1
        if self._durable is not None:  # its request was committed with the shadow pending
            self._durable.shadow_answered(record)
        elif self._sink is not None:
            self._sink.submit(record)


def freeze_heap() -> None:
    """Take what is loaded out of the garbage collector's sight (`gc.freeze`), once its
    garbage is collected: the loaded models, runtimes and libraries are ~190,000 objects,
    and every full collection walked them, 100-150 ms during which a worker answered
    nothing (the p99 of one-row requests under load). A swap unfreezes first, so the
    models it replaced are collected. For a process that only serves: `serve` sets it."""
    import gc

    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _with_shadow(
    record: PredictionRecord,
    version: str,
    *,
    predictions: Any = None,
    proba: Any = None,
    error: str | None = None,
) -> PredictionRecord:
    from dataclasses import replace

    return replace(
        record,
        shadow_version=version,
        shadow_predictions=predictions,
        shadow_probabilities=proba,
        shadow_error=error,
    )


def _load_failure(exc: BaseException) -> str:
    """What clients are told about a failed load: its kind, never its details."""
    return f"the models failed to load ({type(exc).__name__})"


def _check_limits(max_body_bytes: int, max_batch_size: int, wait_ms: float, depth: int) -> None:
    if max_body_bytes < 1:
        raise InvalidInput(f"max_body_bytes must be at least 1, got {max_body_bytes}")
    if max_batch_size < 1:
        raise InvalidInput(f"max_batch_size must be at least 1, got {max_batch_size}")
    if not 0 <= wait_ms < float("inf"):
        raise InvalidInput(f"max_batch_wait_ms must be a number >= 0, got {wait_ms}")
    if depth < 1:
        raise InvalidInput(f"max_depth must be at least 1, got {depth}")
