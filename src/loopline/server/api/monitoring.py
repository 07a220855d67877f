"""Monitoring records: the index of stored reports, alerts (an outbox of notifications)
and the watcher's state. The watcher writes them, with the writer role."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.responses import Response

from loopline.errors import InvalidInput
from loopline.server._answers import answer
from loopline.server._permissions import Caller, Role, requires
from loopline.server.api.deployments import check_json, deployment_name
from loopline.server.app import stores_of

router = APIRouter(tags=["monitoring"])

RECORD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_LIMIT = 10_000


class NewReport(BaseModel):
    """The index row of a report stored in the artifact store."""

    model_config = ConfigDict(extra="forbid")
    deployment: StrictStr
    since: datetime | None
    until: datetime
    rows: StrictInt = Field(ge=0)
    status: StrictStr
    failed: list[StrictStr]
    reference: StrictStr | None
    report_hash: StrictStr
    html_hash: StrictStr | None
    scores: dict[str, Any]
    created_by: StrictStr | None = None
    schedule_key: StrictStr | None = None
    report_id: StrictStr | None = None


class AlertOpening(BaseModel):
    """Open the alert of (deployment, check) unless one is open."""

    model_config = ConfigDict(extra="forbid")
    deployment: StrictStr
    check: StrictStr = Field(min_length=1, max_length=200)
    summary: StrictStr
    report_id: StrictStr | None = None


class AlertQueueing(BaseModel):
    """Queue an open alert's notification again."""

    model_config = ConfigDict(extra="forbid")
    summary: StrictStr
    report_id: StrictStr | None = None


class WatchProgress(BaseModel):
    """The end of the last window the watcher completed."""

    model_config = ConfigDict(extra="forbid")
    last_until: datetime
    report_id: StrictStr | None = None


# -- reports --------------------------------------------------------------------------


@router.post("/monitoring/reports", status_code=201)
def add_report(
    request: Request, body: NewReport, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Index a stored report (with a `schedule_key`, the one of that window if stored)."""
    record = stores_of(request).metadata.monitoring.add_report(
        deployment_name(body.deployment),
        since=body.since,
        until=body.until,
        rows=body.rows,
        status=body.status,
        failed=body.failed,
        reference=body.reference,
        report_hash=body.report_hash,
        html_hash=body.html_hash,
        scores=check_json(body.scores, "scores"),
        created_by=caller.acting_as(body.created_by),
        schedule_key=body.schedule_key,
        report_id=None if body.report_id is None else record_id(body.report_id),
    )
    return answer(record, 201)


@router.get("/monitoring/reports")
def list_reports(
    request: Request,
    deployment: str | None = None,
    limit: Annotated[int, Query(ge=0, le=MAX_LIMIT)] = 50,
    caller: Caller = requires(Role.READER),
) -> Response:
    """Reports, newest first (of one deployment when given)."""
    name = None if deployment is None else deployment_name(deployment)
    return answer(stores_of(request).metadata.monitoring.list_reports(name, limit=limit))


@router.get("/monitoring/reports/{report_id}")
def get_report(
    report_id: str, request: Request, caller: Caller = requires(Role.READER)
) -> Response:
    """A report's index row."""
    return answer(stores_of(request).metadata.monitoring.get_report(record_id(report_id)))


# -- alerts ---------------------------------------------------------------------------


@router.post("/monitoring/alerts")
def open_alert(
    request: Request, body: AlertOpening, caller: Caller = requires(Role.WRITER)
) -> Response:
    """The open alert of (deployment, check), opened now if there is none; `opened` says
    whether this request opened it."""
    alert, opened = stores_of(request).metadata.monitoring.open_alert(
        deployment_name(body.deployment),
        body.check,
        summary=body.summary,
        report_id=body.report_id,
    )
    return answer({"alert": alert, "opened": opened}, 201 if opened else 200)


@router.get("/monitoring/alerts")
def alerts(
    request: Request,
    deployment: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=0, le=MAX_LIMIT)] = 200,
    caller: Caller = requires(Role.READER),
) -> Response:
    """Alerts, newest first, optionally of one deployment and status (open, resolved)."""
    name = None if deployment is None else deployment_name(deployment)
    store = stores_of(request).metadata.monitoring
    return answer(store.alerts(name, status=status, limit=limit))


@router.get("/monitoring/alerts/open")
def open_alert_of(
    request: Request,
    deployment: str,
    check: Annotated[str, Query(min_length=1, max_length=200)],
    caller: Caller = requires(Role.READER),
) -> Response:
    """The open alert of (deployment, check), or null."""
    store = stores_of(request).metadata.monitoring
    return answer(store.open_alert_of(deployment_name(deployment), check))


@router.post("/monitoring/alerts/resolve")
def resolve_alert(
    request: Request,
    deployment: str,
    check: Annotated[str, Query(min_length=1, max_length=200)],
    caller: Caller = requires(Role.WRITER),
) -> Response:
    """Close the open alert of (deployment, check); the alert closed, or null."""
    store = stores_of(request).metadata.monitoring
    return answer(store.resolve_alert(deployment_name(deployment), check))


@router.get("/monitoring/alerts/pending")
def pending_alerts(request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """Alerts whose notification is still to be delivered, oldest first."""
    return answer(stores_of(request).metadata.monitoring.pending_alerts())


@router.put("/monitoring/alerts/{alert_id}/pending", status_code=204)
def mark_pending(
    alert_id: str, request: Request, body: AlertQueueing, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Queue an open alert's notification again (its cool-down has passed)."""
    stores_of(request).metadata.monitoring.mark_pending(
        record_id(alert_id), summary=body.summary, report_id=body.report_id
    )
    return Response(status_code=204)


@router.post("/monitoring/alerts/{alert_id}/deliveries", status_code=204)
def mark_sent(alert_id: str, request: Request, caller: Caller = requires(Role.WRITER)) -> Response:
    """Record one delivery of an alert's notification."""
    stores_of(request).metadata.monitoring.mark_sent(record_id(alert_id))
    return Response(status_code=204)


# -- the watcher's state --------------------------------------------------------------


@router.get("/monitoring/states/{deployment}")
def state(deployment: str, request: Request, caller: Caller = requires(Role.READER)) -> Response:
    """The end of the last window the watcher completed for a deployment."""
    return answer(stores_of(request).metadata.monitoring.state(deployment_name(deployment)))


@router.put("/monitoring/states/{deployment}", status_code=204)
def set_state(
    deployment: str, request: Request, body: WatchProgress, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Record that the window ending at `last_until` is done (never moves backwards)."""
    if body.last_until.tzinfo is None:
        raise InvalidInput("last_until must be a time with its UTC offset")
    stores_of(request).metadata.monitoring.set_state(
        deployment_name(deployment), last_until=body.last_until, report_id=body.report_id
    )
    return Response(status_code=204)


def record_id(value: str) -> str:
    """A report or alert id from a path or a body (opaque: letters, digits, '_', '-')."""
    if not RECORD_ID.fullmatch(value):
        raise InvalidInput(f"invalid id {value[:80]!r}")
    return value
