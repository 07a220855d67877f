"""MLflow's model registry API, read side: registered models and model versions (get,
search) and a version by alias. Models are registered through loopline (packaging and
registration are not part of the MLflow subset); see `_entities` for how stages map.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from loopline.errors import InvalidInput, NotFound
from loopline.server._permissions import Role, requires
from loopline.server.api.mlflow import _filters
from loopline.server.api.mlflow._entities import aliases_of, model_json, version_json
from loopline.server.api.mlflow._protocol import Int64, MlflowRoute, ok, page
from loopline.server.api.mlflow.experiments import sort_records
from loopline.server.app import stores_of
from loopline.store import ModelStore, check_alias, check_model_name

router = APIRouter(route_class=MlflowRoute, dependencies=[requires(Role.READER)])

# MLflow's limits on one page (mlflow/utils/search_utils.py)
MAX_MODELS = 1000
MAX_VERSIONS = 200_000
_MODEL_ATTRIBUTES = frozenset({"name", "creation_timestamp", "last_updated_timestamp"})
_VERSION_ATTRIBUTES = frozenset(
    {"name", "version_number", "run_id", "creation_timestamp", "last_updated_timestamp"}
)
_MODEL_NUMERIC = frozenset({"creation_timestamp", "last_updated_timestamp"})
_VERSION_NUMERIC = _MODEL_NUMERIC | {"version_number"}


class Search(BaseModel):
    filter: str = ""
    max_results: Int64 | None = None
    order_by: list[str] = []
    page_token: str = ""


@router.get("/registered-models/get")
def get_registered_model(request: Request, name: str) -> Response:
    models = stores_of(request).metadata.models
    return ok({"registered_model": _model(models, name)})


@router.get("/registered-models/search")
def search_registered_models(query: Annotated[Search, Query()], request: Request) -> Response:
    limit = _limit(query.max_results, 100, MAX_MODELS)
    clauses = _filters.parse_filter(query.filter)
    _filters.check_clauses(clauses, frozenset({"name"}), frozenset())
    order = _filters.parse_order_by(query.order_by)
    models = stores_of(request).metadata.models
    records = []
    for model in models.list_models():
        if _filters.matches(clauses, {"name": model.name}, model.tags, frozenset()):
            records.append(_model(models, model.name))
    records = sort_records(records, order, _MODEL_ATTRIBUTES, default="name", descending=False)
    found, token = page(records, query.page_token, limit)
    return ok({"registered_models": found, "next_page_token": token})


@router.get("/model-versions/get")
def get_model_version(request: Request, name: str, version: str) -> Response:
    models = stores_of(request).metadata.models
    if not version.isdigit():
        raise InvalidInput(f"version must be a positive integer, got {version!r}")
    found = models.get_version(check_model_name(name), int(version))
    return ok({"model_version": version_json(found, models.aliases_of(found.id))})


@router.get("/model-versions/search")
def search_model_versions(query: Annotated[Search, Query()], request: Request) -> Response:
    limit = _limit(query.max_results, MAX_VERSIONS, MAX_VERSIONS)
    clauses = _filters.parse_filter(query.filter)
    _filters.check_clauses(clauses, _VERSION_ATTRIBUTES, _VERSION_NUMERIC)
    order = _filters.parse_order_by(query.order_by)
    models = stores_of(request).metadata.models
    names = [
        clause.value
        for clause in clauses
        if clause.key == "name" and clause.op == "=" and isinstance(clause.value, str)
    ]
    records = []
    for model in models.list_models():
        if names and model.name not in names:
            continue
        for version in models.list_versions(model.name):
            shown = version_json(version, aliases_of(model, version.version))
            fields = {**shown, "version_number": float(version.version)}
            if _filters.matches(clauses, fields, version.tags, _VERSION_NUMERIC):
                records.append(shown | {"version_number": version.version})
    records = sort_records(records, order, _VERSION_ATTRIBUTES, default="last_updated_timestamp")
    found, token = page(records, query.page_token, limit)
    for record in found:
        del record["version_number"]
    return ok({"model_versions": found, "next_page_token": token})


@router.get("/registered-models/alias")
def get_model_version_by_alias(request: Request, name: str, alias: str) -> Response:
    models = stores_of(request).metadata.models
    found = models.version_for_alias(check_model_name(name), check_alias(alias))
    return ok({"model_version": version_json(found, models.aliases_of(found.id))})


def _model(models: ModelStore, name: str) -> dict[str, Any]:
    model = models.get_model(check_model_name(name))
    latest = None
    if model.latest_version is not None:
        try:
            latest = models.get_version(model.name, model.latest_version)
        except NotFound:
            latest = None
    return model_json(model, latest)


def _limit(given: int | None, default: int, most: int) -> int:
    limit = default if given is None else given
    if not 1 <= limit <= most:
        raise InvalidInput(f"max_results must be between 1 and {most}, got {limit}")
    return limit
