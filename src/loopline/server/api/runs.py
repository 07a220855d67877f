"""Runs: create, read, end, delete and restore, search; params, tags and lineage links.

Bodies whose fields are plain are pydantic models (they appear in /openapi.json); the
search body carries the parsed filter (the query model's records) and is read with the
record codec. Params and tags travel as the text the store keeps: the client converts
values as the local store would, and the store checks and redacts them again here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, Strict, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import Response

from loopline.errors import InvalidInput
from loopline.server._answers import answer, body_as
from loopline.server._permissions import Caller, Role, requires
from loopline.server.app import stores_of
from loopline.store._names import check_id, check_run_prefix
from loopline.store.query import And, Condition, Or, OrderBy
from loopline.store.records import MAX_SEARCH_RESULTS, CodeVersion, Direction, LinkKind

router = APIRouter(tags=["runs"])

_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_STRICT = ConfigDict(extra="forbid", strict=True)
# [name, ref, size]: a JSON array is a tuple only in lax mode; its items stay strict
LinkItem = Annotated[tuple[StrictStr, StrictStr, StrictInt | None], Strict(False)]


class CodeBody(BaseModel):
    """Where the run's code came from."""

    model_config = _STRICT
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    patch_hash: str | None = None


class CreateRunBody(BaseModel):
    """A new run: its experiment (by id) and what it is created with, in one write."""

    model_config = _STRICT
    experiment_id: str
    name: str | None = None
    parent_id: str | None = None
    user: str = Field("", description="kept only when the server runs without auth")
    source: str = ""
    code: CodeBody | None = None
    python_version: str | None = None
    packages_hash: str | None = None
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    artifacts: list[LinkItem] = Field(
        default_factory=list, description="output artifact links: [name, blob hash, size]"
    )


class UpdateBody(BaseModel):
    """Fields of a run to change as they are (the MLflow API's update-run): a final
    status without `end_time_ms` ends the run now; RUNNING resumes it."""

    model_config = _STRICT
    status: str | None = None
    end_time_ms: int | None = None
    name: str | None = None


class ChangeRunBody(BaseModel):
    """One change of a run: end it (`status` and an `error`), delete or restore it
    (`deleted`), or `update` its status, end time or name."""

    model_config = _STRICT
    status: str | None = None
    error: str | None = None
    deleted: bool | None = None
    update: UpdateBody | None = None


class ParamsBody(BaseModel):
    model_config = _STRICT
    params: dict[str, str]


class TagsBody(BaseModel):
    model_config = _STRICT
    tags: dict[str, str]


class LinksBody(BaseModel):
    """Links of one direction and kind: [name, ref, size] each; a linked name is re-pointed."""

    model_config = ConfigDict(extra="forbid")  # enums from their JSON values
    direction: Direction
    kind: LinkKind
    items: list[LinkItem]


class LookupBody(BaseModel):
    model_config = _STRICT
    ids: list[str] = Field(max_length=MAX_SEARCH_RESULTS)


@dataclass(frozen=True)
class SearchBody:
    """`RunStore.search_runs`'s arguments; `condition` and `order_by` as the query model's
    records (`Compare`/`And`/`Or` tagged by "$type")."""

    experiment_ids: list[str] | None = None
    condition: Condition | None = None
    order_by: tuple[OrderBy, ...] = ()
    max_results: int | None = 1000
    include_deleted: bool = False


@router.post("/runs", status_code=201)
def create_run(
    body: CreateRunBody, request: Request, caller: Caller = requires(Role.WRITER)
) -> Response:
    """A new RUNNING run with its params, tags and artifact links (all or nothing)."""
    code = CodeVersion(**body.code.model_dump()) if body.code is not None else None
    run = stores_of(request).metadata.runs.create_run(
        body.experiment_id,
        name=body.name,
        parent_id=body.parent_id,
        user=caller.acting_as(body.user),
        source=body.source,
        code=code,
        python_version=body.python_version,
        packages_hash=body.packages_hash,
        params=body.params,
        tags=body.tags,
        artifacts=body.artifacts,
    )
    return answer(run, 201)


