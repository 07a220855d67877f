"""Metric points: the batched append the client's buffer sends, and a run's keys and
history. Both travel as columns (`store.remote._metric_wire`): the append is read with
plain loops over whole columns, never a model per point."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from loopline.server._answers import answer
from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import stores_of
from loopline.serving.online._responses import json_response
from loopline.store._names import check_id
from loopline.store.remote._metric_wire import history_body, read_batch

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
    run_id: str, key: str, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """Every point of one metric of the run, in step order, as columns."""
    runs = stores_of(request).metadata.runs
    history = runs.get_metric_history(check_id("run", run_id), key)
    return json_response(history_body(key, history))  # plain JSON already: no encode walk
