"""MLflow's experiments API: create, get, get-by-name, search.

MLflow's experiment ids are strings (the client checks `[a-zA-Z0-9][\\w-]{0,63}`), so
loopline's own ids are MLflow's: no mapping table. The one exception is "0", the id the
mlflow client uses when no experiment is set; it stands for loopline's default
experiment ("default", the one `ll.start_run` uses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from loopline.errors import InvalidInput, NotFound
from loopline.server._permissions import Caller, Role, requires
from loopline.server.api.mlflow import _filters
from loopline.server.api.mlflow._entities import (
    DEFAULT_EXPERIMENT,
    DEFAULT_EXPERIMENT_ID,
    experiment_json,
)
from loopline.server.api.mlflow._protocol import AlreadyExists, Int64, MlflowRoute, ok, page
from loopline.server.app import stores_of
from loopline.store import Experiment, RunStore

router = APIRouter(route_class=MlflowRoute)

MAX_EXPERIMENTS = 50_000  # MLflow's limit on one page of experiments
_VIEW_TYPES = {"ACTIVE_ONLY": 1, "DELETED_ONLY": 2, "ALL": 3}
_ATTRIBUTES = frozenset({"name", "experiment_id", "creation_time", "last_update_time"})
_NUMERIC = frozenset({"creation_time", "last_update_time"})


class Tag(BaseModel):
    key: str
    value: str = ""


class CreateExperiment(BaseModel):
    name: str
    artifact_location: str = ""
    tags: list[Tag] = []


class SearchExperiments(BaseModel):
    max_results: Int64 = 1000
    page_token: str = ""
    filter: str = ""
    order_by: list[str] = []
    view_type: int | str = "ACTIVE_ONLY"


def experiment_by_id(runs: RunStore, experiment_id: str) -> Experiment:
    """The experiment with MLflow id `experiment_id` ("0": loopline's default one)."""
    if experiment_id == DEFAULT_EXPERIMENT_ID:
        return runs.get_experiment(DEFAULT_EXPERIMENT)
    try:
        found = runs.get_experiment(experiment_id)
    except NotFound:
        found = None
    if found is None or found.id != experiment_id:  # the store also matches names
        raise NotFound(f"no experiment with id {experiment_id!r}")
    return found


def experiment_id_for_write(runs: RunStore, experiment_id: str) -> str:
    """The loopline id a new run goes to; "0" creates the default experiment on first use."""
    if experiment_id in ("", DEFAULT_EXPERIMENT_ID):
        return runs.get_or_create_experiment(DEFAULT_EXPERIMENT).id
    return experiment_by_id(runs, experiment_id).id


@router.post("/experiments/create")
def create_experiment(
    body: CreateExperiment, request: Request, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Create an experiment; RESOURCE_ALREADY_EXISTS if the name is taken."""
    if body.artifact_location:
        raise InvalidInput(
            "artifact_location is not supported: loopline keeps artifacts in its own store"
        )
    if body.tags:
        raise InvalidInput("experiment tags are not supported by loopline")
    runs = stores_of(request).metadata.runs
    try:
        existing = runs.get_experiment(body.name)
    except NotFound:
        existing = None
    if existing is not None and existing.name == body.name:
        raise AlreadyExists(f"experiment {body.name!r} already exists")
    return ok({"experiment_id": runs.get_or_create_experiment(body.name).id})


@router.get("/experiments/get", dependencies=[requires(Role.READER)])
def get_experiment(request: Request, experiment_id: str) -> Response:
    found = experiment_by_id(stores_of(request).metadata.runs, experiment_id)
    return ok({"experiment": experiment_json(found)})


@router.get("/experiments/get-by-name", dependencies=[requires(Role.READER)])
def get_experiment_by_name(request: Request, experiment_name: str) -> Response:
    try:
        found = stores_of(request).metadata.runs.get_experiment(experiment_name)
    except NotFound:
        found = None
    if found is None or found.name != experiment_name:
        raise NotFound(f"Could not find experiment with name '{experiment_name}'")
    return ok({"experiment": experiment_json(found)})


@router.post("/experiments/search", dependencies=[requires(Role.READER)])
def search_experiments(body: SearchExperiments, request: Request) -> Response:
    return _search(body, request)


@router.get("/experiments/search", dependencies=[requires(Role.READER)])
def search_experiments_get(
    query: Annotated[SearchExperiments, Query()], request: Request
) -> Response:
    return _search(query, request)


def _search(body: SearchExperiments, request: Request) -> Response:
    if not 1 <= body.max_results <= MAX_EXPERIMENTS:
        raise InvalidInput(f"max_results must be between 1 and {MAX_EXPERIMENTS}")
    view = view_type(body.view_type)
    clauses = _filters.parse_filter(body.filter)
    _filters.check_clauses(clauses, _ATTRIBUTES, _NUMERIC)
    order = _filters.parse_order_by(body.order_by)
    records = []
    for experiment in stores_of(request).metadata.runs.list_experiments():
        if (view == 1 and experiment.deleted) or (view == 2 and not experiment.deleted):
            continue
        shown = experiment_json(experiment)
        tags = {tag["key"]: tag["value"] for tag in shown["tags"]}
        if _filters.matches(clauses, shown, tags, _NUMERIC):
            records.append(shown)
    records = sort_records(records, order, _ATTRIBUTES, default="creation_time")
    found, token = page(records, body.page_token, body.max_results)
    return ok({"experiments": found, "next_page_token": token})


def view_type(value: int | str) -> int:
    """MLflow's ViewType, given by name or number."""
    number = _VIEW_TYPES.get(value, 0) if isinstance(value, str) else value
    if number not in (1, 2, 3):
        raise InvalidInput(f"invalid view_type {value!r}; use ACTIVE_ONLY, DELETED_ONLY or ALL")
    return number


def sort_records(
    records: list[dict[str, Any]],
    order: list[_filters.SortKey],
    attributes: frozenset[str],
    *,
    default: str,
    descending: bool = True,
) -> list[dict[str, Any]]:
    """Records sorted by MLflow order-by keys (attributes only), else by `default`."""
    for key in order:
        if key.kind != "attribute" or key.key not in attributes:
            valid = ", ".join(sorted(attributes))
            raise _filters.MlflowFilterError(
                f"invalid order_by key {key.key!r}; valid keys are {valid}"
            )
    keys = order or [_filters.SortKey("attribute", default, descending)]
    for key in reversed(keys):  # stable sorts: the first key decides last
        records.sort(key=_by(key.key), reverse=key.descending)
    return records


def _by(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda record: record[name]