@router.post("/runs/search")
async def search_runs(request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """Runs matching a parsed filter, sorted, at most `max_results`."""
    from starlette.concurrency import run_in_threadpool

    body: SearchBody = await body_as(request, SearchBody)
    found = await run_in_threadpool(
        stores_of(request).metadata.runs.search_runs,
        body.experiment_ids,
        None if body.condition is None else _numbers_of_metrics(body.condition),
        body.order_by,
        body.max_results,
        body.include_deleted,
    )
    return answer(found)


@dataclass(frozen=True)
class SearchPageBody:
    """`RunStore.search_runs_page`'s arguments, the condition and order as in SearchBody."""

    experiment_ids: list[str] | None = None
    condition: Condition | None = None
    order_by: tuple[OrderBy, ...] = ()
    offset: int = 0
    limit: int = 50
    include_deleted: bool = False


@router.post("/runs/search-page")
async def search_runs_page(request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """One page of the runs matching a parsed filter, sorted, with the number matching."""
    from starlette.concurrency import run_in_threadpool

    body: SearchPageBody = await body_as(request, SearchPageBody)
    page = await run_in_threadpool(
        lambda: stores_of(request).metadata.runs.search_runs_page(
            body.experiment_ids,
            None if body.condition is None else _numbers_of_metrics(body.condition),
            body.order_by,
            offset=body.offset,
            limit=body.limit,
            include_deleted=body.include_deleted,
        )
    )
    return answer(page)


def _numbers_of_metrics(condition: Condition) -> Condition:
    """The condition with NaN and the infinities that metrics are compared with read as
    numbers: JSON spells them "NaN", "Infinity", "-Infinity", which a union of float and
    str reads as text. A metric is only ever compared with numbers (the filter parser
    makes them floats), so a float word there can only mean the number."""
    if isinstance(condition, And | Or):
        return type(condition)(tuple(_numbers_of_metrics(item) for item in condition.items))
    if condition.field.kind != "metric":
        return condition
    value = condition.value
    if isinstance(value, tuple):
        numbers = tuple(_FLOAT_WORDS.get(v, v) if isinstance(v, str) else v for v in value)
        return replace(condition, value=numbers)
    if isinstance(value, str) and value in _FLOAT_WORDS:
        return replace(condition, value=_FLOAT_WORDS[value])
    return condition


@router.post("/runs/lookup")
def get_runs(
    body: LookupBody, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """Runs by id, in the order asked; unknown ids are left out."""
    return answer(stores_of(request).metadata.runs.get_runs(body.ids))


@router.get("/runs/resolve/{prefix}")
def resolve_run_id(
    prefix: str, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """The full id of the one run whose id starts with `prefix` (4-32 hex characters)."""
    text = check_run_prefix(prefix)
    return answer({"id": stores_of(request).metadata.runs.resolve_run_id(text)})


@router.get("/runs/{run_id}")
def get_run(run_id: str, request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """A run with its params, latest metric values and tags."""
    return answer(stores_of(request).metadata.runs.get_run(check_id("run", run_id)))


@router.patch("/runs/{run_id}")
def change_run(
    run_id: str,
    body: ChangeRunBody,
    request: Request,
    answer_with: Literal["run", "none"] = Query("run", alias="answer"),
    caller: Caller = requires(Role.WRITER),
) -> Response:
    """End a run (`status`: FINISHED, FAILED or KILLED, and an `error`), delete or
    restore it (`deleted`), or `update` it. Answers the run, or nothing with
    `?answer=none`."""
    runs = stores_of(request).metadata.runs
    run_id = check_id("run", run_id)
    changes = [body.status, body.deleted, body.update]
    if sum(change is not None for change in changes) != 1:
        raise InvalidInput("change one of a run's status, deleted flag or fields (update)")
    if body.error is not None and body.status is None:
        raise InvalidInput("an error goes with a status")
    if body.deleted is not None:
        runs.set_deleted(run_id, body.deleted)
    elif body.update is not None:
        fields = body.update
        updated = runs.update_run(
            run_id, status=fields.status, end_time_ms=fields.end_time_ms, name=fields.name
        )
        return Response(status_code=204) if answer_with == "none" else answer(updated)
    else:
        assert body.status is not None
        runs.mark_run_ended(run_id, body.status, error=body.error)
    if answer_with == "none":
        return Response(status_code=204)
    return answer(runs.get_run(run_id))


@router.post("/runs/{run_id}/params", status_code=204)
def log_params(
    run_id: str, body: ParamsBody, request: Request, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Record params; a key already logged with another value is a 409."""
    stores_of(request).metadata.runs.log_params(check_id("run", run_id), body.params)
    return Response(status_code=204)


@router.post("/runs/{run_id}/tags", status_code=204)
def set_tags(
    run_id: str, body: TagsBody, request: Request, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Set tags (a new value replaces the old)."""
    stores_of(request).metadata.runs.set_tags(check_id("run", run_id), body.tags)
    return Response(status_code=204)


@router.delete("/runs/{run_id}/tags", status_code=204)
def delete_tag(
    run_id: str, key: str, request: Request, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Delete the tag `key` (a query parameter: keys may hold '/')."""
    stores_of(request).metadata.runs.delete_tag(check_id("run", run_id), key)
    return Response(status_code=204)


@router.post("/runs/{run_id}/links", status_code=204)
def add_links(
    run_id: str, body: LinksBody, request: Request, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Record lineage links of the run; a name already linked is re-pointed."""
    runs = stores_of(request).metadata.runs
    runs.add_links(check_id("run", run_id), body.direction, body.kind, body.items)
    return Response(status_code=204)


@router.get("/runs/{run_id}/links")
def list_links(
    run_id: str,
    request: Request,
    direction: Direction | None = None,
    kind: LinkKind | None = None,
    caller: Caller = requires(Role.READER),
) -> Response:
    """The run's lineage links, by name; optionally of one direction and kind."""
    runs = stores_of(request).metadata.runs
    return answer(runs.list_links(check_id("run", run_id), direction, kind))
