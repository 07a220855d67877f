"""Metric points: the batched append the client's buffer sends, and a run's keys and
history. Both travel as columns (`store.remote._metric_wire`): the append is read with
plain loops over whole columns, never a model per point."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from loopline.server._answers import answer
from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import stores_of
from loopline.serving.online._responses import json_response
from loopline.store._names import check_id
from loopline.store.records import MetricSpan
from loopline.store.remote._metric_wire import read_batch, series_body

router = APIRouter(tags=["metrics"])


@router.post("/metrics", status_code=204)
async def log_metric_points(request: Request, caller: Caller = requires(Role.WRITER)) -> Response:
    """Append a batch of metric points (columns: runs, keys, run, key, value, step,
    timestamp) in one write: all of them, or none with the reason (a bad point is a 422
    naming its row; a point of an unknown run a 404 naming the run). A batch with an id
    (`batch`) is applied once: sent again, it is answered 204 and stored no second time."""
    from starlette.concurrency import run_in_threadpool

    from loopline.serving.online._json import parse_json

    raw = await request.body()
    runs = stores_of(request).metadata.runs

    def append() -> None:
        points, batch_id = read_batch(parse_json(raw))
        runs.log_metric_points(points, batch_id)

    await run_in_threadpool(append)
    return Response(status_code=204)


@router.get("/runs/{run_id}/metrics")
def list_metric_keys(
    run_id: str, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """The keys of the metrics logged to the run, sorted."""
    return answer(stores_of(request).metadata.runs.list_metric_keys(check_id("run", run_id)))


@router.get("/runs/{run_id}/metrics/history")
def get_metric_history(
    run_id: str,
    key: str,
    request: Request,
    x: Literal["step", "time"] = "step",
    start: int | None = None,
    end: int | None = None,
    limit: int | None = Query(None, ge=1),
    buckets: int | None = Query(None, ge=1),
    caller: Caller = requires(Role.READER),
) -> Response:
    """The points of one metric of the run as columns: every point in step order, or
    those of a range (`start` to `end` of the step, or of the time in epoch ms with
    `x=time`), in that axis's order, the first `limit` of them; with `buckets`, thinned
    to each bucket's lowest and highest point (see MetricSpan)."""
    runs = stores_of(request).metadata.runs
    span = MetricSpan(x=x, start=start, end=end, limit=limit, buckets=buckets)
    series = runs.get_metric_series(check_id("run", run_id), key, span)
    return json_response(series_body(series))  # plain JSON already: no encode walk
