"""Monitoring records in the metadata database: the index of stored reports, alerts, and
what the watcher has done.

A report itself (JSON, and its HTML page) lives in the artifact store; its row here holds
where, the window, the verdict and a few scores (so that /metrics and the time series of
later reports need no blob). Alerts follow one rule: at most one open alert per
deployment and check. An alert is written `pending` before its notification goes out
and marked sent after (an outbox), so a watcher killed in between sends it when it runs
again instead of losing it, and never opens a second one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, select, update

from loopline.errors import Conflict, InvalidInput, NotFound
from loopline.store._schema import monitor_alerts, monitor_reports, monitor_state
from loopline.store.deployments import check_deployment_name
from loopline.store.records import new_id

if TYPE_CHECKING:
    from loopline.store._db import Database

REPORT_STATUSES = ("passed", "failed", "skipped")
MAX_SUMMARY_CHARS = 2000


@dataclass(frozen=True)
class MonitorReportRecord:
    """A stored report's index row: `status` is passed, failed or skipped (too few rows);
    `failed` names the failed checks; `scores` holds its headline figures."""

    id: str
    deployment: str
    created_at: datetime
    since: datetime | None
    until: datetime
    rows: int
    status: str
    failed: list[str]
    reference: str | None
    report_hash: str
    html_hash: str | None
    scores: dict[str, Any]
    schedule_key: str | None
    created_by: str


@dataclass(frozen=True)
class AlertRecord:
    """An alert on one check of one deployment: open until the check passes again."""

    id: str
    deployment: str
    check: str
    status: str
    summary: str
    report_id: str | None
    opened_at: datetime
    last_sent_at: datetime | None
    resolved_at: datetime | None
    sends: int
    pending: bool


@dataclass(frozen=True)
class WatchState:
    """The end of the last window the watcher completed for a deployment."""

    deployment: str
    last_until: datetime | None
    last_run_at: datetime | None
    last_report_id: str | None


class MonitorStore:
    """SQL operations on monitoring records; reached as `MetadataStore.monitoring`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- reports ----------------------------------------------------------------------

    def add_report(
        self,
        deployment: str,
        *,
        since: datetime | None,
        until: datetime,
        rows: int,
        status: str,
        failed: list[str],
        reference: str | None,
        report_hash: str,
        html_hash: str | None,
        scores: dict[str, Any],
        created_by: str,
        schedule_key: str | None = None,
        report_id: str | None = None,
    ) -> MonitorReportRecord:
        """Index a stored report. With a `schedule_key`, a report of that scheduled window
        already indexed is returned instead of a second one."""
        check_deployment_name(deployment)
        if status not in REPORT_STATUSES:
            raise InvalidInput(f"unknown report status {status!r}")
        if schedule_key is not None:
            existing = self._scheduled(deployment, schedule_key)
            if existing is not None:
                return existing
        values = {
            "id": report_id or new_id(),
            "deployment": deployment,
            "created_at": datetime.now(UTC),
            "since": since,
            "until": until,
            "rows": rows,
            "status": status,
            "failed_json": json.dumps(failed),
            "reference": reference,
            "report_hash": report_hash,
            "html_hash": html_hash,
            "scores_json": json.dumps(scores, allow_nan=False),
            "schedule_key": schedule_key,
            "created_by": created_by,
        }
        try:
            with self._db.write("store monitoring report") as conn:
                conn.execute(monitor_reports.insert().values(**values))
        except Conflict:
            if schedule_key is not None:
                existing = self._scheduled(deployment, schedule_key)
                if existing is not None:
                    return existing
            raise
        return self.get_report(str(values["id"]))

    def get_report(self, report_id: str) -> MonitorReportRecord:
        """A report's index row. Raises NotFound."""
        with self._db.read() as conn:
            row = conn.execute(
                select(monitor_reports).where(monitor_reports.c.id == report_id)
            ).first()
        if row is None:
            raise NotFound(f"no monitoring report {report_id!r}", hint="see `loopline monitor ls`")
        return _report(row)

    def list_reports(
        self, deployment: str | None = None, *, limit: int = 50
    ) -> list[MonitorReportRecord]:
        """Reports, newest first (of one deployment when given)."""
        stmt = select(monitor_reports)
        if deployment is not None:
            stmt = stmt.where(monitor_reports.c.deployment == check_deployment_name(deployment))
        stmt = stmt.order_by(monitor_reports.c.created_at.desc(), monitor_reports.c.id).limit(limit)
        with self._db.read() as conn:
            return [_report(row) for row in conn.execute(stmt)]

    def _scheduled(self, deployment: str, key: str) -> MonitorReportRecord | None:
        table = monitor_reports.c
        with self._db.read() as conn:
            row = conn.execute(
                select(monitor_reports).where(
                    table.deployment == deployment, table.schedule_key == key
                )
            ).first()
        return None if row is None else _report(row)

    # -- alerts -----------------------------------------------------------------------

    def open_alert(
        self, deployment: str, check: str, *, summary: str, report_id: str | None
    ) -> tuple[AlertRecord, bool]:
        """The open alert of (deployment, check), opened now (pending delivery) if there is
        none; the flag says whether it was opened by this call."""
        check_deployment_name(deployment)
        found = self.open_alert_of(deployment, check)
        if found is not None:
            return found, False
        alert_id = new_id()
        try:
            with self._db.write("open alert") as conn:
                conn.execute(
                    monitor_alerts.insert().values(
                        id=alert_id,
                        deployment=deployment,
                        check_name=check,
                        open_key=_open_key(deployment, check),
                        status="open",
                        summary=summary[:MAX_SUMMARY_CHARS],
                        report_id=report_id,
                        opened_at=datetime.now(UTC),
                        last_sent_at=None,
                        resolved_at=None,
                        sends=0,
                        pending=True,
                    )
                )
        except Conflict:
            found = self.open_alert_of(deployment, check)
            if found is None:
                raise
            return found, False  # another watcher opened it meanwhile
        return self._alert(alert_id), True

    def open_alert_of(self, deployment: str, check: str) -> AlertRecord | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(monitor_alerts).where(
                    monitor_alerts.c.open_key == _open_key(deployment, check)
                )
            ).first()
        return None if row is None else _alert(row)

    def mark_pending(self, alert_id: str, *, summary: str, report_id: str | None) -> None:
        """Queue an open alert's notification again (its cool-down has passed)."""
        with self._db.write("queue alert") as conn:
            conn.execute(
                update(monitor_alerts)
                .where(monitor_alerts.c.id == alert_id, monitor_alerts.c.status == "open")
                .values(pending=True, summary=summary[:MAX_SUMMARY_CHARS], report_id=report_id)
            )

    def mark_sent(self, alert_id: str) -> None:
        """Record one delivery of an alert's notification."""
        table = monitor_alerts.c
        with self._db.write("record alert delivery") as conn:
            conn.execute(
                update(monitor_alerts)
                .where(table.id == alert_id)
                .values(pending=False, last_sent_at=datetime.now(UTC), sends=table.sends + 1)
            )

    def resolve_alert(self, deployment: str, check: str) -> AlertRecord | None:
        """Close the open alert of (deployment, check); the alert closed, or None."""
        found = self.open_alert_of(deployment, check)
        if found is None:
            return None
        with self._db.write("resolve alert") as conn:
            conn.execute(
                update(monitor_alerts)
                .where(monitor_alerts.c.id == found.id)
                .values(
                    status="resolved", open_key=None, pending=False, resolved_at=datetime.now(UTC)
                )
            )
        return self._alert(found.id)

    def alerts(
        self, deployment: str | None = None, *, status: str | None = None, limit: int = 200
    ) -> list[AlertRecord]:
        """Alerts, newest first, optionally of one deployment and status (open, resolved)."""
        stmt = select(monitor_alerts)
        if deployment is not None:
            stmt = stmt.where(monitor_alerts.c.deployment == check_deployment_name(deployment))
        if status is not None:
            stmt = stmt.where(monitor_alerts.c.status == status)
        stmt = stmt.order_by(monitor_alerts.c.opened_at.desc(), monitor_alerts.c.id).limit(limit)
        with self._db.read() as conn:
            return [_alert(row) for row in conn.execute(stmt)]

    def pending_alerts(self) -> list[AlertRecord]:
        """Alerts whose notification is still to be delivered, oldest first."""
        stmt = (
            select(monitor_alerts)
            .where(monitor_alerts.c.pending.is_(True))
            .order_by(monitor_alerts.c.opened_at, monitor_alerts.c.id)
        )
        with self._db.read() as conn:
            return [_alert(row) for row in conn.execute(stmt)]

    def _alert(self, alert_id: str) -> AlertRecord:
        with self._db.read() as conn:
            row = conn.execute(select(monitor_alerts).where(monitor_alerts.c.id == alert_id)).one()
        return _alert(row)

    # -- the watcher's state ----------------------------------------------------------

    def state(self, deployment: str) -> WatchState:
        with self._db.read() as conn:
            row = conn.execute(
                select(monitor_state).where(monitor_state.c.deployment == deployment)
            ).first()
        if row is None:
            return WatchState(deployment, None, None, None)
        return WatchState(row.deployment, row.last_until, row.last_run_at, row.last_report_id)

    def set_state(self, deployment: str, *, last_until: datetime, report_id: str | None) -> None:
        """Record that the window ending at `last_until` is done (never moves backwards)."""
        check_deployment_name(deployment)
        now = datetime.now(UTC)
        values = {"last_until": last_until, "last_run_at": now, "last_report_id": report_id}
        for _ in range(2):
            current = self.state(deployment)
            if current.last_until is not None and current.last_until >= last_until:
                return
            try:
                with self._db.write("record watcher state") as conn:
                    if current.last_run_at is None and current.last_until is None:
                        conn.execute(monitor_state.insert().values(deployment=deployment, **values))
                    else:
                        conn.execute(
                            update(monitor_state)
                            .where(monitor_state.c.deployment == deployment)
                            .values(**values)
                        )
                return
            except Conflict:
                continue  # created concurrently: read it again


def _open_key(deployment: str, check: str) -> str:
    return f"{deployment}/{check}"


def _report(row: Row[Any]) -> MonitorReportRecord:
    return MonitorReportRecord(
        id=row.id,
        deployment=row.deployment,
        created_at=row.created_at,
        since=row.since,
        until=row.until,
        rows=int(row.rows),
        status=row.status,
        failed=list(json.loads(row.failed_json)),
        reference=row.reference,
        report_hash=row.report_hash,
        html_hash=row.html_hash,
        scores=dict(json.loads(row.scores_json)),
        schedule_key=row.schedule_key,
        created_by=row.created_by,
    )


def _alert(row: Row[Any]) -> AlertRecord:
    return AlertRecord(
        id=row.id,
        deployment=row.deployment,
        check=row.check_name,
        status=row.status,
        summary=row.summary,
        report_id=row.report_id,
        opened_at=row.opened_at,
        last_sent_at=row.last_sent_at,
        resolved_at=row.resolved_at,
        sends=int(row.sends),
        pending=bool(row.pending),
    )
