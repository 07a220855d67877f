"""The audit log: read by anyone with the reader role, filterable by user, object and
action (the web UI's audit view); written over HTTP only for the actions the library
records on their own (a refused promotion, the watcher's alerts and rollbacks), under
the authenticated caller. Every other event is written by the store, in the same
transaction as its change, and never through this route. `/audit/verify` walks the
hash chain (`loopline audit verify` against a server)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.responses import Response

from loopline.errors import InvalidInput
from loopline.server._answers import answer
from loopline.server._permissions import Caller, Role, requires
from loopline.server.api.deployments import check_json
from loopline.server.app import stores_of
from loopline.store.audit import MAX_EVENTS, MAX_PROBLEMS

router = APIRouter(tags=["audit"])

# an action is dotted words: model_version.promotion_refused, monitor.alert.sent
ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){0,7}")
MAX_TEXT = 1000


class NewEvent(BaseModel):
    """An event of an action that changes nothing else (recorded under the caller)."""

    model_config = ConfigDict(extra="forbid")
    action: StrictStr = Field(max_length=200)
    object_type: StrictStr = Field(min_length=1, max_length=100)
    object_id: StrictStr = Field(min_length=1, max_length=MAX_TEXT)
    actor: StrictStr | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: StrictStr | None = Field(default=None, max_length=10_000)


@router.get("/audit/events")
def list_events(
    request: Request,
    object_id: Annotated[str | None, Query(max_length=MAX_TEXT)] = None,
    object_prefix: Annotated[str | None, Query(max_length=MAX_TEXT)] = None,
    action: Annotated[str | None, Query(max_length=200)] = None,
    actor: Annotated[str | None, Query(max_length=MAX_TEXT)] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 100,
    caller: Caller = requires(Role.READER),
) -> Response:
    """Events newest first, filtered by object (exactly, or everything under a model with
    `object_prefix`), action, the user who acted (`actor`) and time."""
    if since is not None and since.tzinfo is None:
        raise InvalidInput("since must be a time with its UTC offset")
    events = stores_of(request).metadata.audit.list_events(
        object_id=object_id,
        object_prefix=object_prefix,
        action=action,
        actor=actor,
        since=since,
        limit=limit,
    )
    return answer(events)


@router.get("/audit/events-page")
def events_page(
    request: Request,
    object_type: Annotated[str | None, Query(max_length=100)] = None,
    object_prefix: Annotated[str | None, Query(max_length=MAX_TEXT)] = None,
    action: Annotated[str | None, Query(max_length=200)] = None,
    actor: Annotated[str | None, Query(max_length=MAX_TEXT)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 50,
    caller: Caller = requires(Role.READER),
) -> Response:
    """A page of the events matching, newest first, and how many match in all."""
    page = stores_of(request).metadata.audit.events_page(
        object_type=object_type,
        object_prefix=object_prefix,
        action=action,
        actor=actor,
        offset=offset,
        limit=limit,
    )
    return answer(page)


@router.post("/audit/events", status_code=201)
def record_event(
    request: Request, body: NewEvent, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Append one event; its id. The actor is the authenticated caller."""
    if not ACTION.fullmatch(body.action):
        raise InvalidInput(f"invalid audit action {body.action[:80]!r}")
    event_id = stores_of(request).metadata.audit.record(
        actor=caller.acting_as(body.actor),
        action=body.action,
        object_type=body.object_type,
        object_id=body.object_id,
        before=None if body.before is None else check_json(body.before, "before"),
        after=None if body.after is None else check_json(body.after, "after"),
        reason=body.reason,
    )
    return answer({"id": event_id}, 201)


@router.get("/audit/verify")
def verify_chain(
    request: Request,
    expect_head: Annotated[str | None, Query(max_length=100)] = None,
    max_problems: Annotated[int, Query(ge=1, le=MAX_PROBLEMS)] = 20,
    caller: Caller = requires(Role.READER),
) -> Response:
    """Walk the audit log's hash chain: the event count, the head hash, and the edited,
    deleted, reordered or forged events found (the first `max_problems`)."""
    report = stores_of(request).metadata.audit.verify(
        expect_head=expect_head, max_problems=max_problems
    )
    return answer(report)
