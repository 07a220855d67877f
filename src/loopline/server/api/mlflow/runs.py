"""MLflow's runs API: create, get, update, delete, restore, search, log-metric,
log-parameter, set-tag, log-batch, and metrics/get-history.

Runs are loopline runs (see `_entities` for what maps how). The run's user is the
authenticated caller, never the `user_id` or `mlflow.user` tag a client sends. Writes to
a deleted run are refused, as MLflow refuses them. Metric values may be NaN or
infinite, as in MLflow; timestamps and steps are the client's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from loopline.errors import InvalidInput
from loopline.server._permissions import Caller, Role, requires
from loopline.server.api.mlflow import _filters
from loopline.server.api.mlflow._entities import (
    DEFAULT_EXPERIMENT,
    metric_json,
    run_info_json,
    run_json,
)
from loopline.server.api.mlflow._protocol import (
    Double,
    Int64,
    MlflowRoute,
    ok,
    page,
    page_offset,
)
from loopline.server.api.mlflow.experiments import experiment_id_for_write, view_type
from loopline.server.app import stores_of
from loopline.store import MetricRow, Run, RunStatus, RunStore, check_key
from loopline.store.records import MAX_SEARCH_RESULTS

router = APIRouter(route_class=MlflowRoute)

# MLflow's limits on one log-batch request (mlflow/utils/validation.py)
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_BATCH_BYTES = 1_000_000
_STATUSES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}


class KeyValue(BaseModel):
    key: str
    value: str = ""


class RunRef(BaseModel):
    run_id: str = ""
    run_uuid: str = ""  # MLflow's older name for run_id; clients send both

    def id(self) -> str:
        found = self.run_id or self.run_uuid
        if not found:
            raise InvalidInput("Missing value for required parameter 'run_id'")
        return found


class CreateRun(BaseModel):
    experiment_id: str = ""
    user_id: str = ""  # ignored: the run's user is the authenticated caller
    run_name: str = ""
    start_time: Int64 | None = None  # ignored: the server's clock starts the run
    tags: list[KeyValue] = []


class UpdateRun(RunRef):
    status: int | str | None = None
    end_time: Int64 | None = None
    run_name: str | None = None


class MetricIn(BaseModel):
    key: str
    value: Double
    timestamp: Int64
    step: Int64 = 0


class LogMetric(RunRef, MetricIn):
    pass


class KeyValueOfRun(RunRef, KeyValue):
    pass


class LogBatch(BaseModel):
    run_id: str
    metrics: list[MetricIn] = []
    params: list[KeyValue] = []
    tags: list[KeyValue] = []


class SearchRuns(BaseModel):
    experiment_ids: list[str] = []
    filter: str = ""
    run_view_type: int | str = "ACTIVE_ONLY"
    max_results: Int64 = 1000
    order_by: list[str] = []
    page_token: str = ""


class GetMetricHistory(RunRef):
    metric_key: str
    page_token: str = ""
    max_results: Int64 | None = None


# -- runs -------------------------------------------------------------------------------


@router.post("/runs/create")
def create_run(
    body: CreateRun, request: Request, caller: Caller = requires(Role.WRITER)
) -> Response:
    runs = stores_of(request).metadata.runs
    tags = _tag_map(body.tags)
    name = body.run_name or tags.pop("mlflow.runName", "")
    tags.pop("mlflow.runName", "")
    tags.pop("mlflow.user", "")
    parent = tags.pop("mlflow.parentRunId", "") or None
    run = runs.create_run(
        experiment_id_for_write(runs, body.experiment_id),
        name=name or None,
        parent_id=parent,
        user=caller.user,
        source=tags.get("mlflow.source.name", ""),
        tags=tags,
    )
    return ok({"run": run_json(run)})


@router.get("/runs/get", dependencies=[requires(Role.READER)])
def get_run(query: Annotated[RunRef, Query()], request: Request) -> Response:
    return ok({"run": run_json(stores_of(request).metadata.runs.get_run(query.id()))})


@router.post("/runs/update", dependencies=[requires(Role.WRITER)])
def update_run(body: UpdateRun, request: Request) -> Response:
    runs = stores_of(request).metadata.runs
    status = None if body.status is None else _status(body.status)
    run = runs.update_run(
        body.id(), status=status, end_time_ms=body.end_time, name=body.run_name or None
    )
    return ok({"run_info": run_info_json(run)})


@router.post("/runs/delete", dependencies=[requires(Role.WRITER)])
def delete_run(body: RunRef, request: Request) -> Response:
    stores_of(request).metadata.runs.set_deleted(body.id(), True)
    return ok()


@router.post("/runs/restore", dependencies=[requires(Role.WRITER)])
def restore_run(body: RunRef, request: Request) -> Response:
    stores_of(request).metadata.runs.set_deleted(body.id(), False)
    return ok()


@router.post("/runs/search", dependencies=[requires(Role.READER)])
def search_runs(body: SearchRuns, request: Request) -> Response:
    if not 1 <= body.max_results <= MAX_SEARCH_RESULTS:
        raise InvalidInput(f"max_results must be between 1 and {MAX_SEARCH_RESULTS}")
    view = view_type(body.run_view_type)
    condition = _filters.runs_condition(_filters.parse_filter(body.filter))
    order = _filters.runs_order(_filters.parse_order_by(body.order_by))
    runs = stores_of(request).metadata.runs
    if not body.experiment_ids:
        return ok({"runs": []})
    wanted = min(page_offset(body.page_token) + body.max_results + 1, MAX_SEARCH_RESULTS)
    found = runs.search_runs(
        _experiment_ids(runs, body.experiment_ids), condition, order, wanted, view != 1
    )
    if view == 2:
        found = [run for run in found if run.deleted]
    shown, token = page(found, body.page_token, body.max_results)
    return ok({"runs": [run_json(run) for run in shown], "next_page_token": token})


# -- logging ----------------------------------------------------------------------------


@router.post("/runs/log-metric", dependencies=[requires(Role.WRITER)])
def log_metric(body: LogMetric, request: Request) -> Response:
    runs = stores_of(request).metadata.runs
    run_id = _active(runs, body.id()).id
    runs.log_metric_points([_point(run_id, body)])
    return ok()


@router.post("/runs/log-parameter", dependencies=[requires(Role.WRITER)])
def log_param(body: KeyValueOfRun, request: Request) -> Response:
    runs = stores_of(request).metadata.runs
    runs.log_params(_active(runs, body.id()).id, {body.key: body.value})
    return ok()


@router.post("/runs/set-tag", dependencies=[requires(Role.WRITER)])
def set_tag(body: KeyValueOfRun, request: Request) -> Response:
    runs = stores_of(request).metadata.runs
    _set_tags(runs, _active(runs, body.id()), {body.key: body.value})
    return ok()


async def _batch_size(request: Request) -> None:
    size = len(await request.body())
    if size > MAX_BATCH_BYTES:
        raise InvalidInput(
            f"Batched logging API requests must be at most {MAX_BATCH_BYTES} bytes, "
            f"got a request of {size} bytes"
        )


@router.post("/runs/log-batch", dependencies=[requires(Role.WRITER), Depends(_batch_size)])
def log_batch(body: LogBatch, request: Request) -> Response:
    """Params, then tags, then metrics; everything is checked before the first write."""
    _check_batch_limits(body)
    runs = stores_of(request).metadata.runs
    run = _active(runs, body.run_id)
    points = [_point(run.id, metric) for metric in body.metrics]
    params: dict[str, str] = {}
    for param in body.params:
        if params.setdefault(param.key, param.value) != param.value:
            raise InvalidInput(f"param {param.key!r} is given twice with different values")
    if params:
        runs.log_params(run.id, params)
    _set_tags(runs, run, _tag_map(body.tags))
    runs.log_metric_points(points)
    return ok()


@router.get("/metrics/get-history", dependencies=[requires(Role.READER)])
def get_metric_history(query: Annotated[GetMetricHistory, Query()], request: Request) -> Response:
    run_id = query.id()
    points = stores_of(request).metadata.runs.get_metric_history(run_id, query.metric_key)
    token = None
    if query.max_results is not None:
        if query.max_results <= 0:
            raise InvalidInput(
                f"Invalid value {query.max_results} for parameter 'max_results' supplied. "
                "It must be a positive integer."
            )
        points, token = page(points, query.page_token, query.max_results)
    return ok({"metrics": [metric_json(p, run_id) for p in points], "next_page_token": token})


# -- plumbing ---------------------------------------------------------------------------


def _experiment_ids(runs: RunStore, given: list[str]) -> list[str]:
    """The loopline ids to search: "0" is the default experiment (if it exists yet)."""
    ids = []
    for experiment_id in given:
        if experiment_id == "0":
            found = [e.id for e in runs.list_experiments() if e.name == DEFAULT_EXPERIMENT]
            ids.extend(found)
        else:
            ids.append(experiment_id)
    return ids


def _active(runs: RunStore, run_id: str) -> Run:
    run = runs.get_run(run_id)
    if run.deleted:
        raise InvalidInput(
            f"The run {run_id} must be in the 'active' state. Current state is deleted."
        )
    return run


def _point(run_id: str, metric: MetricIn) -> MetricRow:
    return (run_id, check_key("metric", metric.key), metric.value, metric.step, metric.timestamp)


def _tag_map(items: list[KeyValue]) -> dict[str, str]:
    return {item.key: item.value for item in items}


def _set_tags(runs: RunStore, run: Run, tags: dict[str, str]) -> None:
    """Set tags; `mlflow.runName` renames the run and `mlflow.user` is the run's own."""
    name = tags.pop("mlflow.runName", None)
    tags.pop("mlflow.user", "")
    if name is not None:
        runs.update_run(run.id, name=name)
    runs.set_tags(run.id, tags)


def _status(value: int | str) -> RunStatus:
    name = _STATUSES.get(value, "") if isinstance(value, int) else value
    if name not in ("RUNNING", "FINISHED", "FAILED", "KILLED"):
        raise InvalidInput(f"invalid run status {value!r}; use RUNNING, FINISHED, FAILED or KILLED")
    return RunStatus(name)


def _check_batch_limits(body: LogBatch) -> None:
    counts = {
        "metrics": (len(body.metrics), MAX_METRICS_PER_BATCH),
        "params": (len(body.params), MAX_PARAMS_TAGS_PER_BATCH),
        "tags": (len(body.tags), MAX_PARAMS_TAGS_PER_BATCH),
    }
    for name, (count, limit) in counts.items():
        if count > limit:
            raise InvalidInput(
                f"A batch logging request can contain at most {limit} {name}. "
                f"Got {count} {name}. Please split up {name} across multiple requests and try "
                "again."
            )
    total = sum(count for count, _ in counts.values())
    if total > MAX_METRICS_PER_BATCH:
        raise InvalidInput(
            f"A batch logging request can contain at most {MAX_METRICS_PER_BATCH} metrics, "
            f"params and tags in total. Got {total}."
        )
